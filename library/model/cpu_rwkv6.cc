// fla's RWKV6 blocks on the CPU, one token at a time in fp32 (research/fla-spec.md §5.7,
// fla/layers/rwkv6.py, fla/models/rwkv6/modeling_rwkv6.py; python/lina/models/rwkv6.py is the
// same model on lina.ops, and a test holds the two to the same logits):
//   residual = layer 0 with norm_first ? LayerNorm(h) : h
//   x = LayerNorm(residual); delta = x_{t-1} - x_t (the token shift)
//   five data-dependent mixes mu_{r,w,k,v,g} = x_proj(x + delta * mu) + x_bias
//   r, k, v, g = linear(x + delta * mu_*); w = -exp(LoRA(x + delta * mu_w))
//   o = r^T S + (r . (u * k)) v; S = diag(exp(w)) S + k v^T (scale 1)
//   a = o_proj(GroupNorm_heads(o) * silu(g)); total = residual + a
//   y = LayerNorm(total); channel mix sigmoid(W_r(y + dy * mu_r)) * W_v(relu(W_k(y + dy * mu_k))^2)
//   h = total + channel mix
#include <cmath>

#include "library/model/cpu_math.h"
#include "library/model/cpu_model.h"
#include "library/model/float_convert.h"

namespace lina::model {

using namespace cpu;

namespace {

// LayerNorm over n values (statistics in double), with an optional weight and bias (nullptr: none);
// in place when y == x. RWKV6's GroupNorm is this per head.
void layerNorm(const float* x, float* y, size_t n, const float* w, const float* b, double eps) {
  double mean = 0, var = 0;
  for (size_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  const double r = 1.0 / std::sqrt(var / static_cast<double>(n) + eps);
  for (size_t i = 0; i < n; ++i) {
    float v = static_cast<float>((x[i] - mean) * r);
    if (w) v *= w[i];
    if (b) v += b[i];
    y[i] = v;
  }
}

const float* orNull(const std::vector<float>& v, size_t offset = 0) { return v.empty() ? nullptr : v.data() + offset; }

// x + delta * mu, elementwise.
std::vector<float> lerp(const std::vector<float>& x, const std::vector<float>& delta, const float* mu) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] + delta[i] * mu[i];
  return out;
}

}  // namespace

void CpuModel::loadRwkv6(const Checkpoint& c) {
  const ModelConfig& cfg = config_;
  auto optional = [&](const std::string& name) { return cfg.normBias ? load(c, name) : Tensor(); };
  if (cfg.normBias) normBias_ = load(c, "model.norm.bias");
  for (int64_t i = 0; i < cfg.numLayers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Rwkv6Layer L;
    if (cfg.normFirst && i == 0) {
      L.preNormW = load(c, p + "pre_norm.weight");
      L.preNormB = optional(p + "pre_norm.bias");
    }
    L.attnNormW = load(c, p + "attn_norm.weight");
    L.attnNormB = optional(p + "attn_norm.bias");
    L.xBias = load(c, p + "attn.x_bias");
    L.bonus = load(c, p + "attn.bonus");
    L.xMu = load(c, p + "attn.x_proj.0.mu");
    L.xProj0 = load(c, p + "attn.x_proj.0.linear.weight");
    L.xProj2 = load(c, p + "attn.x_proj.2.weight");
    L.r = load(c, p + "attn.r_proj.linear.weight");
    L.w0 = load(c, p + "attn.w_proj.linear.lora.0.weight");
    L.w2 = load(c, p + "attn.w_proj.linear.lora.2.weight");
    L.w2b = load(c, p + "attn.w_proj.linear.lora.2.bias");
    L.k = load(c, p + "attn.k_proj.linear.weight");
    L.v = load(c, p + "attn.v_proj.linear.weight");
    L.g = load(c, p + "attn.g_proj.linear.weight");
    if (cfg.elementwiseAffine) {
      L.gNormW = load(c, p + "attn.g_norm.weight");
      L.gNormB = load(c, p + "attn.g_norm.bias");
    }
    L.o = load(c, p + "attn.o_proj.weight");
    L.ffnNormW = load(c, p + "ffn_norm.weight");
    L.ffnNormB = optional(p + "ffn_norm.bias");
    L.keyMu = load(c, p + "ffn.key.mu");
    L.key = load(c, p + "ffn.key.linear.weight");
    L.value = load(c, p + "ffn.value.weight");
    L.recMu = load(c, p + "ffn.receptance.mu");
    L.rec = load(c, p + "ffn.receptance.linear.weight");
    rwkv6_.push_back(std::move(L));
  }
}

