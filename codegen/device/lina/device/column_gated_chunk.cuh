// A register-resident fused chunked forward for a column-gated state (GSA's key memory): one
// state S[K, M] in fp32 whose gate acts on its columns, the read's output dim,
//   S_t = S_{t-1} (.)cols a_t + k_t v_t^T,   r_t = scale * q_t^T S_t   [M],
// with a_t = exp(g_t), g [B, T, H, M], followed by an epilogue over the M outputs of a row:
// none, or a softmax (GSA). The result goes to the output tensor or, for a two-phase plan, to a
// bf16 intermediate [tokens, H, M] in p.snapshots[0] that the next phase reads as its query.
//
// It is the row-gated skeleton (fused_chunk_skeleton.cuh) with the gate factors moved from the
// contracted dim to the output dim: where the row-gated kernel scales q and k (A operands, per
// K column), this one scales v (B operands, per M column) and the output fragments:
//   G = log2 cumsum of g within the chunk (per column); f_i, e_j the first / last row of
//   sub-chunk i / j (16 rows each).
//   v~[s] = v[s] 2^(G_{e_j} - G_s)                       (in place, <= 1)
//   o_t   = 2^(G_t - G_{f_i}) (.) [ q_t (Sb (.)cols m[i][0])                       (inter)
//                                 + sum_{j <= i} mask(q_i k_j^T) (v~_j (.)cols m[i][j+1]) ]
//   S     = S (.)cols d + sum_j k_j^T (v~_j (.)cols u_j)                             (carry)
// with m[i][0] = 2^(G_{f_i}), m[i][j+1] = 2^(G_{f_i} - G_{e_j}), u_j = 2^(G_63 - G_{e_j}),
// d = 2^(G_63): every exponent <= 0 except the diagonal m[i][i] (<= 15 steps, as in the row-gated
// kernel). The output factor 2^(G_t - G_{f_i}) is kept in fp32 ([64][M] in shared memory).
//
// Work split: one CTA per (64-column tile of V, head, sequence), 4 warps; warp w owns sub-chunk w
// of the output rows and rows w K/4 .. of the state, all 64 columns of the tile (a softmax
// epilogue needs the whole row: V = 64, one tile).
// Tensors: q, k [B, T, H, K], v, g, o [B, T, H, V]; state fp32 [N, H, K, V]; the intermediate
// bf16 [tokens, H, V].
#pragma once

#include "lina/device/fused_chunk_skeleton.cuh"

