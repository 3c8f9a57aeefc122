#include "library/convert/llama_to_fla.h"

#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>

#include "library/convert/checkpoint_io.h"
#include "library/model/checkpoint.h"
#include "library/model/safetensors.h"
#include "support/error.h"

namespace lina::convert {

namespace {

using json = nlohmann::json;
using model::DType;
using model::ExpectedTensor;
using model::SafetensorsFile;
using model::TensorData;
using model::TensorView;

// The source's config.json, Llama or Mistral.
struct SourceConfig {
  int64_t hidden = 0, layers = 0, heads = 0, kvHeads = 0, intermediate = 0, vocab = 0, headDim = 0;
  double eps = 1e-6;
  bool tied = false;
  int64_t bos = 1, eos = 2;
};

SourceConfig readSourceConfig(const std::string& dir) {
  const std::string path = dir + "/config.json";
  if (!exists(path))
    throw Error("source '" + dir +
                "': no config.json; expected a Hugging Face Llama or Mistral model directory");
  json j;
  try {
    j = json::parse(readText(path));
  } catch (const json::exception& e) {
    throw Error("'" + path + "': not JSON: " + e.what());
  }
  auto str = [&](const char* key) {
    return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
  };
  const std::string type = str("model_type");
  if (type != "llama" && type != "mistral")
    throw Error(
        "'" + path + "': model_type: expected \"llama\" or \"mistral\"; got \"" + type +
        "\" (lina-convert llama-to-gla/gsa converts those two; rwkv6 has its own subcommand)");
  auto integer = [&](const char* key, bool required, int64_t fallback) -> int64_t {
    if (!j.contains(key) || j[key].is_null()) {
      if (required) throw Error("'" + path + "': " + key + ": expected an integer; it is missing");
      return fallback;
    }
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1)
      throw Error("'" + path + "': " + key + ": expected a positive integer; got " + j[key].dump());
    return j[key].get<int64_t>();
  };
  SourceConfig c;
  c.hidden = integer("hidden_size", true, 0);
  c.layers = integer("num_hidden_layers", true, 0);
  c.heads = integer("num_attention_heads", true, 0);
  c.kvHeads = integer("num_key_value_heads", false, c.heads);
  c.intermediate = integer("intermediate_size", true, 0);
  c.vocab = integer("vocab_size", true, 0);
  c.headDim = integer("head_dim", false, c.hidden / c.heads);
  if (c.headDim * c.heads != c.hidden)
    throw Error("'" + path + "': head_dim: expected hidden_size / num_attention_heads = " +
                std::to_string(c.hidden / c.heads) +
                " (fla's layers have head_dim * heads = hidden_size at expand_k = 1); got " +
                std::to_string(c.headDim));
  if (c.heads % c.kvHeads != 0)
    throw Error("'" + path +
                "': num_key_value_heads: expected a divisor of num_attention_heads = " +
                std::to_string(c.heads) + "; got " + std::to_string(c.kvHeads));
  if (j.contains("rms_norm_eps") && j["rms_norm_eps"].is_number())
    c.eps = j["rms_norm_eps"].get<double>();
  if (j.contains("tie_word_embeddings") && j["tie_word_embeddings"].is_boolean())
    c.tied = j["tie_word_embeddings"].get<bool>();
  if (j.contains("bos_token_id") && j["bos_token_id"].is_number_integer())
    c.bos = j["bos_token_id"].get<int64_t>();
  if (j.contains("eos_token_id") && j["eos_token_id"].is_number_integer())
    c.eos = j["eos_token_id"].get<int64_t>();
  if (j.contains("attention_bias") && j["attention_bias"].is_boolean() &&
      j["attention_bias"].get<bool>())
    throw Error(
        "'" + path +
        "': attention_bias: expected false (fla's GLA and GSA projections have no bias); got true");
  return c;
}

// The Llama key an fla tensor is copied from ("" for the parameters the target adds).
std::string sourceKey(const std::string& fla) {
  if (fla == "model.embeddings.weight") return "model.embed_tokens.weight";
  if (fla == "model.norm.weight" || fla == "lm_head.weight") return fla;
  const std::string layers = "model.layers.";
  if (fla.rfind(layers, 0) != 0) return "";
  const size_t dot = fla.find('.', layers.size());
  const std::string prefix = fla.substr(0, dot + 1), rest = fla.substr(dot + 1);
  static const std::map<std::string, std::string> within = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"attn.q_proj.weight", "self_attn.q_proj.weight"},
      {"attn.k_proj.weight", "self_attn.k_proj.weight"},
      {"attn.v_proj.weight", "self_attn.v_proj.weight"},
      {"attn.o_proj.weight", "self_attn.o_proj.weight"},
      {"mlp_norm.weight", "post_attention_layernorm.weight"},
      {"mlp.gate_proj.weight", "mlp.gate_proj.weight"},
      {"mlp.up_proj.weight", "mlp.up_proj.weight"},
      {"mlp.down_proj.weight", "mlp.down_proj.weight"}};
  auto it = within.find(rest);
  return it == within.end() ? "" : prefix + it->second;
}

