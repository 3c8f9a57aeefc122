#include "library/model/checkpoint.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "library/model/float_convert.h"
#include "support/error.h"

namespace lina::model {

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

std::string readText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir) {
  Checkpoint c;
  c.dir_ = dir;
  const std::string configPath = dir + "/config.json";
  if (!exists(configPath)) throw Error("model directory '" + dir + "': no config.json; expected fla's save_pretrained layout");
  c.config_ = loadConfig(configPath);
  // The files: one model.safetensors, or the shards an index names.
  std::map<std::string, std::string> fileOf;  // tensor -> file, from the index
  std::vector<std::string> paths;
  const std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (exists(index)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(readText(index));
    } catch (const nlohmann::json::exception& e) {
      throw Error("index '" + index + "': not valid JSON: " + std::string(e.what()));
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error("index '" + index + "': expected an object 'weight_map' {tensor: shard file}");
    std::set<std::string> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw Error("index '" + index + "': weight_map['" + it.key() + "'] must be a file name");
      const std::string f = it.value().get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        throw Error("index '" + index + "': weight_map['" + it.key() + "'] = '" + f + "' must name a file in the directory");
      fileOf[it.key()] = f;
      shards.insert(f);
    }
    for (const std::string& s : shards) paths.push_back(dir + "/" + s);
  } else if (exists(single)) {
    paths.push_back(single);
  } else {
    throw Error("model directory '" + dir + "': neither model.safetensors nor model.safetensors.index.json");
  }
  std::map<std::string, std::string> holder;  // tensor -> file that holds it
  for (const std::string& p : paths) {
    c.files_.push_back(std::make_unique<SafetensorsFile>(SafetensorsFile::open(p)));
    for (const auto& [name, view] : c.files_.back()->tensors()) {
      if (holder.count(name)) throw Error("tensor '" + name + "' is in both '" + holder[name] + "' and '" + p + "'");
      holder[name] = p;
      c.tensors_[name] = &view;
    }
  }
  for (const auto& [name, f] : fileOf)
    if (!holder.count(name)) throw Error("index '" + index + "' puts tensor '" + name + "' in '" + f + "', which does not hold it");

  const ModelConfig& cfg = c.config_;
  std::set<std::string> expected;
  for (const ExpectedTensor& e : expectedTensors(cfg)) {
    expected.insert(e.name);
    auto it = c.tensors_.find(e.name);
    if (it == c.tensors_.end()) {
      if (e.name == "lm_head.weight") continue;  // fla's fallback: the embedding
      throw Error("model directory '" + dir + "': tensor '" + e.name + "' is missing (a " + modelTypeName(cfg.type) +
                  " config with these keys needs it, shape " + shapeText(e.shape) + ")");
    }
    const TensorView& t = *it->second;
    if (t.shape != e.shape)
      throw Error("tensor '" + e.name + "' in '" + holder[e.name] + "': expected shape " + shapeText(e.shape) + " (from config.json); got " +
                  shapeText(t.shape));
    if (t.dtype != DType::BF16 && t.dtype != DType::F16 && t.dtype != DType::F32)
      throw Error("tensor '" + e.name + "' in '" + holder[e.name] + "': expected BF16, F16 or F32; got " + dtypeName(t.dtype));
  }
  for (const auto& [name, _] : c.tensors_)
    if (!expected.count(name) && !(name == "lm_head.weight" && cfg.tieWordEmbeddings))
      throw Error("tensor '" + name + "' in '" + holder[name] + "' is not used by a " + modelTypeName(cfg.type) +
                  " model with this config.json (a different config or model type?)");
  c.lmHeadTied_ = cfg.tieWordEmbeddings || !c.tensors_.count("lm_head.weight");
  return c;
}

const TensorView& Checkpoint::tensor(const std::string& name) const {
  if (name == "lm_head.weight" && lmHeadTied_) return tensor("model.embeddings.weight");
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("model directory '" + dir_ + "': no tensor '" + name + "'");
  return *it->second;
}

TensorData initialisedTensor(const ExpectedTensor& e, double range, DType dtype, std::mt19937_64& rng) {
  if (dtype != DType::BF16 && dtype != DType::F16 && dtype != DType::F32)
    throw Error("dtype: expected bf16, fp16 or fp32; got " + std::string(dtypeName(dtype)));
  std::normal_distribution<float> normal(0.f, static_cast<float>(range));
  TensorData t{e.name, dtype, e.shape, {}};
  int64_t n = 1;
  for (int64_t s : e.shape) n *= s;
  const bool bias = e.name.size() > 5 && e.name.compare(e.name.size() - 5, 5, ".bias") == 0;  // zeros
  const bool norm = !bias && e.name.find("norm") != std::string::npos;  // norm weights: ones
  t.bytes.resize(static_cast<size_t>(n) * dtypeBytes(dtype));
  for (int64_t i = 0; i < n; ++i) {
    const float x = bias ? 0.f : norm ? 1.f : normal(rng);
    unsigned char* at = t.bytes.data() + i * dtypeBytes(dtype);
    if (dtype == DType::F32) {
      std::memcpy(at, &x, 4);
    } else {
      const uint16_t h = dtype == DType::BF16 ? floatToBf16(x) : floatToHalf(x);
      std::memcpy(at, &h, 2);
    }
  }
  return t;
}

void writeRandomCheckpoint(const ModelConfig& config, const std::string& dir, DType dtype, uint64_t seed) {
  if (dtype != DType::BF16 && dtype != DType::F16 && dtype != DType::F32)
    throw Error("dtype: expected bf16, fp16 or fp32; got " + std::string(dtypeName(dtype)));
  ::mkdir(dir.c_str(), 0755);
  std::mt19937_64 rng(seed);
  std::vector<TensorData> tensors;
  for (const ExpectedTensor& e : expectedTensors(config)) tensors.push_back(initialisedTensor(e, config.initializerRange, dtype, rng));
  writeSafetensors(dir + "/model.safetensors", tensors, {{"format", "pt"}});
  const std::string tmp = dir + "/config.json.tmp";
  {
    std::ofstream out(tmp);
    out << configJson(config);
    if (!out) throw Error("cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), (dir + "/config.json").c_str()) != 0) throw Error("cannot write '" + dir + "/config.json'");
}

}  // namespace lina::model
