#include "library/model/config.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "support/error.h"

namespace lina::model {

namespace {

using json = nlohmann::json;

// Keys HF's PretrainedConfig or fla's training code writes that do not change the forward.
const std::set<std::string> kIgnoredKeys = {
    "architectures", "auto_map", "torch_dtype", "dtype", "transformers_version", "_name_or_path", "use_cache",
    "fuse_swiglu", "fuse_cross_entropy", "fuse_linear_cross_entropy", "use_l2warp", "return_dict",
    "output_hidden_states", "output_attentions", "is_encoder_decoder", "_attn_implementation_autoset",
    "rms_norm_eps",  // the old key name; fla's config classes ignore it (norm_eps is the key)
    "attn_mode",     // chunk / fused_recurrent: the same math; lina picks its own kernels
};

struct Reader {
  const json& j;
  const std::string& file;
  std::set<std::string> seen;

  [[noreturn]] void fail(const std::string& key, const std::string& expected, const json& got) const {
    throw Error("config '" + file + "': key '" + key + "': expected " + expected + "; got " + got.dump());
  }
  const json* find(const std::string& key) {
    seen.insert(key);
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  }
  void integer(const std::string& key, int64_t& out, int64_t min = 1) {
    const json* v = find(key);
    if (!v || v->is_null()) return;
    if (!v->is_number_integer() || v->get<int64_t>() < min) fail(key, "an integer >= " + std::to_string(min), *v);
    out = v->get<int64_t>();
  }
  void optionalInteger(const std::string& key, std::optional<int64_t>& out) {
    const json* v = find(key);
    if (!v || v->is_null()) return;
    if (v->is_array() && !v->empty() && (*v)[0].is_number_integer()) {  // HF allows a list of ids
      out = (*v)[0].get<int64_t>();
      return;
    }
    if (!v->is_number_integer()) fail(key, "an integer or null", *v);
    out = v->get<int64_t>();
  }
  void number(const std::string& key, double& out, bool positive = true) {
    const json* v = find(key);
    if (!v || v->is_null()) return;
    if (!v->is_number() || (positive && !(v->get<double>() > 0))) fail(key, positive ? "a number > 0" : "a number", *v);
    out = v->get<double>();
  }
  void boolean(const std::string& key, bool& out) {
    const json* v = find(key);
    if (!v || v->is_null()) return;
    if (!v->is_boolean()) fail(key, "true or false", *v);
    out = v->get<bool>();
  }
  void mustBeNull(const std::string& key, const std::string& what) {
    const json* v = find(key);
    if (v && !v->is_null())
      throw Error("config '" + file + "': key '" + key + "': " + what + " is not supported by lina; expected null; got " + v->dump());
  }
  void oneOf(const std::string& key, std::string& out, const std::vector<std::string>& allowed, bool nullable) {
    const json* v = find(key);
    if (!v) return;
    if (v->is_null() && nullable) {
      out.clear();
      return;
    }
    std::string list;
    for (const std::string& a : allowed) list += (list.empty() ? "" : ", ") + ("'" + a + "'");
    if (nullable) list += ", null";
    if (!v->is_string()) fail(key, "one of " + list, *v);
    for (const std::string& a : allowed)
      if (v->get<std::string>() == a) {
        out = a;
        return;
      }
    fail(key, "one of " + list, *v);
  }
  void ignore(std::initializer_list<const char*> keys) {
    for (const char* k : keys) seen.insert(k);
  }
};

}  // namespace

const char* modelTypeName(ModelType t) {
  switch (t) {
    case ModelType::GLA: return "gla";
    case ModelType::RetNet: return "retnet";
    case ModelType::GSA: return "gsa";
    case ModelType::RWKV6: return "rwkv6";
  }
  return "?";
}

int64_t ModelConfig::keyDim() const { return static_cast<int64_t>(static_cast<double>(hiddenSize) * expandK); }
int64_t ModelConfig::valueDim() const { return static_cast<int64_t>(static_cast<double>(hiddenSize) * expandV); }

int64_t ModelConfig::mlpSize() const {
  if (intermediateSize) return intermediateSize;
  if (type == ModelType::RWKV6) return (static_cast<int64_t>(static_cast<double>(hiddenSize) * hiddenRatio) + 31) / 32 * 32;
  const int64_t i = static_cast<int64_t>(static_cast<double>(hiddenSize) * hiddenRatio * 2.0 / 3.0);
  return (i + 255) / 256 * 256;
}

ModelConfig parseConfig(const std::string& text, const std::string& file) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error("config '" + file + "': not valid JSON: " + std::string(e.what()));
  }
  if (!j.is_object()) throw Error("config '" + file + "': expected a JSON object; got " + std::string(j.type_name()));
  Reader r{j, file, {}};
  ModelConfig c;
  const json* type = r.find("model_type");
  if (!type) throw Error("config '" + file + "': key 'model_type' is missing; expected 'gla', 'retnet', 'gsa' or 'rwkv6'");
  if (*type == "gla") c.type = ModelType::GLA;
  else if (*type == "retnet") c.type = ModelType::RetNet;
  else if (*type == "gsa") c.type = ModelType::GSA;
  else if (*type == "rwkv6") c.type = ModelType::RWKV6;
  else r.fail("model_type", "'gla', 'retnet', 'gsa' or 'rwkv6' (the model types lina runs)", *type);

  // fla's class defaults (research/fla-spec.md §5.3-5.5).
  if (c.type == ModelType::RetNet) c.expandK = 1, c.expandV = 2, c.hiddenRatio = 2, c.numHeads = 8;
  if (c.type == ModelType::GSA) c.expandK = 1, c.expandV = 1, c.gateLogitNormalizer = 8, c.featureMap = "swish", c.useOutputGate = false;
  if (c.type == ModelType::RWKV6) c.hiddenRatio = 3.5, c.normEps = 1e-5;

  r.integer("hidden_size", c.hiddenSize);
  r.integer("num_hidden_layers", c.numLayers);
  r.integer("num_heads", c.numHeads);
  r.integer("num_kv_heads", c.numKvHeads);
  r.number("hidden_ratio", c.hiddenRatio);
  r.integer("intermediate_size", c.intermediateSize);
  r.integer("vocab_size", c.vocabSize);
  r.number("norm_eps", c.normEps);
  r.boolean("tie_word_embeddings", c.tieWordEmbeddings);
  r.boolean("elementwise_affine", c.elementwiseAffine);
  r.boolean("fuse_norm", c.fuseNorm);
  r.number("initializer_range", c.initializerRange);
  r.integer("max_position_embeddings", c.maxPositionEmbeddings);
  r.integer("bos_token_id", c.bosTokenId, 0);
  std::optional<int64_t> eos;
  r.optionalInteger("eos_token_id", eos);
  if (eos) c.eosTokenId = *eos;
  r.optionalInteger("pad_token_id", c.padTokenId);
  std::string act = c.type == ModelType::RWKV6 ? "sqrelu" : "swish";
  r.oneOf("hidden_act", act, {c.type == ModelType::RWKV6 ? "sqrelu" : "swish"}, false);
  r.mustBeNull("attn", "hybrid softmax-attention layers");
  r.mustBeNull("attnres_block_size", "the attention-residual variant");
  if (c.type == ModelType::RWKV6) {
    r.number("expand_k", c.expandK);
    r.number("expand_v", c.expandV);
    r.integer("proj_low_rank_dim", c.projLowRankDim);
    r.integer("gate_low_rank_dim", c.gateLowRankDim);
    r.boolean("norm_first", c.normFirst);
    r.boolean("norm_bias", c.normBias);
    if (c.numKvHeads && c.numKvHeads != c.numHeads)
      r.fail("num_kv_heads", "null (RWKV6 has no grouped heads)", j["num_kv_heads"]);
  } else if (c.type == ModelType::GSA) {
    r.number("expand_k", c.expandK);
    r.number("expand_v", c.expandV);
    r.number("exapnd_k", c.expandK);  // fla's constructor spelling
    r.number("exapnd_v", c.expandV);
    r.integer("num_slots", c.numSlots);
    r.number("gate_logit_normalizer", c.gateLogitNormalizer);
    r.oneOf("feature_map", c.featureMap, {"swish", "relu", "t2r"}, false);
    r.boolean("use_short_conv", c.useShortConv);
    r.integer("conv_size", c.convSize);
    // Accepted and unused by fla's GSA layer; stale keys of older configs.
    r.ignore({"clamp_min", "clamp_max", "use_output_gate", "use_norm", "share_conv_kernel", "use_rope"});
    if (!j.contains("num_slots") || j["num_slots"].is_null()) c.numSlots = c.headK();
  } else {
    r.number("expand_k", c.expandK);
    r.number("expand_v", c.expandV);
    r.boolean("use_output_gate", c.useOutputGate);
    r.oneOf("feature_map", c.featureMap, {"relu", "sigmoid", "logsigmoid", "swish", "silu", "sqrelu", "gelu"}, true);
    if (c.type == ModelType::GLA) {
      r.boolean("use_short_conv", c.useShortConv);
      r.integer("conv_size", c.convSize);
      const json* clamp = r.find("clamp_min");
      if (clamp && !clamp->is_null()) {
        if (!clamp->is_number()) r.fail("clamp_min", "a number or null", *clamp);
        c.clampMin = clamp->get<double>();
      }
      r.ignore({"use_gk", "use_gv"});  // unused by fla's GLA layer
    } else {
      r.ignore({"use_short_conv", "conv_size"});  // fla's RetNet block never passes them
    }
  }
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!r.seen.count(it.key()) && !kIgnoredKeys.count(it.key()))
      throw Error("config '" + file + "': key '" + it.key() + "' is not a " + modelTypeName(c.type) +
                  " config key lina knows (it may change the model's math); remove it, or check the model type");

  auto check = [&](bool ok, const std::string& what) {
    if (!ok) throw Error("config '" + file + "': " + what);
  };
  check(c.numHeads % c.kvHeads() == 0, "num_heads " + std::to_string(c.numHeads) + " is not a multiple of num_kv_heads " +
                                           std::to_string(c.kvHeads()));
  check(c.keyDim() % c.numHeads == 0 && c.valueDim() % c.numHeads == 0,
        "hidden_size x expand_k = " + std::to_string(c.keyDim()) + " and x expand_v = " + std::to_string(c.valueDim()) +
            " must be multiples of num_heads " + std::to_string(c.numHeads));
  if (c.type == ModelType::RetNet) check(c.headK() <= 256, "RetNet's rotary embedding needs head_k <= 256; got " + std::to_string(c.headK()));
  if (c.type == ModelType::GSA && c.elementwiseAffine)
    check(c.valueDim() == c.hiddenSize, "GSA with elementwise_affine sizes g_norm by hidden_size, so expand_v must be 1; got " +
                                            std::to_string(c.expandV));
  return c;
}

