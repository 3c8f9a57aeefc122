#include "library/model/cpu_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "library/model/cpu_math.h"
#include "library/model/float_convert.h"
#include "support/error.h"

namespace lina::model {

using namespace cpu;

namespace {

float featureMap(const std::string& f, float x) {
  if (f.empty()) return x;
  if (f == "relu") return std::max(x, 0.f);
  if (f == "sigmoid") return sigmoid(x);
  if (f == "logsigmoid") return logsigmoid(x);
  if (f == "swish" || f == "silu") return silu(x);
  if (f == "sqrelu") return std::max(x, 0.f) * std::max(x, 0.f);
  if (f == "gelu") return 0.5f * x * (1.f + std::erf(x / std::sqrt(2.f)));
  throw Error("feature_map '" + f + "' has no CPU implementation");
}

// A causal depthwise convolution step with SiLU: `window` [channels][W] (oldest first) shifts in x.
void shortConv(std::vector<float>& x, float* window, const std::vector<float>& weight, int64_t W) {
  for (size_t c = 0; c < x.size(); ++c) {
    float* win = window + c * W;
    for (int64_t w = 0; w + 1 < W; ++w) win[w] = win[w + 1];
    win[W - 1] = x[c];
    float acc = 0.f;
    for (int64_t w = 0; w < W; ++w) acc += win[w] * weight[c * W + w];
    x[c] = silu(acc);
  }
}

}  // namespace

CpuModel::Tensor CpuModel::load(const Checkpoint& c, const std::string& name, bool required) const {
  (void)required;
  return tensorToFloat(c.tensor(name));
}

CpuModel::CpuModel(const Checkpoint& c) : config_(c.config()) {
  const ModelConfig& cfg = config_;
  embed_ = load(c, "model.embeddings.weight");
  norm_ = load(c, "model.norm.weight");
  lmHead_ = load(c, "lm_head.weight");
  if (cfg.type == ModelType::RWKV6) {
    loadRwkv6(c);
    return;
  }
  for (int64_t i = 0; i < cfg.numLayers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Layer L;
    L.attnNorm = load(c, p + "attn_norm.weight");
    L.q = load(c, p + "attn.q_proj.weight");
    L.k = load(c, p + "attn.k_proj.weight");
    L.v = load(c, p + "attn.v_proj.weight");
    L.o = load(c, p + "attn.o_proj.weight");
    if (cfg.type == ModelType::GSA) {
      L.f = load(c, p + "attn.f_proj.weight");
      if (cfg.featureMap == "t2r") L.t2r = load(c, p + "attn.feature_map.layer.weight");
      if (cfg.elementwiseAffine) L.gNorm = load(c, p + "attn.g_norm.weight");
    } else {
      if (cfg.useOutputGate) L.g = load(c, p + "attn.g_proj.weight");
      if (cfg.type == ModelType::GLA) {
        L.gk0 = load(c, p + "attn.gk_proj.0.weight");
        L.gk1 = load(c, p + "attn.gk_proj.1.weight");
        L.gk1b = load(c, p + "attn.gk_proj.1.bias");
      }
      if (cfg.elementwiseAffine)
        L.gNorm = load(c, p + (cfg.useOutputGate && cfg.fuseNorm ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight"));
    }
    if (cfg.useShortConv && cfg.type != ModelType::RetNet) {
      L.qConv = load(c, p + "attn.q_conv1d.weight");
      L.kConv = load(c, p + "attn.k_conv1d.weight");
      L.vConv = load(c, p + "attn.v_conv1d.weight");
    }
    L.mlpNorm = load(c, p + "mlp_norm.weight");
    L.gate = load(c, p + "mlp.gate_proj.weight");
    L.up = load(c, p + "mlp.up_proj.weight");
    L.down = load(c, p + "mlp.down_proj.weight");
    layers_.push_back(std::move(L));
  }
}

CpuModel::State CpuModel::newState() const {
  const ModelConfig& c = config_;
  State s;
  const size_t H = static_cast<size_t>(c.numHeads), K = static_cast<size_t>(c.headK()), V = static_cast<size_t>(c.headV());
  const size_t M = static_cast<size_t>(c.numSlots);
  for (int64_t i = 0; i < c.numLayers; ++i) {
    if (c.type == ModelType::RWKV6) {
      s.s1.emplace_back(H * K * V, 0.f);
      s.s2.emplace_back();
      s.conv.emplace_back(2 * static_cast<size_t>(c.hiddenSize), 0.f);
      continue;
    }
    if (c.type == ModelType::GSA) {
      s.s1.emplace_back(H * K * M, 0.f);
      s.s2.emplace_back(H * M * V, 0.f);
    } else {
      s.s1.emplace_back(H * K * V, 0.f);
      s.s2.emplace_back();
    }
    const size_t channels = static_cast<size_t>(c.keyDim() + c.keyDim() / c.kvGroups() + c.valueDim() / c.kvGroups());
    s.conv.emplace_back(c.useShortConv && c.type != ModelType::RetNet ? channels * static_cast<size_t>(c.convSize) : 0, 0.f);
  }
  return s;
}

void CpuModel::attention(const Layer& L, size_t layer, const Tensor& x, State& st, Tensor& out) const {
  const ModelConfig& c = config_;
  const int64_t H = c.numHeads, K = c.headK(), V = c.headV(), G = c.kvGroups();
  Tensor q, k, v;
  matvec(L.q, x, q);
  matvec(L.k, x, k);
  matvec(L.v, x, v);
  if (!L.qConv.empty()) {
    float* w = st.conv[layer].data();
    shortConv(q, w, L.qConv, c.convSize);
    shortConv(k, w + q.size() * c.convSize, L.kConv, c.convSize);
    shortConv(v, w + (q.size() + k.size()) * c.convSize, L.vConv, c.convSize);
  }
  Tensor o(static_cast<size_t>(H * V), 0.f);
  if (c.type == ModelType::GSA) {
    const int64_t M = c.numSlots;
    Tensor f;
    matvec(L.f, x, f);
    for (float& a : q) a = c.featureMap == "t2r" ? a : featureMap(c.featureMap, a);
    for (float& a : k) a = c.featureMap == "t2r" ? a : featureMap(c.featureMap, a);
    if (c.featureMap == "t2r") {  // Linear(head_k, head_k) then ReLU, per head
      auto t2r = [&](Tensor& t) {
        for (size_t h = 0; h < t.size() / static_cast<size_t>(K); ++h) {
          Tensor in(t.begin() + static_cast<int64_t>(h) * K, t.begin() + static_cast<int64_t>(h + 1) * K), y;
          matvec(L.t2r, in, y);
          for (int64_t i = 0; i < K; ++i) t[h * K + i] = std::max(y[i], 0.f);
        }
      };
      t2r(q);
      t2r(k);
    }
    for (float& a : v) a = silu(a);
    for (float& a : f) a = logsigmoid(a) / static_cast<float>(c.gateLogitNormalizer);
    for (int64_t h = 0; h < H; ++h) {
      const int64_t kvh = h / G;
      const float *qh = &q[h * K], *kh = &k[kvh * K], *vh = &v[kvh * V], *fh = &f[kvh * M];
      float* Hk = st.s1[layer].data() + h * K * M;
      float* Hv = st.s2[layer].data() + h * M * V;
      Tensor s(M), ok(M, 0.f);
      for (int64_t m = 0; m < M; ++m) s[m] = 1.f - std::exp(fh[m]);
      for (int64_t i = 0; i < K; ++i)
        for (int64_t m = 0; m < M; ++m) {
          float& e = Hk[i * M + m];
          e = e * std::exp(fh[m]) + kh[i] * s[m];
          ok[m] += e * qh[i];  // scale 1 (fla's GSA layer)
        }
      const float mx = *std::max_element(ok.begin(), ok.end());
      double z = 0;
      for (float& a : ok) z += (a = std::exp(a - mx));
      for (float& a : ok) a = static_cast<float>(a / z);
      for (int64_t m = 0; m < M; ++m)
        for (int64_t j = 0; j < V; ++j) {
          float& e = Hv[m * V + j];
          e = std::exp(fh[m]) * e + s[m] * vh[j];
          o[h * V + j] += e * ok[m];
        }
    }
    for (float& a : o) a = silu(a);
    rmsnorm(o.data(), o.size(), L.gNorm.empty() ? nullptr : L.gNorm.data(), 1e-5);  // fla's rms_norm_linear default eps
    matvec(L.o, o, out);
    return;
  }
  Tensor gk;
  if (c.type == ModelType::GLA) {
    Tensor low;
    matvec(L.gk0, x, low);
    matvec(L.gk1, low, gk);
    for (size_t i = 0; i < gk.size(); ++i) {
      gk[i] = logsigmoid(gk[i] + L.gk1b[i]) / 16.f;
      if (c.clampMin) gk[i] = std::max(gk[i], static_cast<float>(*c.clampMin));
    }
  }
  for (float& a : q) a = featureMap(c.featureMap, a);
  for (float& a : k) a = featureMap(c.featureMap, a);
  if (c.type == ModelType::RetNet) {  // rotate-half RoPE, base 10000, at the state's position
    auto rope = [&](float* t) {
      for (int64_t i = 0; i < K / 2; ++i) {
        const double inv = std::pow(10000.0, -2.0 * static_cast<double>(i) / static_cast<double>(K));
        const double a = static_cast<double>(st.position) * inv;
        const float cs = static_cast<float>(std::cos(a)), sn = static_cast<float>(std::sin(a));
        const float x1 = t[i], x2 = t[i + K / 2];
        t[i] = x1 * cs - x2 * sn;
        t[i + K / 2] = x2 * cs + x1 * sn;
      }
    };
    for (int64_t h = 0; h < H; ++h) rope(&q[h * K]);
    for (int64_t h = 0; h < H / G; ++h) rope(&k[h * K]);
  }
  const float scale = 1.f / std::sqrt(static_cast<float>(K));
  for (int64_t h = 0; h < H; ++h) {
    const int64_t kvh = h / G;
    const float *qh = &q[h * K], *kh = &k[kvh * K], *vh = &v[kvh * V];
    float* S = st.s1[layer].data() + h * K * V;
    const float retention = static_cast<float>(1.0 - std::pow(2.0, -5.0 - static_cast<double>(h)));
    for (int64_t i = 0; i < K; ++i) {
      const float a = c.type == ModelType::GLA ? std::exp(gk[kvh * K + i]) : retention;
      for (int64_t j = 0; j < V; ++j) {
        float& e = S[i * V + j];
        e = a * e + kh[i] * vh[j];
        o[h * V + j] += scale * qh[i] * e;
      }
    }
  }
  Tensor g;
  if (c.useOutputGate) matvec(L.g, x, g);
  for (int64_t h = 0; h < H; ++h) {
    rmsnorm(&o[h * V], static_cast<size_t>(V), L.gNorm.empty() ? nullptr : L.gNorm.data(), c.normEps);
    if (c.useOutputGate)
      for (int64_t j = 0; j < V; ++j) o[h * V + j] *= silu(g[h * V + j]);
  }
  matvec(L.o, o, out);
}

std::vector<float> CpuModel::step(int64_t token, State& st) const {
  const ModelConfig& c = config_;
  if (token < 0 || token >= c.vocabSize)
    throw Error("token id " + std::to_string(token) + ": expected 0 to " + std::to_string(c.vocabSize - 1) + " (vocab_size)");
  const size_t D = static_cast<size_t>(c.hiddenSize);
  Tensor h(embed_.begin() + token * c.hiddenSize, embed_.begin() + (token + 1) * c.hiddenSize), x, a, gt, up, y;
  if (c.type == ModelType::RWKV6) {
    rwkv6Blocks(h, st);
    Tensor logits;
    matvec(lmHead_, h, logits);
    ++st.position;
    return logits;
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    x = h;
    rmsnorm(x.data(), D, L.attnNorm.data(), c.normEps);
    attention(L, l, x, st, a);
    for (size_t i = 0; i < D; ++i) h[i] += a[i];  // the residual
    x = h;
    rmsnorm(x.data(), D, L.mlpNorm.data(), c.normEps);
    matvec(L.gate, x, gt);
    matvec(L.up, x, up);
    for (size_t i = 0; i < gt.size(); ++i) gt[i] = silu(gt[i]) * up[i];
    matvec(L.down, gt, y);
    for (size_t i = 0; i < D; ++i) h[i] += y[i];
  }
  rmsnorm(h.data(), D, norm_.data(), c.normEps);
  Tensor logits;
  matvec(lmHead_, h, logits);
  ++st.position;
  return logits;
}

std::vector<int64_t> CpuModel::greedy(const std::vector<int64_t>& prompt, int64_t maxNew, std::vector<float>* lastLogits) const {
  if (prompt.empty()) throw Error("prompt: expected at least one token; got none");
  State st = newState();
  std::vector<float> logits;
  for (int64_t t : prompt) logits = step(t, st);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < maxNew; ++i) {
    const int64_t next = std::max_element(logits.begin(), logits.end()) - logits.begin();
    out.push_back(next);
    if (next == config_.eosTokenId || i + 1 == maxNew) break;
    logits = step(next, st);
  }
  if (lastLogits) *lastLogits = logits;
  return out;
}

}  // namespace lina::model
