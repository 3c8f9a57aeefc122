#include "naive_recurrences.h"

#include <algorithm>
#include <cmath>

namespace lina::naive {

namespace {

// Offsets into [B, T, H, D] and [B, H, R, C] buffers.
int64_t tok(const Sizes& s, int64_t b, int64_t t, int64_t h, int64_t d, int64_t D) {
  return ((b * s.T + t) * s.H + h) * D + d;
}
int64_t st(const Sizes& s, int64_t b, int64_t h, int64_t r, int64_t c, int64_t R, int64_t C) {
  return ((b * s.H + h) * R + r) * C + c;
}

}  // namespace

Buffer gla(const Sizes& s, const Buffer& q, const Buffer& k, const Buffer& v, const Buffer& gk,
           const Buffer& gv, double scale, const Buffer& h0, Buffer& ht) {
  Buffer o(static_cast<size_t>(s.B * s.T * s.H * s.V), 0.0);
  ht.assign(static_cast<size_t>(s.B * s.H * s.K * s.V), 0.0);
  for (int64_t b = 0; b < s.B; ++b) {
    for (int64_t h = 0; h < s.H; ++h) {
      std::vector<double> S(static_cast<size_t>(s.K * s.V), 0.0);
      if (!h0.empty())
        for (int64_t i = 0; i < s.K * s.V; ++i) S[i] = h0[st(s, b, h, 0, 0, s.K, s.V) + i];
      for (int64_t t = 0; t < s.T; ++t) {
        for (int64_t i = 0; i < s.K; ++i) {
          double a = gk.empty() ? 1.0 : std::exp(gk[tok(s, b, t, h, i, s.K)]);
          for (int64_t j = 0; j < s.V; ++j) {
            double c = gv.empty() ? 1.0 : std::exp(gv[tok(s, b, t, h, j, s.V)]);
            S[i * s.V + j] = a * S[i * s.V + j] * c + k[tok(s, b, t, h, i, s.K)] * v[tok(s, b, t, h, j, s.V)];
          }
        }
        for (int64_t j = 0; j < s.V; ++j) {
          double acc = 0;
          for (int64_t i = 0; i < s.K; ++i) acc += scale * q[tok(s, b, t, h, i, s.K)] * S[i * s.V + j];
          o[tok(s, b, t, h, j, s.V)] = acc;
        }
      }
      for (int64_t i = 0; i < s.K * s.V; ++i) ht[st(s, b, h, 0, 0, s.K, s.V) + i] = S[i];
    }
  }
  return o;
}

Buffer simpleGla(const Sizes& s, const Buffer& q, const Buffer& k, const Buffer& v, const Buffer& g,
                 double scale, const Buffer& h0, Buffer& ht) {
  // Broadcast the scalar gate over K and reuse nothing else: a separate loop keeps it independent.
  Buffer o(static_cast<size_t>(s.B * s.T * s.H * s.V), 0.0);
  ht.assign(static_cast<size_t>(s.B * s.H * s.K * s.V), 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      std::vector<double> S(static_cast<size_t>(s.K * s.V), 0.0);
      if (!h0.empty()) std::copy_n(h0.begin() + st(s, b, h, 0, 0, s.K, s.V), s.K * s.V, S.begin());
      for (int64_t t = 0; t < s.T; ++t) {
        double decay = std::exp(g[(b * s.T + t) * s.H + h]);
        for (int64_t i = 0; i < s.K; ++i)
          for (int64_t j = 0; j < s.V; ++j)
            S[i * s.V + j] = decay * S[i * s.V + j] + k[tok(s, b, t, h, i, s.K)] * v[tok(s, b, t, h, j, s.V)];
        for (int64_t j = 0; j < s.V; ++j) {
          double acc = 0;
          for (int64_t i = 0; i < s.K; ++i) acc += q[tok(s, b, t, h, i, s.K)] * S[i * s.V + j];
          o[tok(s, b, t, h, j, s.V)] = scale * acc;
        }
      }
      std::copy(S.begin(), S.end(), ht.begin() + st(s, b, h, 0, 0, s.K, s.V));
    }
  return o;
}

Buffer retention(const Sizes& s, const Buffer& q, const Buffer& k, const Buffer& v, double scale,
                 const Buffer& h0, Buffer& ht) {
  Buffer o(static_cast<size_t>(s.B * s.T * s.H * s.V), 0.0);
  ht.assign(static_cast<size_t>(s.B * s.H * s.K * s.V), 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      const double gamma = 1.0 - std::exp2(-5.0 - static_cast<double>(h));
      std::vector<double> S(static_cast<size_t>(s.K * s.V), 0.0);
      if (!h0.empty()) std::copy_n(h0.begin() + st(s, b, h, 0, 0, s.K, s.V), s.K * s.V, S.begin());
      for (int64_t t = 0; t < s.T; ++t) {
        for (int64_t i = 0; i < s.K; ++i)
          for (int64_t j = 0; j < s.V; ++j)
            S[i * s.V + j] = gamma * S[i * s.V + j] + k[tok(s, b, t, h, i, s.K)] * v[tok(s, b, t, h, j, s.V)];
        for (int64_t j = 0; j < s.V; ++j) {
          double acc = 0;
          for (int64_t i = 0; i < s.K; ++i) acc += scale * q[tok(s, b, t, h, i, s.K)] * S[i * s.V + j];
          o[tok(s, b, t, h, j, s.V)] = acc;
        }
      }
      std::copy(S.begin(), S.end(), ht.begin() + st(s, b, h, 0, 0, s.K, s.V));
    }
  return o;
}

Buffer simpleGlaParallel(const Sizes& s, const Buffer& q, const Buffer& k, const Buffer& v,
                         const Buffer& g, double scale, const Buffer& h0) {
  Buffer o(static_cast<size_t>(s.B * s.T * s.H * s.V), 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      std::vector<double> c(static_cast<size_t>(s.T));
      double running = 0;
      for (int64_t t = 0; t < s.T; ++t) c[t] = running += g[(b * s.T + t) * s.H + h];
      for (int64_t t = 0; t < s.T; ++t) {
        for (int64_t j = 0; j < s.V; ++j) {
          double acc = 0;
          // Attention part: the masked, decayed score matrix times V.
          for (int64_t src = 0; src <= t; ++src) {
            double score = 0;
            for (int64_t i = 0; i < s.K; ++i) score += q[tok(s, b, t, h, i, s.K)] * k[tok(s, b, src, h, i, s.K)];
            acc += scale * score * std::exp(c[t] - c[src]) * v[tok(s, b, src, h, j, s.V)];
          }
          // Initial-state part, decayed by the whole prefix.
          if (!h0.empty())
            for (int64_t i = 0; i < s.K; ++i)
              acc += scale * q[tok(s, b, t, h, i, s.K)] * std::exp(c[t]) * h0[st(s, b, h, i, j, s.K, s.V)];
          o[tok(s, b, t, h, j, s.V)] = acc;
        }
      }
    }
  return o;
}

Buffer gsa(const Sizes& s, int64_t M, const Buffer& q, const Buffer& k, const Buffer& v,
           const Buffer& slots, const Buffer& g, double scale, const Buffer& hk0, const Buffer& hv0,
           Buffer& hkt, Buffer& hvt) {
  Buffer o(static_cast<size_t>(s.B * s.T * s.H * s.V), 0.0);
  hkt.assign(static_cast<size_t>(s.B * s.H * s.K * M), 0.0);
  hvt.assign(static_cast<size_t>(s.B * s.H * M * s.V), 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      std::vector<double> Hk(static_cast<size_t>(s.K * M), 0.0), Hv(static_cast<size_t>(M * s.V), 0.0);
      if (!hk0.empty()) std::copy_n(hk0.begin() + st(s, b, h, 0, 0, s.K, M), s.K * M, Hk.begin());
      if (!hv0.empty()) std::copy_n(hv0.begin() + st(s, b, h, 0, 0, M, s.V), M * s.V, Hv.begin());
      for (int64_t t = 0; t < s.T; ++t) {
        std::vector<double> ok(static_cast<size_t>(M), 0.0);
        for (int64_t m = 0; m < M; ++m) {
          double decay = std::exp(g[tok(s, b, t, h, m, M)]);
          double sm = slots[tok(s, b, t, h, m, M)];
          for (int64_t i = 0; i < s.K; ++i) Hk[i * M + m] = Hk[i * M + m] * decay + k[tok(s, b, t, h, i, s.K)] * sm;
          for (int64_t j = 0; j < s.V; ++j) Hv[m * s.V + j] = decay * Hv[m * s.V + j] + sm * v[tok(s, b, t, h, j, s.V)];
          for (int64_t i = 0; i < s.K; ++i) ok[m] += scale * q[tok(s, b, t, h, i, s.K)] * Hk[i * M + m];
        }
        double mx = *std::max_element(ok.begin(), ok.end()), z = 0;
        for (double& x : ok) z += x = std::exp(x - mx);
        for (int64_t j = 0; j < s.V; ++j) {
          double acc = 0;
          for (int64_t m = 0; m < M; ++m) acc += ok[m] / z * Hv[m * s.V + j];
          o[tok(s, b, t, h, j, s.V)] = acc;
        }
      }
      std::copy(Hk.begin(), Hk.end(), hkt.begin() + st(s, b, h, 0, 0, s.K, M));
      std::copy(Hv.begin(), Hv.end(), hvt.begin() + st(s, b, h, 0, 0, M, s.V));
    }
  return o;
}

Buffer rwkv6(const Sizes& s, const Buffer& r, const Buffer& k, const Buffer& v, const Buffer& w,
             const Buffer& u, double scale, const Buffer& h0, Buffer& ht) {
  Buffer o(static_cast<size_t>(s.B * s.T * s.H * s.V), 0.0);
  ht.assign(static_cast<size_t>(s.B * s.H * s.K * s.V), 0.0);
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < s.H; ++h) {
      std::vector<double> S(static_cast<size_t>(s.K * s.V), 0.0);
      if (!h0.empty()) std::copy_n(h0.begin() + st(s, b, h, 0, 0, s.K, s.V), s.K * s.V, S.begin());
      for (int64_t t = 0; t < s.T; ++t) {
        for (int64_t j = 0; j < s.V; ++j) {
          double acc = 0;
          for (int64_t i = 0; i < s.K; ++i) {
            double kv = k[tok(s, b, t, h, i, s.K)] * v[tok(s, b, t, h, j, s.V)];
            acc += (S[i * s.V + j] + u[h * s.K + i] * kv) * scale * r[tok(s, b, t, h, i, s.K)];
          }
          o[tok(s, b, t, h, j, s.V)] = acc;
        }
        for (int64_t i = 0; i < s.K; ++i)
          for (int64_t j = 0; j < s.V; ++j)
            S[i * s.V + j] = std::exp(w[tok(s, b, t, h, i, s.K)]) * S[i * s.V + j] +
                             k[tok(s, b, t, h, i, s.K)] * v[tok(s, b, t, h, j, s.V)];
      }
      std::copy(S.begin(), S.end(), ht.begin() + st(s, b, h, 0, 0, s.K, s.V));
    }
  return o;
}

}  // namespace lina::naive
