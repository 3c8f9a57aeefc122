// The model runner's kernels around lina's attention (library/model/gpu_model.cc): fla's
// blocks (research/fla-spec.md §5) with fla's roundings — every tensor fla stores in the model
// dtype is rounded to it here at the same point, math in fp32. One source, instantiated for
// bf16, fp16 and fp32 at the end (extern "C" names lina_model_<kernel>_<type>). Only the
// runner's module includes it: it defines kernels.
#pragma once

#include "lina/device/common.cuh"
#include "lina/device/model_params.h"

namespace lina::model_kernels {

template <typename T>
__device__ __forceinline__ float ld(const void* p, long long i) {
  return to_float(static_cast<const T*>(p)[i]);
}
template <typename T>
__device__ __forceinline__ void st(void* p, long long i, float x) {
  static_cast<T*>(p)[i] = from_float<T>(x);
}
// x rounded to T and back (fla stores the value in the model dtype there).
template <typename T>
__device__ __forceinline__ float rnd(float x) {
  return to_float(from_float<T>(x));
}

__device__ __forceinline__ float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }
__device__ __forceinline__ float logsigmoidf(float x) { return fminf(x, 0.f) - log1pf(expf(-fabsf(x))); }

__device__ __forceinline__ float feature(int map, float x) {
  switch (map) {
    case kRelu: return fmaxf(x, 0.f);
    case kSigmoid: return sigmoidf(x);
    case kLogSigmoid: return logsigmoidf(x);
    case kSwish: return x * sigmoidf(x);
    case kSqRelu: return fmaxf(x, 0.f) * fmaxf(x, 0.f);
    case kGelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    default: return x;
  }
}

// The block's sum of v (every thread gets it); `red` is 32 floats of shared memory.
__device__ __forceinline__ float block_sum(float v, float* red) {
  v = warp_sum(v);
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
  if (lane == 0) red[w] = v;
  __syncthreads();
  float t = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.f;
  if (w == 0) t = warp_sum(t);
  if (threadIdx.x == 0) red[0] = t;
  __syncthreads();
  const float r = red[0];
  __syncthreads();
  return r;
}

// Every RMSNorm here sums its squares in one order, so the standalone kernels and the fused
// GEMV's prologues (lina-run --gemv 1 and 0) compute the same bits: the values of a group (a row
// of D, a (row, head) of V, GSA's row of H*V) are stashed in fp32 in shared memory; thread t of a
// 256-thread block sums j = t, t + 256, ...; a butterfly over each warp; then the 8 warp sums
// in order. kNormThreads is that block size.
constexpr int kNormThreads = 256;

// Writes group g's warp partials to red[8 g + warp] (every thread of the block calls it).
__device__ __forceinline__ void norm_partials(const float* stash, int n, int g, float* red) {
  float s = 0.f;
  for (int j = threadIdx.x; j < n; j += kNormThreads) s += stash[j] * stash[j];
  s = warp_sum(s);
  if ((threadIdx.x & 31) == 0) red[8 * g + (threadIdx.x >> 5)] = s;
}
// After a barrier: 1 / RMS of group g.
__device__ __forceinline__ float norm_rstd(const float* red, int g, int n, float eps) {
  float s = 0.f;
#pragma unroll
  for (int w = 0; w < 8; ++w) s += red[8 * g + w];
  return rsqrtf(s / static_cast<float>(n) + eps);
}

// Element i of input row `row` of an add + norm (AddNormArgs); writes the residual if asked.
template <typename T>
__device__ __forceinline__ float add_norm_input(const AddNormArgs& p, long long row, int i, bool writeResidual) {
  const long long at = row * p.D + i;
  if (p.tokens) {
    const float s = ld<T>(p.embed, static_cast<long long>(p.tokens[row]) * p.D + i);
    if (writeResidual) st<T>(p.rOut, at, s);
    return s;
  }
  if (p.a) {
    const float s = ld<T>(p.a, at) + ld<T>(p.rIn, at);
    if (writeResidual && !(p.flags & 2)) st<T>(p.rOut, at, s);
    return (p.flags & 1) ? rnd<T>(s) : s;
  }
  return ld<T>(p.rIn, at);
}

