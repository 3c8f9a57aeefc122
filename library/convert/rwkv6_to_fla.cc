#include "library/convert/rwkv6_to_fla.h"

#include <sys/stat.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "library/convert/checkpoint_io.h"
#include "support/error.h"

namespace lina::convert {

namespace {

using json = nlohmann::json;
using model::DType;
using model::TensorData;
using model::TensorView;

// fla's mix order r,w,k,v,g as indices into the source's w,k,v,r,g.
constexpr int kSourceMix[5] = {3, 0, 1, 2, 4};
constexpr const char* kFlaMixNames = "rwkvg";

// BlinkDL's names -> the HF layout's (emb -> embeddings, ln0 -> pre_ln, att -> attention, ...).
std::string hfName(const std::string& key) {
  if (key.rfind("rwkv.", 0) == 0) return key;
  std::string k = key;
  auto replace = [&](const std::string& from, const std::string& to, bool prefix) {
    const size_t at = prefix ? (k.rfind(from, 0) == 0 ? 0 : std::string::npos) : k.find(from);
    if (at != std::string::npos) k.replace(at, from.size(), to);
  };
  replace("emb.", "rwkv.embeddings.", true);
  replace("blocks.0.ln0.", "rwkv.blocks.0.pre_ln.", true);
  replace(".att.", ".attention.", false);
  replace(".ffn.", ".feed_forward.", false);
  replace("blocks.", "rwkv.blocks.", true);
  replace("ln_out.", "rwkv.ln_out.", true);
  return k;
}

struct Source {
  SourceTensors files;
  std::map<std::string, const TensorView*> byName;  // in the HF layout's names
  std::string dir;