namespace lina {
namespace fc {

enum class Epilogue : int { kNone = 0, kSoftmax = 1 };

// The Policy the emitter generates:
//   struct P {
//     static constexpr int K = 128, V = 64, M = 64;     // K in {64, 128}; M = 64 columns per CTA
//     static constexpr int kQ = 0, kK = 1, kV = 3, kG = 4;  // KernelParams::inputs slots
//     static constexpr int kO = -1;                      // outputs slot; -1: the intermediate
//     static constexpr int kState = 0;
//     static constexpr Epilogue epilogue = Epilogue::kSoftmax;
//     __device__ static float scale(const KernelParams& p, int h, int H);
//   };
template <class P>
struct ColumnLayout {
  static constexpr int K = P::K, M = P::M;
  static constexpr int kQ = 0;
  static constexpr int kK = kQ + kChunk * K * 2;
  static constexpr int kV = kK + kChunk * K * 2;
  static constexpr int kG = kV + kChunk * M * 2;
  static constexpr int kStage = kG + kChunk * M * 2;
  static constexpr int kSb = 2 * kStage;           // bf16 [K][M], the chunk's starting state
  static constexpr int kM = kSb + K * M * 2;       // fp32 [4][5][M]
  static constexpr int kU = kM + 20 * M * 4;       // fp32 [4][M]
  static constexpr int kD = kU + 4 * M * 4;        // fp32 [M]
  static constexpr int kOfStride = M + 8;          // padded: the epilogue's quad reads hit distinct banks
  static constexpr int kOf = kD + M * 4;           // fp32 [64][M + 8], 2^(G_t - G_f(i))
  static constexpr int kTotal = kOf + kChunk * kOfStride * 4;
};

template <class P>
__host__ __device__ constexpr int column_smem_bytes() {
  return ColumnLayout<P>::kTotal;
}

// (vt, h, n): the CTA's column tile, head and sequence.
template <class P>
__device__ __forceinline__ void column_gated_forward(const KernelParams& p, const int vt, const int h, const int n) {
  constexpr int K = P::K, M = P::M, V = P::V, C = kChunk, NT = 128;
  static_assert(V % M == 0, "column_gated_forward: V must be a multiple of the tile");
  static_assert(P::epilogue == Epilogue::kNone || V == M, "column_gated_forward: a softmax needs the whole row in one tile");
  static_assert(K == 64 || K == 128, "column_gated_forward: K in {64, 128}");
  static_assert(M == 64, "column_gated_forward: M = 64");
  constexpr int KR = K / 4, MT = KR / 16;
  // The adjoint options (fused_chunk_skeleton.cuh): reversed walk, shifted gate, transposed
  // states, fp32 output.
  constexpr bool REV = reverse_of<P>::value, SHIFT = gate_shift_of<P>::value, STT = state_t_of<P>::value;
  constexpr bool OF32 = out_f32_of<P>::value;
  static_assert(!SHIFT || REV, "column_gated_forward: kGateShift needs kReverse");
  static_assert(!(OF32 && P::kO < 0), "column_gated_forward: the intermediate is bf16");
  using L = ColumnLayout<P>;

  extern __shared__ __align__(128) unsigned char smem[];
  const unsigned sbase = smem_addr(smem);
  float* mvec = reinterpret_cast<float*>(smem + L::kM);
  float* uvec = reinterpret_cast<float*>(smem + L::kU);
  float* dvec = reinterpret_cast<float*>(smem + L::kD);
  float* ofac = reinterpret_cast<float*>(smem + L::kOf);

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int gq = lane >> 2, qq = (lane & 3) * 2;
  const int rb = warp;
  const int H = p.heads;
  long long bos, len;
  sequence_bounds(p, n, bos, len);

  const bf16* qg = static_cast<const bf16*>(p.inputs[P::kQ]) + (bos * H + h) * K;
  const bf16* kg = static_cast<const bf16*>(p.inputs[P::kK]) + (bos * H + h) * K;
  const bf16* vg = static_cast<const bf16*>(p.inputs[P::kV]) + (bos * H + h) * V + vt * M;
  const bf16* gg = static_cast<const bf16*>(p.inputs[P::kG]) + (bos * H + h) * V + vt * M;
  bf16* og = (P::kO < 0 ? reinterpret_cast<bf16*>(p.snapshots[0]) : static_cast<bf16*>(p.outputs[P::kO < 0 ? 0 : P::kO])) +
             (bos * H + h) * V + vt * M;
  float* ogf = static_cast<float*>(p.outputs[P::kO < 0 ? 0 : P::kO]) + (bos * H + h) * V + vt * M;  // kOutF32
  const long long rstep = REV ? -1 : 1;
  const float scale = P::scale(p, h, H);
  const long long rq = static_cast<long long>(H) * K, rm = static_cast<long long>(H) * V;

  // The state slice: rows rb * KR + mt * 16 + gq (+ 8), columns nt * 8 + qq (+ 1).
  float S[MT][8][4];
  const long long stOff = (static_cast<long long>(n) * H + h) * K * V + vt * M;
  {
    const float* h0 = p.initialStates[P::kState];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        if (h0 && STT) {
          const float* b = h0 + (static_cast<long long>(n) * H + h) * K * V;
          const int r = rb * KR + mt * 16 + gq, col = vt * M + nt * 8 + qq;
          S[mt][nt][0] = b[state_index<P, K, V>(r, col)], S[mt][nt][1] = b[state_index<P, K, V>(r, col + 1)];
          S[mt][nt][2] = b[state_index<P, K, V>(r + 8, col)], S[mt][nt][3] = b[state_index<P, K, V>(r + 8, col + 1)];
        } else if (h0) {
          const float* b = h0 + stOff + (rb * KR + mt * 16 + gq) * V + nt * 8 + qq;
          const float2 x = *reinterpret_cast<const float2*>(b);
          const float2 y = *reinterpret_cast<const float2*>(b + 8 * V);
          S[mt][nt][0] = x.x, S[mt][nt][1] = x.y, S[mt][nt][2] = y.x, S[mt][nt][3] = y.y;
        } else {
          S[mt][nt][0] = S[mt][nt][1] = S[mt][nt][2] = S[mt][nt][3] = 0.f;
        }
      }
    if constexpr (init_div_scale_of<P>::value) {
      const float inv = 1.f / scale;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int e = 0; e < 4; ++e) S[mt][nt][e] *= inv;
    }
  }

