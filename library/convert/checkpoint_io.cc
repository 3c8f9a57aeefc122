#include "library/convert/checkpoint_io.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "support/error.h"

namespace lina::convert {

using json = nlohmann::json;
using model::SafetensorsFile;
using model::TensorData;

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("'" + path + "': cannot open");
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void writeText(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << text;
    if (!out) throw Error("'" + tmp + "': cannot write");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Error("'" + path + "': cannot write");
}

SourceTensors openSource(const std::string& dir) {
  SourceTensors s;
  std::vector<std::string> names;
  const std::string index = dir + "/model.safetensors.index.json";
  if (exists(index)) {
    json j;
    try {
      j = json::parse(readText(index));
    } catch (const json::exception& e) {
      throw Error("'" + index + "': not JSON: " + e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error("'" + index + "': weight_map: expected an object {tensor: file}; it is missing");
    std::set<std::string> unique;
    for (auto& [tensor, file] : j["weight_map"].items()) {
      if (!file.is_string())
        throw Error("'" + index + "': weight_map." + tensor + ": expected a file name; got " +
                    file.dump());
      unique.insert(file.get<std::string>());
    }
    names.assign(unique.begin(), unique.end());
  } else if (exists(dir + "/model.safetensors")) {
    names = {"model.safetensors"};
  } else {
    throw Error(
        "source '" + dir +
        "': no model.safetensors or model.safetensors.index.json (pytorch_model.bin is not read; "
        "re-save with safe_serialization=True)");
  }
  for (const std::string& name : names) {
    s.files.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(dir + "/" + name)));
    for (const auto& [tensor, view] : s.files.back()->tensors()) {
      if (s.byName.count(tensor))
        throw Error("source '" + dir + "': tensor " + tensor + " is in two files");
      s.byName[tensor] = &view;
    }
  }
  return s;
}

std::vector<std::string> writeShards(std::vector<TensorData> out, const std::string& dir, int64_t maxShardBytes) {
  std::vector<std::string> files;
  std::vector<std::vector<size_t>> shards(1);
  int64_t inShard = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t b = static_cast<int64_t>(out[i].bytes.size());
    if (!shards.back().empty() && inShard + b > maxShardBytes) shards.emplace_back(), inShard = 0;
    shards.back().push_back(i);
    inShard += b;
  }
  json weightMap = json::object();
  int64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    if (shards.size() == 1)
      std::snprintf(name, sizeof name, "model.safetensors");
    else
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<TensorData> part;
    for (size_t i : shards[s]) {
      weightMap[out[i].name] = name;
      total += static_cast<int64_t>(out[i].bytes.size());
      part.push_back(std::move(out[i]));
    }
    model::writeSafetensors(dir + "/" + name, part, {{"format", "pt"}});
    files.push_back(name);
  }
  if (shards.size() > 1) {
    json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weightMap}};
    writeText(dir + "/model.safetensors.index.json", index.dump(2) + "\n");
    files.push_back("model.safetensors.index.json");
  }
  return files;
}

std::vector<std::string> copyFiles(const std::string& from, const std::string& to, const std::vector<std::string>& names) {
  std::vector<std::string> copied;
  for (const std::string& f : names) {
    const std::string src = from + "/" + f;
    if (!exists(src)) continue;
    std::ifstream in(src, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    writeText(to + "/" + f, bytes.str());
    copied.push_back(f);
  }
  return copied;
}

}  // namespace lina::convert