// One row per block of kNormThreads: x = RMSNorm(the add) * w (AddNormArgs), rows in place
// (rOut = rIn).
template <typename T>
__device__ void add_norm(const AddNormArgs& p, void* x) {
  extern __shared__ float stash[];  // [D] + 8
  float* red = stash + p.D;
  const long long out = blockIdx.x, row = p.rowMap ? p.rowMap[out] : out;
  for (int i = threadIdx.x; i < p.D; i += blockDim.x) stash[i] = add_norm_input<T>(p, row, i, true);
  __syncthreads();
  norm_partials(stash, p.D, 0, red);
  __syncthreads();
  const float rstd = norm_rstd(red, 0, p.D, p.eps);
  for (int i = threadIdx.x; i < p.D; i += blockDim.x) st<T>(x, out * p.D + i, stash[i] * rstd * ld<T>(p.w, i));
}

// One block per (row, kv head): the kv head's q channels (its G query heads), k and v after the
// short convolutions (+ SiLU), in shared memory as fp32 of the T values fla stores; then the
// feature maps, the gate, RoPE and the GQA repeat into the attention's [rows][H][d] inputs.
// A kv head's channels (and their conv cache) belong to one block, so the cache is updated in
// place without races; blocks over the heads keep a decode step (one row) from running on one SM.
template <typename T>
__device__ void pre_attention(const PreAttentionArgs& p) {
  extern __shared__ float qkv[];  // [G*K (q of the group) + K (k) + V (v)]
  const long long row = blockIdx.x;
  const int kh = blockIdx.y, G = p.H / p.Hkv;
  const int qC = p.H * p.K, kC = p.Hkv * p.K, vC = p.Hkv * p.V, C = qC + kC + vC;
  const int gq = G * p.K, Cb = gq + p.K + p.V;
  const int seq = p.rowSeq[row];
  for (int c = threadIdx.x; c < Cb; c += blockDim.x) {
    const int part = c < gq ? 0 : c < gq + p.K ? 1 : 2;
    // `local`: the channel within its projection (the conv weight's row); `channel`: in the cache.
    const int local = part == 0 ? kh * gq + c : part == 1 ? kh * p.K + (c - gq) : kh * p.V + (c - gq - p.K);
    const int col = part == 0 ? local : part == 1 ? p.kOffset + local : p.vOffset + local;
    const int channel = part == 0 ? local : part == 1 ? qC + local : qC + kC + local;
    float x = ld<T>(p.y, row * p.ldy + col);
    if (p.convWeight[0]) {
      const int W = p.convW;
      T* cache = static_cast<T*>(p.convCache) + (static_cast<long long>(seq) * C + channel) * W;
      const void* wt = p.convWeight[part];
      float acc = 0.f;
      if (p.decode) {  // the window: the cached inputs shifted by one, then this input
        float win[8];
        for (int w = 0; w + 1 < W; ++w) win[w] = to_float(cache[w + 1]);
        win[W - 1] = x;
        for (int w = 0; w < W; ++w) {
          acc += win[w] * ld<T>(wt, static_cast<long long>(local) * W + w);
          cache[w] = from_float<T>(win[w]);
        }
      } else {  // the previous W - 1 rows of the same sequence (zeros before its first token)
        const int bos = p.cuSeqlens[seq], eos = p.cuSeqlens[seq + 1];
        for (int w = 0; w < W; ++w) {
          const long long src = row - (W - 1) + w;
          if (src >= bos) acc += ld<T>(p.y, src * p.ldy + col) * ld<T>(wt, static_cast<long long>(local) * W + w);
        }
        // The cache after the prompt: its last W inputs, zero-padded on the left.
        const int slot = W - 1 - (eos - 1 - static_cast<int>(row));
        if (slot >= 0) cache[slot] = from_float<T>(x);
        if (row == eos - 1)
          for (int w = 0; w < W - (eos - bos); ++w) cache[w] = from_float<T>(0.f);
      }
      x = rnd<T>(acc * sigmoidf(acc));
    }
    qkv[c] = x;
  }
  __syncthreads();
  const float* k = qkv + gq;
  const float* v = qkv + gq + p.K;
  const long long qk = row * p.H * p.K, vv = row * p.H * p.V;
  const bool t2r = p.featureMap == kT2r;
  // q and k (feature map, t2r, RoPE) of the group's query heads; k of the kv head repeated.
  for (int e = threadIdx.x; e < gq; e += blockDim.x) {
    const int h = kh * G + e / p.K, i = e % p.K;
    for (int which = 0; which < 2; ++which) {
      const float* src = which == 0 ? qkv + (e / p.K) * p.K : k;
      float val;
      if (t2r) {
        float acc = 0.f;
        for (int j = 0; j < p.K; ++j) acc += ld<T>(p.t2r, static_cast<long long>(i) * p.K + j) * src[j];
        val = rnd<T>(fmaxf(rnd<T>(acc), 0.f));
      } else {
        val = rnd<T>(feature(p.featureMap, src[i]));
      }
      if (p.model == kRetNet) {  // rotate-half RoPE, base 10000, cos/sin rounded to T as fla's tables
        const int half = p.K / 2, f = i % half;
        const float inv = 1.f / powf(10000.f, static_cast<float>(2 * f) / static_cast<float>(p.K));
        const float ang = static_cast<float>(p.rowPos[row]) * inv;
        const float cs = rnd<T>(cosf(ang)), sn = rnd<T>(sinf(ang));
        const int other = i < half ? i + half : i - half;
        const float partner = rnd<T>(feature(p.featureMap, src[other]));
        val = i < half ? val * cs - partner * sn : val * cs + partner * sn;
      }
      st<T>(which == 0 ? p.q : p.k, qk + static_cast<long long>(h) * p.K + i, val);
    }
  }
  for (int e = threadIdx.x; e < G * p.V; e += blockDim.x) {
    const int h = kh * G + e / p.V, j = e % p.V;
    float val = v[j];
    if (p.model == kGsa) val = rnd<T>(val * sigmoidf(val));
    st<T>(p.v, vv + static_cast<long long>(h) * p.V + j, val);
  }
  if (p.model == kGla) {  // gk = logsigmoid(gk_proj(x)) / 16 (optionally clamped), per key channel
    for (int e = threadIdx.x; e < gq; e += blockDim.x) {
      const int h = kh * G + e / p.K, i = e % p.K, c = kh * p.K + i;
      float acc = ld<T>(p.lowRankBias, c);
      for (int j = 0; j < p.lowRankDim; ++j)
        acc += ld<T>(p.lowRank, static_cast<long long>(c) * p.lowRankDim + j) * ld<T>(p.y, row * p.ldy + p.gateOffset + j);
      float g = rnd<T>(logsigmoidf(rnd<T>(acc)) / p.gateNormalizer);
      if (p.hasClamp) g = fmaxf(g, p.clampMin);
      st<T>(p.gate, qk + static_cast<long long>(h) * p.K + i, g);
    }
  } else if (p.model == kGsa) {  // f = logsigmoid(f) / normalizer, s = 1 - exp(f), per slot
    const long long gm = row * p.H * p.M;
    for (int e = threadIdx.x; e < G * p.M; e += blockDim.x) {
      const int h = kh * G + e / p.M, m = e % p.M;
      const float f = rnd<T>(logsigmoidf(ld<T>(p.y, row * p.ldy + p.gateOffset + kh * p.M + m)) / p.gateNormalizer);
      st<T>(p.gate, gm + static_cast<long long>(h) * p.M + m, f);
      st<T>(p.slots, gm + static_cast<long long>(h) * p.M + m, 1.f - expf(f));
    }
  }
}

