// An RWKV6 checkpoint (Hugging Face's remote-code layout, rwkv.blocks.{i}.attention.*, or
// BlinkDL's original blocks.{i}.att.*, as safetensors) into fla's RWKV6ForCausalLM layout
// (research/fla-spec.md §7.2), without torch: the five token-shift mixes reordered from the
// source's w,k,v,r,g to fla's r,w,k,v,g, the decay LoRA transposed, the bonus and the mixes
// flattened, every other tensor copied byte for byte, in the source's dtype. The config comes from
// the tensors' shapes (and the source config's layer_norm_epsilon, bos and eos ids), any key
// overridable. Nothing is newly initialised; a source tensor with no counterpart is an error
// naming it. python/lina/convert_rwkv6.py is the same conversion on torch (and reads .pth), and a
// test holds the two byte for byte equal.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "library/convert/llama_to_fla.h"

namespace lina::convert {

struct Rwkv6Conversion {
  std::string source, destination;  // model directories
  std::map<std::string, std::string> configOverrides;  // config.json keys -> JSON values
  int64_t maxShardBytes = int64_t{5} << 30;
};

// Throws lina::Error naming the file, the tensor or key, the expected and the actual value.
ConversionReport convertRwkv6(const Rwkv6Conversion& conversion);

}  // namespace lina::convert
