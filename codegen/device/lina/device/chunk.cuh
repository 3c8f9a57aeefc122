// Chunk-level building blocks of the fused forward: loads and stores of [C, D] tiles, per-step
// reductions, chunk-local gate cumsums, and the two halves of a state pass (attend: the reads of
// a chunk; carry: the state after the chunk). Buffers are fp32 in shared memory, row-major
// [C][D]; every function is called by the whole block and ends with no barrier (the caller
// places __syncthreads between dependent steps).
//
// This is the exact (fp32, SIMT) path: it is the reference implementation on the GPU, used for
// fp32 inputs and as the fallback for every configuration.
#pragma once

#include "lina/device/common.cuh"
#include "lina/device/mma.cuh"

namespace lina {

enum GateKind { kNoGate = 0, kScalarGate = 1, kVectorGate = 2 };

// The cumulative log2 gate at step t along index i (0 when there is no gate).
template <int KIND, int D>
__device__ __forceinline__ float gate_at(const float* g, int t, int i) {
  if constexpr (KIND == kVectorGate) return g[t * D + i];
  else if constexpr (KIND == kScalarGate) return g[t];
  else return 0.f;
}

// The decay of state entry (r, c) over the chunk's steps first..last: e(A_last - A_{first-1})
// for the row gate times the same for the column gate (A, B: inclusive log2 cumsums).
template <int RG, int CG, int R, int N>
__device__ __forceinline__ float decay_over(const float* A, const float* B, int first, int last, int r, int c) {
  float decay = 1.f;
  if constexpr (RG != kNoGate) decay *= exp2f(gate_at<RG, R>(A, last, r) - (first > 0 ? gate_at<RG, R>(A, first - 1, r) : 0.f));
  if constexpr (CG != kNoGate) decay *= exp2f(gate_at<CG, N>(B, last, c) - (first > 0 ? gate_at<CG, N>(B, first - 1, c) : 0.f));
  return decay;
}

// Which token a chunk row t is: first + step * t. Forward time (step 1), reversed time (step
// -1: a backward pass walking a sequence from its end), or one row per sequence (step 0: a
// per-sequence input laid out [N, H, d], the same at every step).
struct Rows {
  long long first;
  int step;
  __device__ __forceinline__ long long token(int t) const { return first + static_cast<long long>(step) * t; }
};

// dst[t][d] = src[token rows.token(t), head h, column off + d] for t < L, 0 beyond.
template <int C, int D, typename T>
__device__ void load_rows(float* dst, const T* src, Rows rows, int L, int h, int H, int Dfull, int off) {
  for (int i = threadIdx.x; i < C * D; i += blockDim.x) {
    int t = i / D, d = i - t * D;
    dst[i] = t < L ? to_float(src[(rows.token(t) * H + h) * static_cast<long long>(Dfull) + off + d]) : 0.f;
  }
}

// Asynchronous loads (cp.async, sm_80+): the next chunk's input rows are copied into a staging
// buffer while the current chunk computes; convert_rows then widens them to the fp32 chunk
// buffer. 16-byte pieces: D * sizeof(T), the row stride and the column offset must be multiples
// of 16 bytes, and so must the tensor's base address (the kernel checks it and falls back to
// load_rows).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool copy) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(copy ? 16 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
__device__ __forceinline__ bool aligned16(const void* p) { return (reinterpret_cast<unsigned long long>(p) & 15) == 0; }

// A staging row is D elements plus 16 bytes of padding: rows 16 bytes apart in the bank map, so
// ldmatrix's eight row reads of a fragment fall in different banks.
template <int D, typename T>
struct StageRow {
  static constexpr int kPad = 16 / static_cast<int>(sizeof(T));
  static constexpr int kStride = D + kPad;
};

// stage[t][d] (row stride StageRow::kStride) = src[token rows.token(t), head h, column off + d]
// for t < L, zeros beyond (a zero-byte copy fills with zeros). Nothing waits here:
// cp_async_commit, then cp_async_wait_all and a barrier before stage is read. L >= 1.
template <int C, int D, typename T>
__device__ void prefetch_rows(T* stage, const T* src, Rows rows, int L, int h, int H, int Dfull, int off) {
  constexpr int kPer = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte piece
  static_assert(D % kPer == 0, "prefetch_rows: a row must be whole 16-byte pieces");
  constexpr int kPieces = D / kPer;
  for (int i = threadIdx.x; i < C * kPieces; i += blockDim.x) {
    const int t = i / kPieces, piece = i - t * kPieces;
    const bool valid = t < L;
    const T* g = src + (rows.token(valid ? t : 0) * H + h) * static_cast<long long>(Dfull) + off + piece * kPer;
    cp_async16(stage + t * StageRow<D, T>::kStride + piece * kPer, g, valid);
  }
}

template <int C, int D, typename T>
__device__ void convert_rows(float* dst, const T* stage) {
  for (int i = threadIdx.x; i < C * D; i += blockDim.x) {
    const int t = i / D, d = i - t * D;
    dst[i] = to_float(stage[t * StageRow<D, T>::kStride + d]);
  }
}

// The rows t < L of src into dst; ACCUMULATE adds to what dst holds (each element is owned by
// one thread of one CTA, so the read-modify-write needs no atomics).
template <int C, int D, bool ACCUMULATE, typename T>
__device__ void store_rows(T* dst, const float* src, Rows rows, int L, int h, int H, int Dfull, int off) {
  for (int i = threadIdx.x; i < C * D; i += blockDim.x) {
    int t = i / D, d = i - t * D;
    if (t >= L) continue;
    T& out = dst[(rows.token(t) * H + h) * static_cast<long long>(Dfull) + off + d];
    if constexpr (ACCUMULATE) out = from_float<T>(to_float(out) + src[i]);
    else out = from_float<T>(src[i]);
  }
}

// A per-head vector parameter [H, Dfull], columns [off, off + D).
template <int D>
__device__ void load_head_vector(float* dst, const float* src, int h, int Dfull, int off) {
  for (int d = threadIdx.x; d < D; d += blockDim.x) dst[d] = src[static_cast<long long>(h) * Dfull + off + d];
}

// The [R, N] block of state (n, h) at rows [rOff, rOff + R) and columns [nOff, nOff + N).
template <int R, int N>
__device__ void load_state(float* S, const float* src, long long n, int h, int H, int Rfull, int Nfull, int rOff, int nOff) {
  for (int i = threadIdx.x; i < R * N; i += blockDim.x) {
    int r = i / N, c = i - r * N;
    S[i] = src ? src[((n * H + h) * Rfull + rOff + r) * Nfull + nOff + c] : 0.f;
  }
}

// The state decayed by one step's gates, stored like store_state: the derived backward's anchor
// snapshots (D(a_t) S_{t-1} D(b_t)). a, b hold that step's raw log gates (gate_cumsum's input
// row, copied when the cumsum was taken), not differences of the chunk's cumsums: those lose
// |A_t| * 2^-24 of absolute precision, a relative error of ~5e-6 in e(a_t) at row 11 of a chunk
// of gates near -5, and the anchor seeds 64 rows of a gate gradient's running sum.
template <int R, int N, int RG, int CG>
__device__ void store_decayed_state(float* dst, const float* S, const float* a, const float* b, long long n, int h, int H) {
  for (int i = threadIdx.x; i < R * N; i += blockDim.x) {
    int r = i / N, c = i - r * N;
    float decay = 1.f;
    if constexpr (RG != kNoGate) decay *= expf(gate_at<RG, R>(a, 0, r));
    if constexpr (CG != kNoGate) decay *= expf(gate_at<CG, N>(b, 0, c));
    dst[(n * H + h) * static_cast<long long>(R) * N + i] = decay * S[i];
  }
}

template <int R, int N>
__device__ void store_state(float* dst, const float* S, long long n, int h, int H, int Rfull, int Nfull, int rOff, int nOff) {
  if (!dst) return;
  for (int i = threadIdx.x; i < R * N; i += blockDim.x) {
    int r = i / N, c = i - r * N;
    dst[((n * H + h) * Rfull + rOff + r) * Nfull + nOff + c] = S[i];
  }
}

// out[t] = sum_d a[t][d] (* b[t][d] when b is given): one warp per step. A row stride of 0
// reads a per-head vector at every step.
template <int C, int D>
__device__ void row_sum(float* out, const float* a, int aStride, const float* b, int bStride) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  for (int t = warp; t < C; t += warps) {
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += b ? a[t * aStride + d] * b[t * bStride + d] : a[t * aStride + d];
    s = warp_sum(s);
    if (lane == 0) out[t] = s;
  }
}