// GLA / RetNet: per (row, head) o = RMSNorm_V(o) * w (* swish(g)); GSA: per row
// RMSNorm_{H*V}(silu(o)) * w, both in fp32 and stored in T. A group is what one norm covers: a
// (row, head) of V values, or GSA's whole row of H*V; group g starts at element g * n of o.
__device__ __forceinline__ int post_group_size(const PostAttentionArgs& p) { return p.model == kGsa ? p.H * p.V : p.V; }
template <typename T>
__device__ __forceinline__ float post_input(const PostAttentionArgs& p, long long e) {
  const float o = ld<T>(p.o, e);
  return p.model == kGsa ? rnd<T>(o * sigmoidf(o)) : o;
}
// The output of element e (in o's [rows][H*V] numbering) from its input s and its group's rstd.
template <typename T>
__device__ __forceinline__ float post_value(const PostAttentionArgs& p, long long e, float s, float rstd) {
  const int n = post_group_size(p), j = static_cast<int>(e % n);
  float y = s * rstd * (p.normWeight ? ld<T>(p.normWeight, j) : 1.f);
  if (p.model != kGsa && p.gOffset >= 0) {
    const long long row = e / (static_cast<long long>(p.H) * p.V);
    const int hv = static_cast<int>(e % (static_cast<long long>(p.H) * p.V));  // h * V + j
    const float g = ld<T>(p.y, row * p.ldy + p.gOffset + hv);
    y = y * g * sigmoidf(g);
  }
  return y;
}

