// The glue of the register-tile backward (compiler/kir/adjoint.h), around its three walks:
//   adjoint_totals         per (segment of 256 tokens, head): sum_t (q dq - k dk) per key channel
//                          (the gate gradient's reversed cumsum, segment by segment);
//   adjoint_gate_gradient  per (segment, head): the suffix over the later segments plus
//                          rowsum(S_T (.) dS_T), then the segment's tokens from its end: dg (per
//                          channel, or summed over them for a scalar gate), dq and dk from their
//                          fp32 intermediates to bf16, and the output scale's gradient
//                          sum(q dq) / c (one atomic add per CTA);
//   adjoint_initial_state  per (head, sequence): d(initial state) = c a_0 (.)rows (D_0 / c) in place.
// Parameters (lina::KernelParams): inputs {q, k, dq fp32, dk fp32, g}; outputs {dq, dk, dg, d scale
// (one fp32)}, any of them null when not wanted; snapshots[0] the segment totals [slots][H][K];
// initialStates {S_T, dS_T} (fp32 [N, H, K, V], null when there is no d(final state));
// finalStates[0] the initial-state gradient holding D_0 / c.
// The emitter supplies the Policy: gate, K, V, scale(p, h, H), head_log_decay(p, h, H).
#pragma once

#include "lina/device/fused_chunk_skeleton.cuh"

namespace lina {
namespace fc {

constexpr int kGlueSegment = 256;

template <class P>
__device__ __forceinline__ void adjoint_totals(const KernelParams& p, const int slot, const int h) {
  constexpr int K = P::K;
  int n;
  long long bos, len, c0;
  if (!chunk_of_slot(p, kGlueSegment, slot, n, bos, len, c0)) return;
  const int i = threadIdx.x, H = p.heads;
  const long long end = c0 + kGlueSegment < len ? c0 + kGlueSegment : len;
  const bf16* q = static_cast<const bf16*>(p.inputs[0]);
  const bf16* k = static_cast<const bf16*>(p.inputs[1]);
  const float* dq = static_cast<const float*>(p.inputs[2]);
  const float* dk = static_cast<const float*>(p.inputs[3]);
  float acc = 0.f;
#pragma unroll 8
  for (long long t = c0; t < end; ++t) {
    const long long off = ((bos + t) * H + h) * K + i;
    acc += to_float(q[off]) * dq[off] - to_float(k[off]) * dk[off];
  }
  p.snapshots[0][(static_cast<long long>(slot) * H + h) * K + i] = acc;
}

template <class P>
__device__ __forceinline__ void adjoint_gate_gradient(const KernelParams& p, const int slot, const int h) {
  constexpr int K = P::K, V = P::V, NW = K / 32;
  constexpr bool VEC = P::gate == Gate::kVector, SCALAR = P::gate == Gate::kScalar, GATED = VEC || SCALAR;
  __shared__ float part[NW][kGlueSegment];
  __shared__ float red[NW];
  int n;
  long long bos, len, c0;
  if (!chunk_of_slot(p, kGlueSegment, slot, n, bos, len, c0)) return;  // uniform per CTA
  const int i = threadIdx.x, warp = i >> 5, lane = i & 31, H = p.heads;
  const long long end = c0 + kGlueSegment < len ? c0 + kGlueSegment : len;
  const bf16* q = static_cast<const bf16*>(p.inputs[0]);
  const bf16* k = static_cast<const bf16*>(p.inputs[1]);
  const float* dq32 = static_cast<const float*>(p.inputs[2]);
  const float* dk32 = static_cast<const float*>(p.inputs[3]);
  bf16* dq = static_cast<bf16*>(p.outputs[0]);
  bf16* dk = static_cast<bf16*>(p.outputs[1]);
  bf16* dg = static_cast<bf16*>(p.outputs[2]);
  float* dscale = static_cast<float*>(p.outputs[3]);
  float acc = 0.f;
  if constexpr (GATED) {
    const long long slot0 = bos / kGlueSegment + n, nseg = (len + kGlueSegment - 1) / kGlueSegment, me = c0 / kGlueSegment;
    for (long long s = me + 1; s < nseg; ++s) acc += p.snapshots[0][((slot0 + s) * H + h) * K + i];
    const float* sT = p.initialStates[0];
    const float* dsT = p.initialStates[1];
    if (sT && dsT) {
      const long long row = ((static_cast<long long>(n) * H + h) * K + i) * V;
      for (int j = 0; j < V; ++j) acc += sT[row + j] * dsT[row + j];
    }
  }
  float qdq = 0.f;
#pragma unroll 4
  for (long long t = end - 1; t >= c0; --t) {
    const long long off = ((bos + t) * H + h) * K + i;
    const float a = dq32[off], b = dk32[off];
    const float x = to_float(q[off]) * a;
    qdq += x;
    if (dq) dq[off] = from_float<bf16>(a);
    if (dk) dk[off] = from_float<bf16>(b);
    if constexpr (GATED) {
      acc += x - to_float(k[off]) * b;
      if constexpr (VEC) {
        if (dg) dg[off] = from_float<bf16>(acc);
      } else {
        const float s = warp_sum(acc);
        if (lane == 0) part[warp][t - c0] = s;
      }
    }
  }
  if constexpr (SCALAR) {
    __syncthreads();
    for (long long tt = i; tt < end - c0; tt += K) {
      float s = 0.f;
#pragma unroll
      for (int w = 0; w < NW; ++w) s += part[w][tt];
      if (dg) dg[(bos + c0 + tt) * H + h] = from_float<bf16>(s);
    }
  }
  if (dscale) {
    const float s = warp_sum(qdq);
    if (lane == 0) red[warp] = s;
    __syncthreads();
    if (i == 0) {
      float total = 0.f;
#pragma unroll
      for (int w = 0; w < NW; ++w) total += red[w];
      atomicAdd(dscale, total / P::scale(p, h, H));
    }
  }
}

template <class P>
__device__ __forceinline__ void adjoint_initial_state(const KernelParams& p, const int h, const int n) {
  constexpr int K = P::K, V = P::V;
  float* d = p.finalStates[0];
  if (!d) return;
  const int H = p.heads;
  long long bos, len;
  sequence_bounds(p, n, bos, len);
  const float c = P::scale(p, h, H);
  const bf16* g = static_cast<const bf16*>(p.inputs[4]);
  float* base = d + (static_cast<long long>(n) * H + h) * K * V;
  for (int e = threadIdx.x; e < K * V; e += blockDim.x) {
    const int i = e / V;
    float a0 = 1.f;
    if (len > 0) {
      if constexpr (P::gate == Gate::kVector) a0 = expf(to_float(g[(bos * H + h) * K + i]));
      else if constexpr (P::gate == Gate::kScalar) a0 = expf(to_float(g[bos * H + h]));
      else if constexpr (P::gate == Gate::kHeadConst) a0 = expf(P::head_log_decay(p, h, H));
    }
    base[e] *= c * a0;
  }
}

}  // namespace fc
}  // namespace lina