model::ModelConfig targetConfig(const SourceConfig& s, const LlamaConversion& c,
                                const std::string& sourcePath) {
  json j;
  j["model_type"] = c.target == model::ModelType::GSA ? "gsa" : "gla";
  j["hidden_size"] = s.hidden;
  j["num_hidden_layers"] = s.layers;
  j["num_heads"] = s.heads;
  j["num_kv_heads"] = s.kvHeads == s.heads ? json(nullptr) : json(s.kvHeads);
  j["expand_k"] = 1;
  j["expand_v"] = 1;
  j["intermediate_size"] = s.intermediate;
  j["vocab_size"] = s.vocab;
  j["norm_eps"] = s.eps;  // fla's per-module eps copy is lost on save; the config carries it
  j["tie_word_embeddings"] = s.tied;
  j["bos_token_id"] = s.bos;
  j["eos_token_id"] = s.eos;
  if (c.target == model::ModelType::GLA)
    j["use_output_gate"] = false;  // gla_7B.json, the conversion target
  for (const auto& [key, value] : c.configOverrides) {
    try {
      j[key] = json::parse(value);
    } catch (const json::exception&) {
      j[key] = value;  // a bare word: a string
    }
  }
  return model::parseConfig(j.dump(),
                            "the converted config (from " + sourcePath + " and --config)");
}

}  // namespace

std::string ConversionReport::text() const {
  std::ostringstream os;
  const char* kinds[] = {"copied", "initialised", "dropped"};
  for (const TensorRecord& t : tensors)
    os << kinds[t.kind] << "  " << t.name << " " << model::shapeText(t.shape)
       << (t.source.empty() || t.source == t.name ? "" : "  <- " + t.source) << "\n";
  os << "copied " << copied << ", initialised " << initialised << ", dropped " << dropped << "; "
     << files.size() << " file(s)\n";
  return os.str();
}

ConversionReport convertLlama(const LlamaConversion& c) {
  const SourceConfig src = readSourceConfig(c.source);
  ConversionReport report;
  report.config = targetConfig(src, c, c.source + "/config.json");
  const model::ModelConfig& cfg = report.config;
  if (c.maxShardBytes < 1)
    throw Error("--max-shard-size: expected a positive size; got " +
                std::to_string(c.maxShardBytes));
  SourceTensors tensors = openSource(c.source);

  // One dtype for the whole source (kept in the output).
  std::optional<DType> dtype;
  for (const auto& [name, view] : tensors.byName) {
    if (view->dtype != DType::BF16 && view->dtype != DType::F16 && view->dtype != DType::F32)
      throw Error("source tensor " + name + ": dtype: expected BF16, F16 or F32; got " +
                  model::dtypeName(view->dtype));
    if (dtype && *dtype != view->dtype)
      throw Error("source tensor " + name + ": dtype " + model::dtypeName(view->dtype) +
                  " differs from the others' " + model::dtypeName(*dtype) +
                  " (convert a checkpoint saved in one dtype)");
    dtype = view->dtype;
  }
  if (!dtype) throw Error("source '" + c.source + "': holds no tensors");

  std::mt19937_64 rng(c.seed);
  std::set<std::string> used;
  std::vector<TensorData> out;
  for (const ExpectedTensor& e : model::expectedTensors(cfg)) {
    const std::string key = sourceKey(e.name);
    if (key.empty()) {
      out.push_back(model::initialisedTensor(e, cfg.initializerRange, *dtype, rng));
      report.tensors.push_back({e.name, "", e.shape, TensorRecord::Initialised});
      ++report.initialised;
      continue;
    }
    auto it = tensors.byName.find(key);
    if (it == tensors.byName.end()) {
      if (e.name == "lm_head.weight" && tensors.byName.count("model.embed_tokens.weight"))
        it = tensors.byName.find(
            "model.embed_tokens.weight");  // a tied source into an untied target
      else
        throw Error("source '" + c.source + "': tensor " + key + " (for " + e.name + " " +
                    model::shapeText(e.shape) +
                    ") is missing; is it a complete Llama/Mistral checkpoint?");
    }
    const TensorView& v = *it->second;
    if (v.shape != e.shape)
      throw Error("source tensor " + it->first + ": shape: expected " + model::shapeText(e.shape) +
                  " for " + e.name + " under the converted config; got " +
                  model::shapeText(v.shape) + " (check --config against the source)");
    TensorData t{e.name, v.dtype, v.shape, {}};
    t.bytes.assign(static_cast<const unsigned char*>(v.data),
                   static_cast<const unsigned char*>(v.data) + v.bytes);
    out.push_back(std::move(t));
    used.insert(it->first);
    report.tensors.push_back({e.name, it->first, e.shape, TensorRecord::Copied});
    ++report.copied;
  }
  for (const auto& [name, view] : tensors.byName)
    if (!used.count(name)) {
      report.tensors.push_back({name, name, view->shape, TensorRecord::Dropped});
      ++report.dropped;
    }

  ::mkdir(c.destination.c_str(), 0755);
  report.files = writeShards(std::move(out), c.destination, c.maxShardBytes);
  writeText(c.destination + "/config.json", model::configJson(cfg));
  report.files.push_back("config.json");
  // The tokenizer travels with the weights.
  for (const std::string& f : copyFiles(c.source, c.destination,
                                        {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                                         "special_tokens_map.json"}))
    report.files.push_back(f);
  return report;
}

}  // namespace lina::convert
