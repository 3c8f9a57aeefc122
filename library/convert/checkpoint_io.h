// The file side of the conversions (llama_to_fla.cc, rwkv6_to_fla.cc): a source checkpoint's
// tensors (model.safetensors or the shards its index names), the converted tensors written as
// fla's save_pretrained writes them (shards of at most a given size, an index), text files
// written through a temporary file and a rename, and the tokenizer files carried along.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "library/model/safetensors.h"

namespace lina::convert {

bool exists(const std::string& path);
std::string readText(const std::string& path);
void writeText(const std::string& path, const std::string& text);

struct SourceTensors {
  std::vector<std::unique_ptr<model::SafetensorsFile>> files;
  std::map<std::string, const model::TensorView*> byName;
};
// model.safetensors, or the shards model.safetensors.index.json names. Throws lina::Error.
SourceTensors openSource(const std::string& dir);

// Writes `tensors` to `dir` in shards of at most maxShardBytes (a larger tensor gets a shard of its
// own) plus model.safetensors.index.json when there are several; returns the files written.
std::vector<std::string> writeShards(std::vector<model::TensorData> tensors, const std::string& dir,
                                     int64_t maxShardBytes);

// Copies those of `names` that exist in `from` to `to`; returns the ones copied.
std::vector<std::string> copyFiles(const std::string& from, const std::string& to,
                                   const std::vector<std::string>& names);

}  // namespace lina::convert