ModelConfig loadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("config '" + path + "': cannot open; expected a model directory with config.json");
  std::stringstream s;
  s << in.rdbuf();
  return parseConfig(s.str(), path);
}

std::string configJson(const ModelConfig& c) {
  json j;
  j["model_type"] = modelTypeName(c.type);
  j["hidden_size"] = c.hiddenSize;
  j["num_hidden_layers"] = c.numLayers;
  j["num_heads"] = c.numHeads;
  j["num_kv_heads"] = c.numKvHeads ? json(c.numKvHeads) : json(nullptr);
  j["expand_k"] = c.expandK;
  j["expand_v"] = c.expandV;
  if (c.hiddenRatio == std::floor(c.hiddenRatio)) j["hidden_ratio"] = static_cast<int64_t>(c.hiddenRatio);
  else j["hidden_ratio"] = c.hiddenRatio;
  j["intermediate_size"] = c.intermediateSize ? json(c.intermediateSize) : json(nullptr);
  j["vocab_size"] = c.vocabSize;
  j["norm_eps"] = c.normEps;
  j["tie_word_embeddings"] = c.tieWordEmbeddings;
  j["elementwise_affine"] = c.elementwiseAffine;
  j["fuse_norm"] = c.fuseNorm;
  j["initializer_range"] = c.initializerRange;
  j["max_position_embeddings"] = c.maxPositionEmbeddings;
  j["bos_token_id"] = c.bosTokenId;
  j["eos_token_id"] = c.eosTokenId;
  j["hidden_act"] = c.type == ModelType::RWKV6 ? "sqrelu" : "swish";
  if (c.type == ModelType::RWKV6) {
    j["proj_low_rank_dim"] = c.projLowRankDim;
    j["gate_low_rank_dim"] = c.gateLowRankDim;
    j["norm_first"] = c.normFirst;
    j["norm_bias"] = c.normBias;
  } else if (c.type == ModelType::GSA) {
    j["num_slots"] = c.numSlots;
    j["gate_logit_normalizer"] = c.gateLogitNormalizer;
    j["feature_map"] = c.featureMap;
    j["use_short_conv"] = c.useShortConv;
    j["conv_size"] = c.convSize;
  } else {
    j["use_output_gate"] = c.useOutputGate;
    j["feature_map"] = c.featureMap.empty() ? json(nullptr) : json(c.featureMap);
    if (c.type == ModelType::GLA) {
      j["use_short_conv"] = c.useShortConv;
      j["conv_size"] = c.convSize;
      j["clamp_min"] = c.clampMin ? json(*c.clampMin) : json(nullptr);
    }
  }
  return j.dump(2) + "\n";
}