// One block of kNormThreads per group ((row, head); GSA: row).
template <typename T>
__device__ void post_attention(const PostAttentionArgs& p) {
  extern __shared__ float stash[];  // [n] + 8
  const int n = post_group_size(p);
  float* red = stash + n;
  const long long g = p.model == kGsa ? blockIdx.x : static_cast<long long>(blockIdx.x) * p.H + blockIdx.y;
  for (int j = threadIdx.x; j < n; j += blockDim.x) stash[j] = post_input<T>(p, g * n + j);
  __syncthreads();
  norm_partials(stash, n, 0, red);
  __syncthreads();
  const float rstd = norm_rstd(red, 0, n, p.eps);
  for (int j = threadIdx.x; j < n; j += blockDim.x) st<T>(p.out, g * n + j, post_value<T>(p, g * n + j, stash[j], rstd));
}

// SwiGLU: out = silu(gate) * up from the fused [rows][2I] gate | up projection.
template <typename T>
__device__ void swiglu(const void* gu, void* out, long long rows, int I) {
  const long long n = rows * I;
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long r = e / I, i = e % I;
    const float g = ld<T>(gu, r * 2 * I + i), u = ld<T>(gu, r * 2 * I + I + i);
    st<T>(out, e, g * sigmoidf(g) * u);
  }
}

// Few rows (decode): y[r][n] = sum_d x[r][d] W[n][d], one warp per output column n (warps
// stride over the columns), 16-byte loads of W's row, fp32 sums rounded to T (as cuBLAS's bf16
// GEMM with fp32 accumulation stores them). cuBLAS's GemmEx runs its GEMM tiles at these
// shapes, at about a third of the weights' bandwidth on an H100 (ncu,
// bench/results/2026-12-07-h100-decode-parity-accuracy). With `swigluI` > 0 the columns n and
// n + swigluI are the MLP's gate and up, and the warp writes silu(gate) * up (each rounded to T
// first, as fla's separate projections store them). x may be in shared memory. Needs Din a
// multiple of 16 / sizeof(T) and rows <= kGemvRows (model_params.h).
template <typename T>
__device__ void gemv_columns(const void* W, const void* x, void* y, int rows, int N, int Din, int swigluI) {
  constexpr int kVec = 16 / sizeof(T);
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const int vecs = Din / kVec;
  const uint4* xv = static_cast<const uint4*>(x);
  auto dotRow = [&](long long wrow, float* acc) {
    const uint4* wv = static_cast<const uint4*>(W) + wrow * vecs;
#pragma unroll 4
    for (int c = lane; c < vecs; c += 32) {
      uint4 wraw = __ldg(wv + c);
      const T* w8 = reinterpret_cast<const T*>(&wraw);
      for (int r = 0; r < rows; ++r) {
        uint4 xraw = xv[static_cast<long long>(r) * vecs + c];
        const T* x8 = reinterpret_cast<const T*>(&xraw);
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < kVec; ++e) s += to_float(w8[e]) * to_float(x8[e]);
        acc[r] += s;
      }
    }
    for (int r = 0; r < rows; ++r) acc[r] = warp_sum(acc[r]);
  };
  for (long long n = static_cast<long long>(blockIdx.x) * warps + (threadIdx.x >> 5); n < N;
       n += static_cast<long long>(gridDim.x) * warps) {
    float a[kGemvRows] = {0.f, 0.f, 0.f, 0.f};
    dotRow(n, a);
    if (swigluI > 0) {
      float u[kGemvRows] = {0.f, 0.f, 0.f, 0.f};
      dotRow(n + swigluI, u);
      if (lane == 0)
        for (int r = 0; r < rows; ++r) {
          const float g = rnd<T>(a[r]), up = rnd<T>(u[r]);
          st<T>(y, static_cast<long long>(r) * N + n, g * sigmoidf(g) * up);
        }
      continue;
    }
    if (lane == 0)
      for (int r = 0; r < rows; ++r) st<T>(y, static_cast<long long>(r) * N + n, a[r]);
  }
}