// out[t][:] = softmax(a[t][:]) over D, in fp32: one warp per step.
template <int C, int D>
__device__ void row_softmax(float* out, const float* a) {
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  for (int t = warp; t < C; t += warps) {
    float m = -3.402823466e38f;
    for (int d = lane; d < D; d += 32) m = fmaxf(m, a[t * D + d]);
    m = warp_max(m);
    float s = 0.f;
    for (int d = lane; d < D; d += 32) s += exp2f((a[t * D + d] - m) * kLog2e);
    s = warp_sum(s);
    float inv = 1.f / s;
    for (int d = lane; d < D; d += 32) out[t * D + d] = exp2f((a[t * D + d] - m) * kLog2e) * inv;
  }
}

// Chunk-local cumulative sums of a natural-log gate, in log2 units: inc[t] = log2(e) * sum_{s<=t} g[s],
// exc[t] = inc[t] - log2(e) g[t] (the decay up to the step before). Steps t >= L add nothing.
// g is [C][D] (D = 1 for a scalar gate); exc may be null.
template <int C, int D>
__device__ void gate_cumsum(float* inc, float* exc, const float* g, int L) {
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float running = 0.f;
    for (int t = 0; t < C; ++t) {
      float step = t < L ? g[t * D + d] * kLog2e : 0.f;
      if (exc) exc[t * D + d] = running;
      running += step;
      inc[t * D + d] = running;
    }
  }
}