  const int nchunks = static_cast<int>((len + C - 1) / C);
  auto issue = [&](int c) {
    const long long c0 = static_cast<long long>(c) * C;
    const int valid = static_cast<int>(len - c0 < C ? len - c0 : C);
    const unsigned st = sbase + (c & 1) * L::kStage;
    const long long t0 = walk_token<P>(c0, len);  // the token of the chunk's first walk row
    load_tile<K, NT>(st + L::kQ, qg + t0 * rq, rstep * rq, valid);
    load_tile<K, NT>(st + L::kK, kg + t0 * rq, rstep * rq, valid);
    load_tile<M, NT>(st + L::kV, vg + t0 * rm, rstep * rm, valid);
    load_tile<M, NT, SHIFT>(st + L::kG, gg + gate_token<P>(c0, len) * rm, rstep * rm, valid, SHIFT && c0 == 0 ? 1 : 0);
  };
  if (nchunks > 0) issue(0);
  cp_async_commit();

  for (int c = 0; c < nchunks; ++c) {
    const int sidx = c & 1;
    const long long c0 = static_cast<long long>(c) * C;
    const int valid = static_cast<int>(len - c0 < C ? len - c0 : C);
    unsigned char* stp = smem + sidx * L::kStage;
    const unsigned st = sbase + sidx * L::kStage;

    cp_async_wait_all();
    __syncthreads();  // B1: chunk c landed; every warp is done with chunk c - 1's buffers
    if (c + 1 < nchunks) issue(c + 1);
    cp_async_commit();

    // bf16 copy of the chunk's starting state: every warp's inter term reads all K rows.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int r = rb * KR + mt * 16 + gq, col = nt * 8 + qq;
        *reinterpret_cast<unsigned*>(smem + L::kSb + tile_off_elem<M>(r, col)) = pack2(S[mt][nt][0], S[mt][nt][1]);
        *reinterpret_cast<unsigned*>(smem + L::kSb + tile_off_elem<M>(r + 8, col)) = pack2(S[mt][nt][2], S[mt][nt][3]);
      }