// The GEMV with its input computed by the block itself into shared memory (GemvFusedArgs):
// the add + norm before a projection, or the gated norm before o_proj. Every block computes the
// few rows (the residual is written by block 0, to a buffer no block reads), so no separate
// kernel and no round trip through global memory precede the projection. All loads of the
// rows are issued at once (one element per thread per step over rows x Din), and the values are
// those the standalone kernels store (the same sums in the same order, the same roundings).
// Shared memory: fused_gemv_smem (rows x Din of T, then fp32 stash, then 8 floats per group).
template <typename T>
__device__ void gemv_fused(const GemvFusedArgs& g) {
  extern __shared__ uint4 xsRaw[];
  const int Din = g.Din, total = g.rows * Din;
  T* xs = reinterpret_cast<T*>(xsRaw);
  float* stash = reinterpret_cast<float*>(xsRaw + (static_cast<long long>(total) * sizeof(T) + 15) / 16);
  float* red = stash + total;
  const bool norm = g.prologue == kGemvAddNorm;
  const int n = norm ? Din : post_group_size(g.post), groups = total / n;
  for (int e = threadIdx.x; e < total; e += blockDim.x) {
    if (norm) {
      const int r = e / Din;
      const long long row = g.norm.rowMap ? g.norm.rowMap[r] : r;
      stash[e] = add_norm_input<T>(g.norm, row, e % Din, blockIdx.x == 0);
    } else {
      stash[e] = post_input<T>(g.post, e);
    }
  }
  __syncthreads();
  for (int q = 0; q < groups; ++q) norm_partials(stash + static_cast<long long>(q) * n, n, q, red);
  __syncthreads();
  for (int e = threadIdx.x; e < total; e += blockDim.x) {
    const int q = e / n;
    const float rstd = norm_rstd(red, q, n, norm ? g.norm.eps : g.post.eps);
    xs[e] = from_float<T>(norm ? stash[e] * rstd * ld<T>(g.norm.w, e % Din) : post_value<T>(g.post, e, stash[e], rstd));
  }
  __syncthreads();
  gemv_columns<T>(g.W, xs, g.y, g.rows, g.N, Din, g.swigluI);
}