// Running sums over the steps of a sequence: out[t] = carry + sum_{s<=t, s<L} x[s]; the carry
// (zero at the first chunk) advances to the chunk's total. Kahan-compensated (carry[D + d] holds
// the compensation): the gate gradients are running sums over whole sequences.
// x2 (may be null) is a second summand, left out at step 0 when skip_first_x2 (the derived
// backward's anchors: the anchor value already holds it).
template <int C, int D>
__device__ void running_sum(float* out, const float* x, float* carry, int L, const float* x2 = nullptr,
                            bool skip_first_x2 = false) {
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float acc = carry[d], comp = carry[D + d];
    for (int t = 0; t < C; ++t) {
      if (t < L) {
        const float term = x2 && !(t == 0 && skip_first_x2) ? x[t * D + d] + x2[t * D + d] : x[t * D + d];
        const float y = term - comp;
        const float next = acc + y;
        comp = (next - acc) - y;
        acc = next;
      }
      out[t * D + d] = acc;
    }
    carry[d] = acc;
    carry[D + d] = comp;
  }
}

// The same for a per-head constant log gate (scalar or [D] vector `value`).
template <int C, int D>
__device__ void gate_cumsum_uniform(float* inc, float* exc, const float* value, int L) {
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float step = value[d] * kLog2e;
    for (int t = 0; t < C; ++t) {
      float before = step * static_cast<float>(t < L ? t : L);
      if (exc) exc[t * D + d] = before;
      inc[t * D + d] = t < L ? before + step : before;
    }
  }
}

// The intra-chunk scores in fp32: P[t][s] = sum_r x[t][r] key[s][r] e(qR[t][r] - kR[s][r]) (times
// e(qN[t] - kN[s]) for a scalar output-side gate) where s is visible from t, else 0. Exponents are
// <= 0 for s <= t when gates are <= 0.
template <int C, int R, int RK, int NK, bool AFTER>
__device__ void scores_fp32(float* P, const float* x, const float* key, const float* kR, const float* qR,
                            const float* kN, const float* qN, int L) {
  for (int i = threadIdx.x; i < C * C; i += blockDim.x) {
    int t = i / C, s = i - t * C;
    bool visible = s < L && t < L && (AFTER ? s <= t : s < t);
    float acc = 0.f;
    if (visible) {
      if constexpr (RK == kVectorGate) {
        for (int r = 0; r < R; ++r) acc += x[t * R + r] * key[s * R + r] * exp2f(qR[t * R + r] - kR[s * R + r]);
      } else {
        for (int r = 0; r < R; ++r) acc += x[t * R + r] * key[s * R + r];
        if constexpr (RK == kScalarGate) acc *= exp2f(qR[t] - kR[s]);
      }
      if constexpr (NK == kScalarGate) acc *= exp2f(qN[t] - kN[s]);
    }
    P[i] = acc;
  }
}