  const TensorView& need(const std::string& key) const {
    auto it = byName.find(key);
    if (it == byName.end())
      throw Error("source '" + dir + "': tensor '" + key + "' is missing; expected an RWKV6 checkpoint (HF or BlinkDL layout)");
    return *it->second;
  }
};

// The elements of `v` picked by index(out_index) into a new tensor of `shape`.
template <typename Index>
TensorData gather(const std::string& name, const TensorView& v, std::vector<int64_t> shape, Index index) {
  const size_t e = model::dtypeBytes(v.dtype);
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  TensorData t{name, v.dtype, std::move(shape), std::vector<unsigned char>(static_cast<size_t>(n) * e)};
  const unsigned char* in = static_cast<const unsigned char*>(v.data);
  for (int64_t i = 0; i < n; ++i) std::memcpy(t.bytes.data() + i * e, in + index(i) * e, e);
  return t;
}

TensorData copy(const std::string& name, const TensorView& v, std::vector<int64_t> shape) {
  return gather(name, v, std::move(shape), [](int64_t i) { return i; });
}

// [rows, cols] -> its transpose [cols, rows].
TensorData transpose(const std::string& name, const TensorView& v) {
  const int64_t rows = v.shape[0], cols = v.shape[1];
  return gather(name, v, {cols, rows}, [&](int64_t i) { return (i % rows) * cols + i / rows; });
}

}  // namespace

ConversionReport convertRwkv6(const Rwkv6Conversion& c) {
  if (c.maxShardBytes < 1) throw Error("--max-shard-size: expected a positive size; got " + std::to_string(c.maxShardBytes));
  Source src;
  src.dir = c.source;
  src.files = openSource(c.source);
  for (const auto& [name, view] : src.files.byName) src.byName[hfName(name)] = view;
  std::optional<DType> dtype;
  for (const auto& [name, view] : src.byName) {
    if (view->dtype != DType::BF16 && view->dtype != DType::F16 && view->dtype != DType::F32)
      throw Error("source tensor " + name + ": dtype: expected BF16, F16 or F32; got " + model::dtypeName(view->dtype));
    if (dtype && *dtype != view->dtype)
      throw Error("source tensor " + name + ": dtype " + model::dtypeName(view->dtype) + " differs from the others' " +
                  model::dtypeName(*dtype) + " (convert a checkpoint saved in one dtype)");
    dtype = view->dtype;
  }
  std::set<int64_t> blocks;
  for (const auto& [name, view] : src.byName)
    if (name.rfind("rwkv.blocks.", 0) == 0) blocks.insert(std::stoll(name.substr(12, name.find('.', 12) - 12)));
  if (blocks.empty() || *blocks.rbegin() + 1 != static_cast<int64_t>(blocks.size()))
    throw Error("source '" + c.source + "': expected tensors rwkv.blocks.0 .. rwkv.blocks.N-1 (or BlinkDL's blocks.N); found " +
                std::to_string(blocks.size()) + " block indices");

  // The config, from the shapes (and the source config.json when there is one).
  json source = json::object();
  if (exists(c.source + "/config.json")) {
    try {
      source = json::parse(readText(c.source + "/config.json"));
    } catch (const json::exception& e) {
      throw Error("'" + c.source + "/config.json': not JSON: " + e.what());
    }
  }
  const std::string a = "rwkv.blocks.0.attention.";
  const TensorView& emb = src.need("rwkv.embeddings.weight");
  const int64_t C = emb.shape.at(1);
  json j;
  j["model_type"] = "rwkv6";
  j["hidden_size"] = C;
  j["vocab_size"] = emb.shape[0];
  j["num_hidden_layers"] = static_cast<int64_t>(blocks.size());
  j["num_heads"] = src.need(a + "time_faaaa").shape.at(0);
  auto ratio = [&](int64_t n) {
    return n % C == 0 ? json(n / C) : json(static_cast<double>(n) / static_cast<double>(C));
  };
  j["expand_k"] = ratio(src.need(a + "receptance.weight").shape.at(0));
  j["expand_v"] = ratio(src.need(a + "value.weight").shape.at(0));
  j["proj_low_rank_dim"] = src.need(a + "time_maa_w1").shape.at(1) / 5;
  j["gate_low_rank_dim"] = src.need(a + "time_decay_w1").shape.at(1);
  j["intermediate_size"] = src.need("rwkv.blocks.0.feed_forward.key.weight").shape.at(0);
  j["norm_eps"] = source.value("layer_norm_epsilon", 1e-5);
  j["tie_word_embeddings"] = !src.byName.count("head.weight");
  j["bos_token_id"] = source.value("bos_token_id", 0);
  j["eos_token_id"] = source.value("eos_token_id", 0);
  for (const auto& [key, value] : c.configOverrides) {
    try {
      j[key] = json::parse(value);
    } catch (const json::exception&) {
      j[key] = value;
    }
  }
  ConversionReport report;
  report.config = model::parseConfig(j.dump(), "the converted config (from " + c.source + " and --config)");
  const model::ModelConfig& cfg = report.config;

  std::set<std::string> used;
  std::map<std::string, TensorData> out;
  std::map<std::string, std::string> from;
  auto take = [&](const std::string& key) -> const TensorView& {
    used.insert(key);
    return src.need(key);
  };
  auto put = [&](TensorData t, const std::string& source) {
    from[t.name] = source;
    std::string name = t.name;
    out.emplace(name, std::move(t));
  };
  auto flat = [](const TensorView& v) { return std::vector<int64_t>{v.numel()}; };
  put(copy("model.embeddings.weight", take("rwkv.embeddings.weight"), emb.shape), "rwkv.embeddings.weight");
  for (int64_t i : blocks) {
    const std::string s = "rwkv.blocks." + std::to_string(i) + ".", d = "model.layers." + std::to_string(i) + ".";
    auto same = [&](const std::string& to, const std::string& key) {
      const TensorView& v = take(key);
      put(copy(to, v, v.shape), key);
    };
    for (const char* p : {"weight", "bias"}) {
      if (i == 0 && cfg.normFirst) same(d + "pre_norm." + p, s + "pre_ln." + p);
      same(d + "attn_norm." + p, s + "ln1." + p);
      same(d + "ffn_norm." + p, s + "ln2." + p);
    }
    const std::string sa = s + "attention.", da = d + "attn.";
    const TensorView& mu = take(sa + "time_maa_x");
    put(copy(da + "x_proj.0.mu", mu, flat(mu)), sa + "time_maa_x");
    // time_maa_w1 [C, 5r] (chunks w,k,v,r,g) -> x_proj.0.linear.weight [5r, C] (chunks r,w,k,v,g).
    const TensorView& w1 = take(sa + "time_maa_w1");
    const int64_t r5 = w1.shape.at(1), r = r5 / 5;
    put(gather(da + "x_proj.0.linear.weight", w1, {r5, C},
               [&](int64_t e) {
                 const int64_t row = e / C, col = e % C;
                 return col * r5 + kSourceMix[row / r] * r + row % r;
               }),
        sa + "time_maa_w1");
    // time_maa_w2 [5, r, C] -> x_proj.2.weight [C, 5r] (chunks r,w,k,v,g).
    const TensorView& w2 = take(sa + "time_maa_w2");
    put(gather(da + "x_proj.2.weight", w2, {C, r5},
               [&](int64_t e) {
                 const int64_t row = e / r5, col = e % r5;
                 return (kSourceMix[col / r] * r + col % r) * C + row;
               }),
        sa + "time_maa_w2");
    // x_bias [5, C]: the mixes' own vectors in fla's order.
    std::vector<const TensorView*> mixes;
    for (int n = 0; n < 5; ++n) mixes.push_back(&take(sa + "time_maa_" + std::string(1, kFlaMixNames[n])));
    {
      const size_t e = model::dtypeBytes(w1.dtype);
      TensorData t{da + "x_bias", w1.dtype, {5, C}, std::vector<unsigned char>(static_cast<size_t>(5 * C) * e)};
      for (int n = 0; n < 5; ++n) {
        if (mixes[n]->numel() != C || mixes[n]->dtype != w1.dtype)
          throw Error("source tensor " + sa + "time_maa_" + kFlaMixNames[n] + ": expected " + std::to_string(C) +
                      " elements; got " + model::shapeText(mixes[n]->shape));
        std::memcpy(t.bytes.data() + static_cast<size_t>(n * C) * e, mixes[n]->data, static_cast<size_t>(C) * e);
      }
      put(std::move(t), sa + "time_maa_{r,w,k,v,g}");
    }
    for (auto [fla, name] : {std::pair{"r_proj", "receptance"}, {"k_proj", "key"}, {"v_proj", "value"}, {"g_proj", "gate"}})
      same(da + fla + ".linear.weight", sa + name + ".weight");
    put(transpose(da + "w_proj.linear.lora.0.weight", take(sa + "time_decay_w1")), sa + "time_decay_w1");
    put(transpose(da + "w_proj.linear.lora.2.weight", take(sa + "time_decay_w2")), sa + "time_decay_w2");
    const TensorView& decay = take(sa + "time_decay");
    put(copy(da + "w_proj.linear.lora.2.bias", decay, flat(decay)), sa + "time_decay");
    const TensorView& bonus = take(sa + "time_faaaa");
    put(copy(da + "bonus", bonus, {cfg.numHeads, bonus.numel() / cfg.numHeads}), sa + "time_faaaa");
    for (const char* p : {"weight", "bias"}) same(da + "g_norm." + p, sa + "ln_x." + p);
    same(da + "o_proj.weight", sa + "output.weight");
    const std::string sf = s + "feed_forward.", df = d + "ffn.";
    same(df + "key.linear.weight", sf + "key.weight");
    const TensorView& mk = take(sf + "time_maa_k");
    put(copy(df + "key.mu", mk, flat(mk)), sf + "time_maa_k");
    same(df + "value.weight", sf + "value.weight");
    same(df + "receptance.linear.weight", sf + "receptance.weight");
    const TensorView& mr = take(sf + "time_maa_r");
    put(copy(df + "receptance.mu", mr, flat(mr)), sf + "time_maa_r");
  }
  for (const char* p : {"weight", "bias"}) {
    const TensorView& v = take(std::string("rwkv.ln_out.") + p);
    put(copy(std::string("model.norm.") + p, v, v.shape), std::string("rwkv.ln_out.") + p);
  }
  if (!cfg.tieWordEmbeddings) {
    const TensorView& v = take("head.weight");
    put(copy("lm_head.weight", v, v.shape), "head.weight");
  }
  for (const auto& [name, view] : src.byName)
    if (!used.count(name))
      throw Error("source '" + c.source + "': tensor '" + name +
                  "' has no counterpart in fla's RWKV6; is this an RWKV6 (not v5 or v7) checkpoint?");

  // Every tensor fla's RWKV6 of this config holds, with its shape, in fla's order.
  std::vector<TensorData> ordered;
  for (const model::ExpectedTensor& e : model::expectedTensors(cfg)) {
    auto it = out.find(e.name);
    if (it == out.end()) throw Error("source '" + c.source + "': nothing maps to fla's '" + e.name + "'; check the source and --config");
    if (it->second.shape != e.shape)
      throw Error("source tensor " + from[e.name] + ": shape: expected " + model::shapeText(e.shape) + " for " + e.name +
                  " under the converted config; got " + model::shapeText(it->second.shape) + " (check --config)");
    report.tensors.push_back({e.name, from[e.name], e.shape, TensorRecord::Copied});
    ++report.copied;
    ordered.push_back(std::move(it->second));
    out.erase(it);
  }
  if (!out.empty()) throw Error("converted tensor '" + out.begin()->first + "' is not in fla's RWKV6 of this config; check --config");
  ::mkdir(c.destination.c_str(), 0755);
  report.files = writeShards(std::move(ordered), c.destination, c.maxShardBytes);
  writeText(c.destination + "/config.json", model::configJson(cfg));
  report.files.push_back("config.json");
  for (const std::string& f : copyFiles(c.source, c.destination,
                                        {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                                         "rwkv_vocab_v20230424.txt"}))
    report.files.push_back(f);
  return report;
}

}  // namespace lina::convert