// An order-preserving key of a float (larger float, larger key).
__device__ __forceinline__ unsigned order_key(float x) {
  const unsigned u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The largest key t with reduce(key >= t) >= target: built bit by bit from the top. `count`
// gives the block's total of the keys' weights at or above a threshold.
template <typename F>
__device__ unsigned threshold_key(F total_at_or_above, float target) {
  unsigned t = 0;
  for (int b = 31; b >= 0; --b) {
    const unsigned cand = t | (1u << b);
    if (total_at_or_above(cand) >= target) t = cand;
  }
  return t;
}

// One block per sequence: the next token from its logits as HF's generate draws it —
// argmax (temperature 0; the first maximum), else logits / temperature, top-k, then top-p
// (the smallest top set holding top_p of the mass), then a draw from the softmax over what is
// left (Gumbel-max with a counter-based hash of seed, sequence, step and token: no state).
template <typename T>
__device__ void sample(const SampleArgs& p) {
  __shared__ float red[32];
  __shared__ int redIndex[32];
  const int seq = blockIdx.x;
  const long long base = static_cast<long long>(seq) * p.vocab;
  const int step = p.steps[seq];
  const bool greedy = p.temperature <= 0.f || p.topK == 1;
  const float invT = greedy ? 1.f : 1.f / p.temperature;
  unsigned kKey = 0, pKey = 0;
  float mx = -3.4e38f;
  if (!greedy) {
    for (long long i = threadIdx.x; i < p.vocab; i += blockDim.x) mx = fmaxf(mx, ld<T>(p.logits, base + i) * invT);
    mx = warp_max(mx);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
    __syncthreads();
    mx = -3.4e38f;
    for (int w = 0; w < static_cast<int>(blockDim.x >> 5); ++w) mx = fmaxf(mx, red[w]);
    __syncthreads();
    if (p.topK > 0 && p.topK < p.vocab) {
      kKey = threshold_key(
          [&](unsigned t) {
            float c = 0.f;
            for (long long i = threadIdx.x; i < p.vocab; i += blockDim.x) c += order_key(ld<T>(p.logits, base + i) * invT) >= t;
            return block_sum(c, red);
          },
          static_cast<float>(p.topK));
    }
    if (p.topP < 1.f) {
      auto mass = [&](unsigned t) {
        float m = 0.f;
        for (long long i = threadIdx.x; i < p.vocab; i += blockDim.x) {
          const float z = ld<T>(p.logits, base + i) * invT;
          const unsigned key = order_key(z);
          if (key >= kKey && key >= t) m += expf(z - mx);
        }
        return block_sum(m, red);
      };
      pKey = threshold_key(mass, p.topP * mass(0u));
    }
  }
  float best = -3.4e38f;
  int bestIndex = 0x7fffffff;
  for (long long i = threadIdx.x; i < p.vocab; i += blockDim.x) {
    const float z = ld<T>(p.logits, base + i) * invT;
    float score = z;
    if (!greedy) {
      const unsigned key = order_key(z);
      if (key < kKey || key < pKey) continue;
      const unsigned long long h =
          mix64(p.seed ^ mix64((static_cast<unsigned long long>(seq) << 32) ^ static_cast<unsigned>(step)) ^ mix64(i + 1));
      const float u = (static_cast<float>(h >> 40) + 0.5f) * (1.f / 16777216.f);
      score = z - logf(-logf(u));
    }
    if (score > best || (score == best && i < bestIndex)) best = score, bestIndex = static_cast<int>(i);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float b2 = __shfl_xor_sync(0xffffffffu, best, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, bestIndex, o);
    if (b2 > best || (b2 == best && i2 < bestIndex)) best = b2, bestIndex = i2;
  }
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = best, redIndex[threadIdx.x >> 5] = bestIndex;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < static_cast<int>(blockDim.x >> 5); ++w)
      if (red[w] > best || (red[w] == best && redIndex[w] < bestIndex)) best = red[w], bestIndex = redIndex[w];
    const int token = bestIndex == 0x7fffffff ? 0 : bestIndex;
    p.tokens[seq] = token;
    if (step < p.maxSteps) p.history[static_cast<long long>(step) * p.numSequences + seq] = token;
    p.steps[seq] = step + 1;
    if (p.positions) p.positions[seq] += 1;
  }
}

template <typename T>
__device__ void to_f32(const void* in, float* out, long long n) {
  for (long long e = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<long long>(gridDim.x) * blockDim.x)
    out[e] = ld<T>(in, e);
}

}  // namespace lina::model_kernels

#define LINA_MODEL_KERNELS(T, suffix)                                                                               \
  extern "C" __global__ void lina_model_add_norm_##suffix(lina::model_kernels::AddNormArgs p, void* x) {          \
    lina::model_kernels::add_norm<T>(p, x);                                                                         \
  }                                                                                                                 \
  extern "C" __global__ void lina_model_pre_attention_##suffix(lina::model_kernels::PreAttentionArgs p) {            \
    lina::model_kernels::pre_attention<T>(p);                                                                       \
  }                                                                                                                 \
  extern "C" __global__ void lina_model_post_attention_##suffix(lina::model_kernels::PostAttentionArgs p) {          \
    lina::model_kernels::post_attention<T>(p);                                                                      \
  }                                                                                                                 \
  extern "C" __global__ void lina_model_swiglu_##suffix(const void* gu, void* out, long long rows, int I) {          \
    lina::model_kernels::swiglu<T>(gu, out, rows, I);                                                               \
  }                                                                                                                 \
  extern "C" __global__ void lina_model_gemv_##suffix(const void* W, const void* x, void* y, int rows, int N, int Din, \
                                                      int swigluI) {                                                \
    lina::model_kernels::gemv_columns<T>(W, x, y, rows, N, Din, swigluI);                                           \
  }                                                                                                                 \
  extern "C" __global__ void lina_model_gemv_fused_##suffix(lina::model_kernels::GemvFusedArgs g) {                 \
    lina::model_kernels::gemv_fused<T>(g);                                                                          \
  }                                                                                                                 \
  extern "C" __global__ void lina_model_sample_##suffix(lina::model_kernels::SampleArgs p) {                        \
    lina::model_kernels::sample<T>(p);                                                                              \
  }                                                                                                                 \
  extern "C" __global__ void lina_model_to_f32_##suffix(const void* in, float* out, long long n) {                   \
    lina::model_kernels::to_f32<T>(in, out, n);                                                                     \
  }
