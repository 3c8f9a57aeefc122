// The fp32 loops the CPU model runner is built from (cpu_model.cc, cpu_rwkv6.cc): plain loops,
// no BLAS, for the small models CI runs and as the GPU runner's reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#if LINA_HAVE_BLAS
#include <cblas.h>
#endif

namespace lina::model::cpu {

// y[out] = W[out][in] x: BLAS's sgemv where the build has one (Debian's libblas, OpenBLAS when
// installed: vectorised and threaded), else a plain loop.
inline void matvec(const std::vector<float>& W, const std::vector<float>& x, std::vector<float>& y) {
  const size_t in = x.size(), out = W.size() / in;
  y.assign(out, 0.f);
#if LINA_HAVE_BLAS
  cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(out), static_cast<int>(in), 1.f, W.data(), static_cast<int>(in),
              x.data(), 1, 0.f, y.data(), 1);
  return;
#endif
  for (size_t o = 0; o < out; ++o) {
    const float* w = W.data() + o * in;
    float acc = 0.f;
    for (size_t i = 0; i < in; ++i) acc += w[i] * x[i];
    y[o] = acc;
  }
}

inline void rmsnorm(float* x, size_t n, const float* w, double eps) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(n) + eps));
  for (size_t i = 0; i < n; ++i) x[i] = x[i] * r * (w ? w[i] : 1.f);
}

inline float sigmoid(float x) { return 1.f / (1.f + std::exp(-x)); }
inline float silu(float x) { return x * sigmoid(x); }
inline float logsigmoid(float x) { return std::min(x, 0.f) - std::log1p(std::exp(-std::fabs(x))); }

}  // namespace lina::model::cpu
