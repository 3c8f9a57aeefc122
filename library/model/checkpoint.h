// A model directory in fla's save_pretrained layout: config.json plus model.safetensors or a
// sharded model.safetensors.index.json. Opening validates every tensor the config implies
// (present, shape, a float dtype) before anything runs, and rejects tensors the config has no use
// for; errors name the directory or file, the tensor, the expected and the actual value.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "library/model/config.h"
#include "library/model/safetensors.h"

namespace lina::model {

class Checkpoint {
 public:
  static Checkpoint open(const std::string& dir);
  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  // A validated tensor; "lm_head.weight" resolves to the embedding when tied or absent.
  const TensorView& tensor(const std::string& name) const;
  bool lmHeadTied() const { return lmHeadTied_; }
  size_t files() const { return files_.size(); }

 private:
  std::string dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> tensors_;
  bool lmHeadTied_ = false;
};

// One tensor initialised as fla's _init_weights does: norm weights 1, biases 0, every other
// weight ~ N(0, range), in `dtype` (BF16, F16 or F32), drawn from `rng`.
TensorData initialisedTensor(const ExpectedTensor& tensor, double range, DType dtype, std::mt19937_64& rng);

// Writes a randomly initialised checkpoint of `config` to `dir` as fla initialises one
// (weights ~ N(0, initializer_range), biases 0, norm weights 1), in `dtype` (BF16, F16 or F32),
// with config.json. Deterministic in `seed`.
void writeRandomCheckpoint(const ModelConfig& config, const std::string& dir, DType dtype, uint64_t seed);

}  // namespace lina::model
