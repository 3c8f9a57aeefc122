// Llama / Mistral (Hugging Face layout) -> fla GLA or GSA checkpoint (research/fla-spec.md §7.1):
// the embeddings, the norms, the MLPs and the q/k/v/o projections are copied byte for byte with
// their GQA layout; the parameters the target adds (GLA's gate projections and output norm,
// GSA's slot projection and norm) are initialised as fla initialises them; the config is derived
// from the source's (hidden size, layers, heads, kv heads, MLP size, vocabulary, norm eps, tied
// embeddings), with expand_k = expand_v = 1 so that every copied shape matches, and any key can
// be overridden. The dtype is kept. Shards are written no larger than a given size. A source it
// does not understand is refused with the offending key.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "library/model/config.h"

namespace lina::convert {

struct LlamaConversion {
  std::string source, destination;  // model directories
  model::ModelType target = model::ModelType::GLA;
  std::map<std::string, std::string>
      configOverrides;  // config.json keys -> JSON values ("false", "4", "\"relu\"")
  int64_t maxShardBytes = int64_t{5} << 30;  // fla's save_pretrained default (5 GB)
  uint64_t seed = 0;                         // for the initialised parameters
};

struct TensorRecord {
  std::string name, source;  // source: the Llama key (copied), empty otherwise
  std::vector<int64_t> shape;
  enum Kind { Copied, Initialised, Dropped } kind = Copied;
};

struct ConversionReport {
  model::ModelConfig config;
  std::vector<TensorRecord> tensors;  // every tensor written, then every source tensor dropped
  std::vector<std::string> files;     // written, relative to the destination
  int copied = 0, initialised = 0, dropped = 0;
  std::string text() const;  // the coverage table lina-convert prints
};

// Throws lina::Error naming the file, the key, the expected and the actual value.
ConversionReport convertLlama(const LlamaConversion& conversion);

}  // namespace lina::convert