void CpuModel::rwkv6Attention(const Rwkv6Layer& L, size_t layer, const Tensor& x, State& st, Tensor& out) const {
  const ModelConfig& c = config_;
  const size_t D = static_cast<size_t>(c.hiddenSize), R = static_cast<size_t>(c.projLowRankDim);
  const int64_t H = c.numHeads, K = c.headK(), V = c.headV();
  float* last = st.conv[layer].data();  // the previous token's attention input
  Tensor delta(D);
  for (size_t i = 0; i < D; ++i) delta[i] = last[i] - x[i];
  std::copy(x.begin(), x.end(), last);
  // The five mixes: tanh(x_proj.0(x + delta * mu)) [5R], then per mix n its own R columns of
  // x_proj.2 (its weight [D][5R] viewed as [D][5][R]) plus x_bias[n].
  Tensor low;
  matvec(L.xProj0, lerp(x, delta, L.xMu.data()), low);
  for (float& a : low) a = std::tanh(a);
  Tensor mu(5 * D);
  for (size_t n = 0; n < 5; ++n)
    for (size_t d = 0; d < D; ++d) {
      float acc = L.xBias[n * D + d];
      for (size_t r = 0; r < R; ++r) acc += low[n * R + r] * L.xProj2[d * 5 * R + n * R + r];
      mu[n * D + d] = acc;
    }
  Tensor r, w, k, v, g, wl;
  matvec(L.r, lerp(x, delta, &mu[0 * D]), r);
  matvec(L.w0, lerp(x, delta, &mu[1 * D]), wl);
  for (float& a : wl) a = std::tanh(a);
  matvec(L.w2, wl, w);
  for (size_t i = 0; i < w.size(); ++i) w[i] = -std::exp(w[i] + L.w2b[i]);  // log decay, < 0
  matvec(L.k, lerp(x, delta, &mu[2 * D]), k);
  matvec(L.v, lerp(x, delta, &mu[3 * D]), v);
  matvec(L.g, lerp(x, delta, &mu[4 * D]), g);
  Tensor o(static_cast<size_t>(H * V), 0.f);
  for (int64_t h = 0; h < H; ++h) {
    const float *rh = &r[h * K], *kh = &k[h * K], *vh = &v[h * V], *wh = &w[h * K], *u = &L.bonus[h * K];
    float* S = st.s1[layer].data() + h * K * V;
    float bonus = 0.f;
    for (int64_t i = 0; i < K; ++i) bonus += rh[i] * u[i] * kh[i];
    for (int64_t j = 0; j < V; ++j) o[h * V + j] = bonus * vh[j];
    for (int64_t i = 0; i < K; ++i) {
      const float decay = std::exp(wh[i]);
      for (int64_t j = 0; j < V; ++j) {
        float& e = S[i * V + j];
        o[h * V + j] += rh[i] * e;  // the state before this token's update
        e = decay * e + kh[i] * vh[j];
      }
    }
  }
  // GroupNorm per head (eps norm_eps), then the output gate.
  for (int64_t h = 0; h < H; ++h) {
    float* oh = &o[h * V];
    layerNorm(oh, oh, static_cast<size_t>(V), orNull(L.gNormW, h * V), orNull(L.gNormB, h * V), c.normEps);
    for (int64_t j = 0; j < V; ++j) oh[j] *= silu(g[h * V + j]);
  }
  matvec(L.o, o, out);
}

void CpuModel::rwkv6Blocks(Tensor& h, State& st) const {
  const ModelConfig& c = config_;
  const size_t D = static_cast<size_t>(c.hiddenSize);
  Tensor residual(D), x(D), a, y(D), key, rec, val;
  for (size_t l = 0; l < rwkv6_.size(); ++l) {
    const Rwkv6Layer& L = rwkv6_[l];
    if (!L.preNormW.empty()) layerNorm(h.data(), residual.data(), D, orNull(L.preNormW), orNull(L.preNormB), c.normEps);
    else residual = h;
    layerNorm(residual.data(), x.data(), D, orNull(L.attnNormW), orNull(L.attnNormB), c.normEps);
    rwkv6Attention(L, l, x, st, a);
    for (size_t i = 0; i < D; ++i) residual[i] += a[i];
    layerNorm(residual.data(), y.data(), D, orNull(L.ffnNormW), orNull(L.ffnNormB), c.normEps);
    float* last = st.conv[l].data() + D;  // the previous token's channel-mix input
    Tensor delta(D);
    for (size_t i = 0; i < D; ++i) delta[i] = last[i] - y[i];
    std::copy(y.begin(), y.end(), last);
    matvec(L.key, lerp(y, delta, L.keyMu.data()), key);
    for (float& e : key) e = std::max(e, 0.f) * std::max(e, 0.f);
    matvec(L.value, key, val);
    matvec(L.rec, lerp(y, delta, L.recMu.data()), rec);
    for (size_t i = 0; i < D; ++i) h[i] = residual[i] + sigmoid(rec[i]) * val[i];
  }
  layerNorm(h.data(), h.data(), D, orNull(norm_), orNull(normBias_), c.normEps);
}

}  // namespace lina::model
