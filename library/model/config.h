// A model's config.json (fla's GLA, RetNet, GSA and RWKV6 configs, research/fla-spec.md §5): the keys
// that change the math, their defaults, the sizes derived from them, and the tensors a checkpoint
// of that config holds (fla's parameter names and shapes). Keys that fla itself ignores or that
// only matter for training are accepted; a key lina does not know, or a value it does not run
// (hybrid softmax-attention layers, attention residuals, another activation), is an error naming
// the file, the key, the expected and the actual value.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lina::model {

enum class ModelType { GLA, RetNet, GSA, RWKV6 };
const char* modelTypeName(ModelType t);  // "gla", "retnet", "gsa", "rwkv6"

struct ModelConfig {
  ModelType type = ModelType::GLA;
  int64_t hiddenSize = 2048, numLayers = 24, numHeads = 4, numKvHeads = 0;  // 0: = numHeads
  double expandK = 0.5, expandV = 1.0;
  double hiddenRatio = 4;            // RWKV6: 3.5
  int64_t intermediateSize = 0;      // 0: derived (fla's GatedMLP rule, or RWKV6's)
  int64_t vocabSize = 32000;
  double normEps = 1e-6;
  bool tieWordEmbeddings = false;
  bool useShortConv = false;
  int64_t convSize = 4;
  bool useOutputGate = true;       // GLA, RetNet
  bool elementwiseAffine = true;
  bool fuseNorm = true;            // GLA/RetNet: the fused gated norm is named g_norm_swish_gate
  std::string featureMap;          // "" = none; GSA: swish (default), relu or t2r
  std::optional<double> clampMin;  // GLA's gate clamp
  double gateLogitNormalizer = 16;  // GLA: fixed 16 (not a config key); GSA: the config's (default 8)
  int64_t numSlots = 64;            // GSA
  int64_t projLowRankDim = 32, gateLowRankDim = 64;  // RWKV6: the token-shift mix and decay LoRA ranks
  bool normFirst = true, normBias = true;            // RWKV6: layer 0's pre_norm; LayerNorm biases
  int64_t bosTokenId = 1, eosTokenId = 2;
  std::optional<int64_t> padTokenId;
  double initializerRange = 0.02;
  int64_t maxPositionEmbeddings = 2048;

  // Derived sizes (fla's layers).
  int64_t kvHeads() const { return numKvHeads ? numKvHeads : numHeads; }
  int64_t keyDim() const;     // int(hidden * expand_k)
  int64_t valueDim() const;   // int(hidden * expand_v)
  int64_t headK() const { return keyDim() / numHeads; }
  int64_t headV() const { return valueDim() / numHeads; }
  int64_t kvGroups() const { return numHeads / kvHeads(); }
  // intermediate_size, or int(D * ratio * 2/3) rounded up to 256 (RWKV6: int(D * ratio) up to 32)
  int64_t mlpSize() const;
};

// Parses config.json text (`file` names it in errors). Throws lina::Error.
ModelConfig parseConfig(const std::string& jsonText, const std::string& file);
ModelConfig loadConfig(const std::string& path);
// The config as fla writes it (the keys that matter, with model_type), for --init.
std::string configJson(const ModelConfig& config);

struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
};
// Every tensor a checkpoint of `config` holds, in fla's names; lm_head.weight only when untied.
std::vector<ExpectedTensor> expectedTensors(const ModelConfig& config);
int64_t parameterCount(const ModelConfig& config);

}  // namespace lina::model