    // Prep: warp w takes the 16-column strip w of M; lane = (sub-chunk i, column pair cp).
    {
      const int i = lane >> 3, cp = lane & 7;
      const int col = warp * 16 + cp * 2;
      float G0[16], G1[16];
      float a0 = 0.f, a1 = 0.f;
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        const unsigned u = *reinterpret_cast<const unsigned*>(stp + L::kG + tile_off_elem<M>(16 * i + r, col));
        a0 += lo_of(u) * kLog2e, a1 += hi_of(u) * kLog2e;
        G0[r] = a0, G1[r] = a1;
      }
      float s0 = a0, s1 = a1;
#pragma unroll
      for (int d = 8; d <= 16; d *= 2) {
        const float t0 = __shfl_up_sync(0xffffffffu, s0, d), t1 = __shfl_up_sync(0xffffffffu, s1, d);
        if (lane >= d) s0 += t0, s1 += t1;
      }
      float E0[4], E1[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        E0[j] = __shfl_sync(0xffffffffu, s0, j * 8 + cp);
        E1[j] = __shfl_sync(0xffffffffu, s1, j * 8 + cp);
      }
#pragma unroll
      for (int r = 0; r < 16; ++r) {
        const int row = 16 * i + r;
        unsigned* vp = reinterpret_cast<unsigned*>(stp + L::kV + tile_off_elem<M>(row, col));
        const unsigned uv = *vp;
        *vp = pack2(lo_of(uv) * ex2(a0 - G0[r]), hi_of(uv) * ex2(a1 - G1[r]));
        *reinterpret_cast<float2*>(ofac + row * L::kOfStride + col) = make_float2(ex2(G0[r] - G0[0]), ex2(G1[r] - G1[0]));
      }
      const float F0 = s0 - a0 + G0[0], F1 = s1 - a1 + G1[0];
      float2* mrow = reinterpret_cast<float2*>(mvec + (i * 5) * M + col);
      mrow[0] = make_float2(ex2(F0), ex2(F1));
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (j <= i) mrow[(j + 1) * M / 2] = make_float2(ex2(F0 - E0[j]), ex2(F1 - E1[j]));
      *reinterpret_cast<float2*>(uvec + i * M + col) = make_float2(ex2(E0[3] - s0), ex2(E1[3] - s1));
      if (i == 3) *reinterpret_cast<float2*>(dvec + col) = make_float2(ex2(E0[3]), ex2(E1[3]));
    }
    __syncthreads();  // B2: v~, the factors and the bf16 state are visible

    // ---- warp math ----
    float o[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f;
    const unsigned qrow = st + L::kQ + tile_off<K>(16 * rb + (lane & 7) + ((lane >> 3) & 1) * 8, 0);
    const int qsw = swz(16 * rb + (lane & 7) + ((lane >> 3) & 1) * 8);
    const int brow = (lane & 7) + ((lane >> 3) & 1) * 8;
    // Inter: o = q (Sb (.)cols m[rb][0]).
    {
      const float* m = mvec + (rb * 5) * M;
      float f[8];
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) f[nt] = m[nt * 8 + gq];
#pragma unroll
      for (int kk = 0; kk < K / 16; ++kk) {
        unsigned qa[4];
        ldsm4(qa, qrow - (qsw << 4) + (((kk * 2 + (lane >> 4)) ^ qsw) << 4));
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          unsigned b[4];
          ldsm4t(b, sbase + L::kSb + tile_off<M>(kk * 16 + brow, np * 2 + (lane >> 4)));
          mma16816(o[2 * np], qa[0], qa[1], qa[2], qa[3], scale2(b[0], f[2 * np], f[2 * np]), scale2(b[1], f[2 * np], f[2 * np]));
          mma16816(o[2 * np + 1], qa[0], qa[1], qa[2], qa[3], scale2(b[2], f[2 * np + 1], f[2 * np + 1]),
                   scale2(b[3], f[2 * np + 1], f[2 * np + 1]));
        }
      }
    }
    // Intra: sub-chunks j <= rb.
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (j > rb) break;
      float A[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
      const int krow = 16 * j + (lane & 7) + (lane >> 4) * 8;
#pragma unroll
      for (int kk = 0; kk < K / 16; ++kk) {
        unsigned qa[4];
        ldsm4(qa, qrow - (qsw << 4) + (((kk * 2 + (lane >> 4)) ^ qsw) << 4));
        unsigned b[4];
        ldsm4(b, st + L::kK + tile_off<K>(krow, kk * 2 + ((lane >> 3) & 1)));
        mma16816(A[0], qa[0], qa[1], qa[2], qa[3], b[0], b[1]);
        mma16816(A[1], qa[0], qa[1], qa[2], qa[3], b[2], b[3]);
      }
      if (j == rb) {  // causal mask inside the diagonal sub-block: s <= t
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const int s = nt * 8 + qq;
          if (s > gq) A[nt][0] = 0.f;
          if (s + 1 > gq) A[nt][1] = 0.f;
          if (s > gq + 8) A[nt][2] = 0.f;
          if (s + 1 > gq + 8) A[nt][3] = 0.f;
        }
      }
      const unsigned p0 = pack2(A[0][0], A[0][1]), p1 = pack2(A[0][2], A[0][3]);
      const unsigned p2 = pack2(A[1][0], A[1][1]), p3 = pack2(A[1][2], A[1][3]);
      const float* m = mvec + (rb * 5 + j + 1) * M;
      const int vrow = 16 * j + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        const float f0 = m[np * 16 + gq], f1 = m[np * 16 + 8 + gq];
        unsigned b[4];
        ldsm4t(b, st + L::kV + tile_off<M>(vrow, np * 2 + (lane >> 4)));
        mma16816(o[2 * np], p0, p1, p2, p3, scale2(b[0], f0, f0), scale2(b[1], f0, f0));
        mma16816(o[2 * np + 1], p0, p1, p2, p3, scale2(b[2], f1, f1), scale2(b[3], f1, f1));
      }
    }
    // Epilogue: r = scale 2^(G_t - G_f) (.) o, then the softmax over the row's M columns (a row
    // lives in the 4 lanes of a quad), stored as bf16.
    {
      const int t0 = 16 * rb + gq;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int col = nt * 8 + qq;
        const float2 fa = *reinterpret_cast<const float2*>(ofac + t0 * L::kOfStride + col);
        const float2 fb = *reinterpret_cast<const float2*>(ofac + (t0 + 8) * L::kOfStride + col);
        o[nt][0] *= scale * fa.x, o[nt][1] *= scale * fa.y, o[nt][2] *= scale * fb.x, o[nt][3] *= scale * fb.y;
      }
      if constexpr (P::epilogue == Epilogue::kSoftmax) {
        float mx0 = o[0][0], mx1 = o[0][2];
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          mx0 = fmaxf(mx0, fmaxf(o[nt][0], o[nt][1]));
          mx1 = fmaxf(mx1, fmaxf(o[nt][2], o[nt][3]));
        }