namespace {

// fla's RWKV6 block (fla/layers/rwkv6.py): LayerNorms with biases, the five token-shift mixes
// (x_proj, x_bias), the r/w/k/v/g projections (w through the decay LoRA), the bonus, the per-head
// GroupNorm, and the channel mix.
void rwkv6Tensors(const ModelConfig& c, std::vector<ExpectedTensor>& t) {
  const int64_t D = c.hiddenSize, kd = c.keyDim(), vd = c.valueDim(), I = c.mlpSize(), R = c.projLowRankDim;
  auto norm = [&](const std::string& name, int64_t n) {
    t.push_back({name + ".weight", {n}});
    if (c.normBias) t.push_back({name + ".bias", {n}});
  };
  for (int64_t i = 0; i < c.numLayers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    if (c.normFirst && i == 0) norm(p + "pre_norm", D);
    norm(p + "attn_norm", D);
    t.push_back({p + "attn.x_bias", {5, D}});
    t.push_back({p + "attn.bonus", {c.numHeads, c.headK()}});
    t.push_back({p + "attn.x_proj.0.mu", {D}});
    t.push_back({p + "attn.x_proj.0.linear.weight", {R * 5, D}});
    t.push_back({p + "attn.x_proj.2.weight", {D, R * 5}});
    t.push_back({p + "attn.r_proj.linear.weight", {kd, D}});
    t.push_back({p + "attn.w_proj.linear.lora.0.weight", {c.gateLowRankDim, D}});
    t.push_back({p + "attn.w_proj.linear.lora.2.weight", {kd, c.gateLowRankDim}});
    t.push_back({p + "attn.w_proj.linear.lora.2.bias", {kd}});
    t.push_back({p + "attn.k_proj.linear.weight", {kd, D}});
    t.push_back({p + "attn.v_proj.linear.weight", {vd, D}});
    t.push_back({p + "attn.g_proj.linear.weight", {vd, D}});
    if (c.elementwiseAffine) {
      t.push_back({p + "attn.g_norm.weight", {vd}});
      t.push_back({p + "attn.g_norm.bias", {vd}});
    }
    t.push_back({p + "attn.o_proj.weight", {D, vd}});
    norm(p + "ffn_norm", D);
    t.push_back({p + "ffn.key.mu", {D}});
    t.push_back({p + "ffn.key.linear.weight", {I, D}});
    t.push_back({p + "ffn.value.weight", {D, I}});
    t.push_back({p + "ffn.receptance.mu", {D}});
    t.push_back({p + "ffn.receptance.linear.weight", {D, D}});
  }
  norm("model.norm", D);
}

}  // namespace