// The reads of one chunk: for each step t < L,
//   out[t][n] = e(qN[t][n]) * sum_r x[t][r] e(qR[t][r]) S(r, n)                      (inter)
//             + sum_{s in chunk, s <= t (AFTER) or s < t} P[t][s] val[s][n] e(qN[t][n] - kN[s][n])  (intra)
//   P[t][s]   = sum_r x[t][r] key[s][r] e(qR[t][r] - kR[s][r])
// where e(x) = 2^x, k* are inclusive cumsums and q* the inclusive (AFTER) or exclusive ones.
// R is the contracted dim (key side), N the output dim (value side). The state is stored
// [R][N] (TRANSPOSED = 0) or [N][R] (TRANSPOSED = 1). Scratch: P [C][C], xt [C][R].
// TC: the matrix products run on tensor cores (bf16 operands, fp32 accumulation; the state
// operand split hi + lo); needs C, R, N multiples of 16. Pairwise-gated parts stay fp32.
// PRECISE splits every operand (the derived backward passes: gradients such as the gates' come
// from long sums where bf16-rounded products would not cancel).
// x16 / key16: the same rows of x and key as bf16 in staging buffers (row stride
// StageRow<R, bf16>::kStride), or null. When both are given (raw bf16 inputs, prefetched), the
// ungated scores read their tensor-core fragments from them with ldmatrix; the products are
// the same, since x and key are exact in bf16.
template <int C, int R, int N, int RK, int NK, bool AFTER, bool TRANSPOSED, bool TC = false, bool PRECISE = false>
__device__ void attend(float* out, const float* x, const float* key, const float* val, const float* kR,
                       const float* qR, const float* kN, const float* qN, const float* S, float* P, float* xt, int L,
                       const bf16* x16 = nullptr, const bf16* key16 = nullptr) {
  if constexpr (TC) {
    static_assert(C % 16 == 0 && R % 16 == 0 && N % 16 == 0, "tensor-core attend needs multiples of 16");
    for (int i = threadIdx.x; i < C * R; i += blockDim.x) {
      int t = i / R, r = i - t * R;
      xt[i] = x[i] * (RK == kNoGate ? 1.f : exp2f(gate_at<RK, R>(qR, t, r)));
    }
    if constexpr (RK != kVectorGate) {
      // Scores on tensor cores, then the scalar decays and the causal mask per entry.
      if (!PRECISE && x16 && key16)
        mma_gemm_bf16<C, C, R, false>(P, C, x16, StageRow<R, bf16>::kStride, key16, StageRow<R, bf16>::kStride);
      else
        mma_gemm<C, C, R, false, PRECISE, PRECISE, PRECISE ? 3 : 2>(P, C, x, R, 1, key, 1, R);
      __syncthreads();
      for (int i = threadIdx.x; i < C * C; i += blockDim.x) {
        int t = i / C, s = i - t * C;
        bool visible = s < L && t < L && (AFTER ? s <= t : s < t);
        float f = visible ? 1.f : 0.f;
        if constexpr (RK == kScalarGate) f *= visible ? exp2f(qR[t] - kR[s]) : 0.f;
        if constexpr (NK == kScalarGate) f *= visible ? exp2f(qN[t] - kN[s]) : 0.f;
        P[i] *= f;
      }
    } else {
      scores_fp32<C, R, RK, NK, AFTER>(P, x, key, kR, qR, kN, qN, L);  // pairwise per-channel decays
    }
    __syncthreads();
    // Inter: out = xt . S (state split into bf16 hi + lo), then the output-side decay.
    mma_gemm<C, N, R, false, true, PRECISE, PRECISE ? 3 : 2>(out, N, xt, R, 1, S, TRANSPOSED ? 1 : N,
                                                     TRANSPOSED ? R : 1);
    __syncthreads();
    for (int i = threadIdx.x; i < C * N; i += blockDim.x) {
      int t = i / N, n = i - t * N;
      if (t >= L) {
        out[i] = 0.f;
        continue;
      }
      float v = out[i];
      if constexpr (NK != kNoGate) v *= exp2f(gate_at<NK, N>(qN, t, n));
      if constexpr (NK == kVectorGate) {
        int last = AFTER ? t : t - 1;
        for (int s = 0; s <= last; ++s) v += P[t * C + s] * val[s * N + n] * exp2f(qN[t * N + n] - kN[s * N + n]);
      }
      out[i] = v;
    }
    if constexpr (NK != kVectorGate) {
      __syncthreads();
      mma_gemm<C, N, C, true, PRECISE, PRECISE, PRECISE ? 3 : 2>(out, N, P, C, 1, val, N, 1);  // intra: P . val
    }
    return;
  }
  // Gated queries for the inter part: xt[t][r] = x[t][r] * e(qR[t][r]).
  for (int i = threadIdx.x; i < C * R; i += blockDim.x) {
    int t = i / R, r = i - t * R;
    xt[i] = x[i] * (RK == kNoGate ? 1.f : exp2f(gate_at<RK, R>(qR, t, r)));
  }
  scores_fp32<C, R, RK, NK, AFTER>(P, x, key, kR, qR, kN, qN, L);
  __syncthreads();
  for (int i = threadIdx.x; i < C * N; i += blockDim.x) {
    int t = i / N, n = i - t * N;
    if (t >= L) {
      out[i] = 0.f;
      continue;
    }
    float inter = 0.f;
    for (int r = 0; r < R; ++r) inter += xt[t * R + r] * (TRANSPOSED ? S[n * R + r] : S[r * N + n]);
    if constexpr (NK != kNoGate) inter *= exp2f(gate_at<NK, N>(qN, t, n));
    float intra = 0.f;
    int last = AFTER ? t : t - 1;
    for (int s = 0; s <= last; ++s) {
      float v = P[t * C + s] * val[s * N + n];
      if constexpr (NK == kVectorGate) v *= exp2f(qN[t * N + n] - kN[s * N + n]);
      intra += v;
    }
    out[i] = inter + intra;
  }
}