#pragma unroll
        for (int d = 1; d <= 2; d *= 2) {
          mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, d));
          mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, d));
        }
        float sum0 = 0.f, sum1 = 0.f;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          o[nt][0] = ex2((o[nt][0] - mx0) * kLog2e), o[nt][1] = ex2((o[nt][1] - mx0) * kLog2e);
          o[nt][2] = ex2((o[nt][2] - mx1) * kLog2e), o[nt][3] = ex2((o[nt][3] - mx1) * kLog2e);
          sum0 += o[nt][0] + o[nt][1], sum1 += o[nt][2] + o[nt][3];
        }
#pragma unroll
        for (int d = 1; d <= 2; d *= 2) {
          sum0 += __shfl_xor_sync(0xffffffffu, sum0, d);
          sum1 += __shfl_xor_sync(0xffffffffu, sum1, d);
        }
        const float i0 = 1.f / sum0, i1 = 1.f / sum1;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) o[nt][0] *= i0, o[nt][1] *= i0, o[nt][2] *= i1, o[nt][3] *= i1;
      }
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int col = nt * 8 + qq;
        const long long ta = walk_token<P>(c0 + t0, len) * rm + col, tb = walk_token<P>(c0 + t0 + 8, len) * rm + col;
        if constexpr (OF32) {
          if (t0 < valid) *reinterpret_cast<float2*>(ogf + ta) = make_float2(o[nt][0], o[nt][1]);
          if (t0 + 8 < valid) *reinterpret_cast<float2*>(ogf + tb) = make_float2(o[nt][2], o[nt][3]);
        } else {
          if (t0 < valid) *reinterpret_cast<unsigned*>(og + ta) = pack2(o[nt][0], o[nt][1]);
          if (t0 + 8 < valid) *reinterpret_cast<unsigned*>(og + tb) = pack2(o[nt][2], o[nt][3]);
        }
      }
    }
    // Carry: S = S (.)cols d + sum_j k_j^T (v~_j (.)cols u_j).
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const float2 dd = *reinterpret_cast<const float2*>(dvec + nt * 8 + qq);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) S[mt][nt][0] *= dd.x, S[mt][nt][1] *= dd.y, S[mt][nt][2] *= dd.x, S[mt][nt][3] *= dd.y;
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int arow = 16 * j + (lane & 7) + (lane >> 4) * 8;
      const int vrow = 16 * j + (lane & 7) + ((lane >> 3) & 1) * 8;
      unsigned a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) ldsm4t(a[mt], st + L::kK + tile_off<K>(arow, (rb * KR + mt * 16) / 8 + ((lane >> 3) & 1)));
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        const float f0 = uvec[j * M + np * 16 + gq], f1 = uvec[j * M + np * 16 + 8 + gq];
        unsigned b[4];
        ldsm4t(b, st + L::kV + tile_off<M>(vrow, np * 2 + (lane >> 4)));
        const unsigned b0 = scale2(b[0], f0, f0), b1 = scale2(b[1], f0, f0), b2 = scale2(b[2], f1, f1), b3 = scale2(b[3], f1, f1);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(S[mt][2 * np], a[mt][0], a[mt][1], a[mt][2], a[mt][3], b0, b1);
          mma16816(S[mt][2 * np + 1], a[mt][0], a[mt][1], a[mt][2], a[mt][3], b2, b3);
        }
      }
    }
  }

  float* ht = p.finalStates[P::kState];
  if (ht && STT) {
    float* b = ht + (static_cast<long long>(n) * H + h) * K * V;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int r = rb * KR + mt * 16 + gq, col = vt * M + nt * 8 + qq;
        b[state_index<P, K, V>(r, col)] = S[mt][nt][0], b[state_index<P, K, V>(r, col + 1)] = S[mt][nt][1];
        b[state_index<P, K, V>(r + 8, col)] = S[mt][nt][2], b[state_index<P, K, V>(r + 8, col + 1)] = S[mt][nt][3];
      }
  } else if (ht) {
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        float* b = ht + stOff + (rb * KR + mt * 16 + gq) * V + nt * 8 + qq;
        *reinterpret_cast<float2*>(b) = make_float2(S[mt][nt][0], S[mt][nt][1]);
        *reinterpret_cast<float2*>(b + 8 * V) = make_float2(S[mt][nt][2], S[mt][nt][3]);
      }
  }
}

}  // namespace fc
}  // namespace lina