std::vector<ExpectedTensor> expectedTensors(const ModelConfig& c) {
  const int64_t D = c.hiddenSize, kd = c.keyDim(), vd = c.valueDim(), g = c.kvGroups(), I = c.mlpSize();
  std::vector<ExpectedTensor> t = {{"model.embeddings.weight", {c.vocabSize, D}}};
  if (c.type == ModelType::RWKV6) {
    rwkv6Tensors(c, t);
    if (!c.tieWordEmbeddings) t.push_back({"lm_head.weight", {c.vocabSize, D}});
    return t;
  }
  for (int64_t i = 0; i < c.numLayers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "attn_norm.weight", {D}});
    t.push_back({p + "attn.q_proj.weight", {kd, D}});
    t.push_back({p + "attn.k_proj.weight", {kd / g, D}});
    t.push_back({p + "attn.v_proj.weight", {vd / g, D}});
    if (c.type == ModelType::GSA) {
      t.push_back({p + "attn.f_proj.weight", {c.kvHeads() * c.numSlots, D}});
      if (c.featureMap == "t2r") t.push_back({p + "attn.feature_map.layer.weight", {c.headK(), c.headK()}});
      if (c.elementwiseAffine) t.push_back({p + "attn.g_norm.weight", {D}});
    } else {
      if (c.useOutputGate) t.push_back({p + "attn.g_proj.weight", {vd, D}});
      if (c.type == ModelType::GLA) {
        t.push_back({p + "attn.gk_proj.0.weight", {16, D}});
        t.push_back({p + "attn.gk_proj.1.weight", {kd / g, 16}});
        t.push_back({p + "attn.gk_proj.1.bias", {kd / g}});
      }
      if (c.elementwiseAffine)
        t.push_back({p + (c.useOutputGate && c.fuseNorm ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight"), {c.headV()}});
    }
    t.push_back({p + "attn.o_proj.weight", {D, vd}});
    if (c.useShortConv && c.type != ModelType::RetNet) {
      t.push_back({p + "attn.q_conv1d.weight", {kd, 1, c.convSize}});
      t.push_back({p + "attn.k_conv1d.weight", {kd / g, 1, c.convSize}});
      t.push_back({p + "attn.v_conv1d.weight", {vd / g, 1, c.convSize}});
    }
    t.push_back({p + "mlp_norm.weight", {D}});
    t.push_back({p + "mlp.gate_proj.weight", {I, D}});
    t.push_back({p + "mlp.up_proj.weight", {I, D}});
    t.push_back({p + "mlp.down_proj.weight", {D, I}});
  }
  t.push_back({"model.norm.weight", {D}});
  if (!c.tieWordEmbeddings) t.push_back({"lm_head.weight", {c.vocabSize, D}});
  return t;
}

int64_t parameterCount(const ModelConfig& c) {
  int64_t n = 0;
  for (const ExpectedTensor& t : expectedTensors(c)) {
    int64_t e = 1;
    for (int64_t s : t.shape) e *= s;
    n += e;
  }
  return n;
}

}  // namespace lina::model