// The state after the chunk: S[r][c] = e(A_L[r] + B_L[c]) S[r][c] + sum_{s<L} u~[s][r] w~[s][c],
// u~ = u e(A_L - A_s), w~ = w e(B_L - B_s) (all exponents <= 0), L-1 the last valid step.
// With first > 0, S holds the state after step first-1 and only steps first..L-1 are added
// (their decays taken from step first-1): the chunk's state carried in two parts.
// Scratch: ut [C][R], wt [C][N].
// SPLIT_U / SPLIT_W: the tensor-core product splits that operand (hi + lo) because it is not
// exact in bf16 (gated, or computed in fp32), so the carried state keeps fp32 precision.
// PRECISE: three-level splits (the derived backward passes).
template <int C, int R, int N, int RG, int CG, bool TC = false, bool SPLIT_U = false, bool SPLIT_W = false,
          bool PRECISE = false>
__device__ void carry(float* S, const float* u, const float* w, const float* A, const float* B, float* ut, float* wt,
                      int L, int first = 0) {
  const int last = L - 1;
  auto decay_of = [&](int r, int c) { return decay_over<RG, CG, R, N>(A, B, first, last, r, c); };
  for (int i = threadIdx.x; i < C * R; i += blockDim.x) {
    int s = i / R, r = i - s * R;
    ut[i] = s >= first && s < L ? u[i] * (RG == kNoGate ? 1.f : exp2f(gate_at<RG, R>(A, last, r) - gate_at<RG, R>(A, s, r))) : 0.f;
  }
  for (int i = threadIdx.x; i < C * N; i += blockDim.x) {
    int s = i / N, c = i - s * N;
    wt[i] = s >= first && s < L ? w[i] * (CG == kNoGate ? 1.f : exp2f(gate_at<CG, N>(B, last, c) - gate_at<CG, N>(B, s, c))) : 0.f;
  }
  __syncthreads();
  if constexpr (TC) {
    static_assert(C % 16 == 0 && R % 16 == 0 && N % 16 == 0, "tensor-core carry needs multiples of 16");
    for (int i = threadIdx.x; i < R * N; i += blockDim.x) {
      int r = i / N, c = i - r * N;
      S[i] *= decay_of(r, c);
    }
    __syncthreads();
    mma_gemm<R, N, C, true, SPLIT_W, SPLIT_U, PRECISE ? 3 : 2>(S, N, ut, 1, R, wt, N, 1);  // S += u~^T w~
    return;
  }
  for (int i = threadIdx.x; i < R * N; i += blockDim.x) {
    int r = i / N, c = i - r * N;
    float acc = decay_of(r, c) * S[i];
    for (int s = first; s < L; ++s) acc += ut[s * R + r] * wt[s * N + c];
    S[i] = acc;
  }
}

// A gate gradient's running sum re-anchored at an anchor step e (see kAnchorSpacing): its value
// there, less the step's own write term, is the side sum of P_e (.) (K_0 + K_1 + ...), P_e the
// forward state before step e's write (decayed by step e's gates) that pass A stored in `slot`,
// K_i the adjoint states now in shared memory. ROWS: sum over columns (a row gate),
// else over rows. carry[0..D) takes the value and carry[D..2D) (the compensation) is cleared.
// The terms are summed in fp64.
template <int R, int N, bool ROWS>
__device__ void anchor_sum(float* carry, const float* snapshots, long long slot, int h, int H, const float* K0,
                           const float* K1, const float* K2, const float* K3) {
  constexpr int D = ROWS ? R : N, M = ROWS ? N : R;
  const float* S = snapshots + (slot * H + h) * static_cast<long long>(R) * N;
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    double acc = 0.0;
    for (int m = 0; m < M; ++m) {
      const int i = ROWS ? d * N + m : m * N + d;
      double k = K0[i];
      if (K1) k += K1[i];
      if (K2) k += K2[i];
      if (K3) k += K3[i];
      acc += static_cast<double>(S[i]) * k;
    }
    carry[d] = static_cast<float>(acc);
    carry[D + d] = 0.f;
  }
}

}  // namespace lina
