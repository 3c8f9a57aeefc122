// Hand-written naive recurrences, independent of lina's compiler: plain loops over fla's
// layouts ([B, T, H, D] inputs, [N, H, K, V] states), written from research/fla-spec.md §2.
// They are the ground truth the reference interpreter is checked against.
#pragma once

#include <cstdint>
#include <vector>

namespace lina::naive {

using Buffer = std::vector<double>;

struct Sizes {
  int64_t B, T, H, K, V;
};

// GLA: S = diag(exp(gk)) S diag(exp(gv)) + k v^T, o = S^T (scale q). gk [B,T,H,K] or empty,
// gv [B,T,H,V] or empty, h0 [B,H,K,V] or empty. Returns o; writes the final state to `ht`.
Buffer gla(const Sizes& s, const Buffer& q, const Buffer& k, const Buffer& v, const Buffer& gk,
           const Buffer& gv, double scale, const Buffer& h0, Buffer& ht);

// Simple GLA: a scalar gate g [B,T,H].
Buffer simpleGla(const Sizes& s, const Buffer& q, const Buffer& k, const Buffer& v, const Buffer& g,
                 double scale, const Buffer& h0, Buffer& ht);

// Retention: gamma_h = 1 - 2^(-5-h), no gate input.
Buffer retention(const Sizes& s, const Buffer& q, const Buffer& k, const Buffer& v, double scale,
                 const Buffer& h0, Buffer& ht);

// Simple GLA by the parallel (attention) form: o_t = sum_{j<=t} scale (q_t.k_j) e^{c_t-c_j} v_j
// + e^{c_t} S0^T (scale q_t), c = cumsum(g). For retention pass g_t = log(gamma_h).
Buffer simpleGlaParallel(const Sizes& s, const Buffer& q, const Buffer& k, const Buffer& v,
                         const Buffer& g, double scale, const Buffer& h0);

// GSA with M slots: Hk = Hk diag(e^g) + k s^T, Hv = diag(e^g) Hv + s v^T,
// p = softmax(Hk^T (scale q)), o = Hv^T p. hk0 [B,H,K,M], hv0 [B,H,M,V].
Buffer gsa(const Sizes& s, int64_t M, const Buffer& q, const Buffer& k, const Buffer& v,
           const Buffer& slots, const Buffer& g, double scale, const Buffer& hk0, const Buffer& hv0,
           Buffer& hkt, Buffer& hvt);

// RWKV6: o = (S_{t-1} + diag(u) k v^T)^T (scale r), then S = diag(e^w) S + k v^T. u [H,K].
Buffer rwkv6(const Sizes& s, const Buffer& r, const Buffer& k, const Buffer& v, const Buffer& w,
             const Buffer& u, double scale, const Buffer& h0, Buffer& ht);

}  // namespace lina::naive
