// A register-resident fused chunked forward for the single-state family (GLA, simple GLA, RetNet
// retention): one state S[K, V] in fp32, S_t = a_t (.)rows S_{t-1} + k_t v_t^T, one read after the
// update, o_t = scale * q_t^T S_t, with a_t = exp(g_t) a per-step vector over K, a per-step scalar,
// or a per-head constant. The skeleton is fixed; the emitter supplies a Policy (gate kind, K, V,
// V tile, scale, the per-head decay, the parameter slots) and instantiates fused_chunk_forward.
//
// Work split (chunk C = 64, sub-chunks of 16):
//   one CTA per (sequence, head, V tile of BV = 64 or 128 columns); 4 warps per 64 columns.
//   warp w: rb = w % 4 (its 16-row sub-chunk of the output and its K/4 rows of the state),
//           vh = w / 4 (its 64 columns of the V tile).
//   The state lives in mma.sync accumulator fragments (fp32), K/4 x 64 per warp; a bf16 copy of
//   the chunk's starting state goes to shared memory once per chunk because every warp's inter
//   term q~ S reads all K rows.
// Per chunk:
//   B1  cp.async of chunk c landed (issued one chunk ahead, double-buffered, zero-filled past the
//       sequence's end, so masked rows carry g = 0, k = v = q = 0 and never touch the state).
//       Issue chunk c + 1. Write bf16(S) to smem.
//   prep (in place, column pairs; lane = (sub-chunk i, column pair)): the log2 cumsum of the gate
//       within each 16-row sub-chunk, a shuffle scan across sub-chunks, then
//         q~[t] = scale q[t] 2^(G_t - G_{f_i})     (f_i the first row of sub-chunk i; <= 0)
//         k~[s] = k[s] 2^(G_{e_j} - G_s)           (e_j the last row of sub-chunk j; <= 0)
//       and per-column vectors m[i][j+1] = 2^(G_{f_i} - G_{e_j}) (j = -1: G = 0 at the chunk
//       start, so m[i][0] is the inter factor), u[j] = 2^(G_63 - G_{e_j}), d = 2^(G_63).
//       Every exponent is <= 0 except the diagonal m[i][i] (<= 15 steps of decay: the diagonal
//       sub-blocks are factored against their first row, exact in fp32 while every per-step log
//       gate is >= -5.8; fla's GLA layer uses logsigmoid / 16).
//   B2  then each warp, registers only:
//       o  = (q~ (.) m[rb][0]) S_bf16                         (inter, old state)
//       o += sum_{j<=rb} mask((q~ (.) m[rb][j+1]) k~_j^T) v_j  (intra; the fp32 score fragments are
//                                                              the bf16 A operand of the next mma)
//       S  = d (.)rows S + sum_j (u_j (.)rows k~_j^T) v_j      (the carry)
//   Two barriers per chunk, no fp32 chunk buffers, exp2 only on 2 elements per (t, k) of q and k.
//   Row gates (scalar, per-head constant, none): the decay is one factor per step, so it goes on
//   the fragments instead: every warp scans the chunk's 64 log2 gates in registers (warp 0
//   publishes G_t and u_s = 2^(G_63 - G_s)), q and k stay raw in shared memory (no prep pass),
//       o  = (q S_bf16) (.)rows scale 2^(G_t)                 (on the C fragments)
//       o += mask((q k_j^T) (.) scale 2^(G_t - G_s)) v_j      (on the score C fragments)
//       S  = 2^(G_63) S + sum_j (k_j (.)rows u_j)^T v_j       (u on the carry's A fragments)
//   with every exponent <= 0 for any decay (no factorization against a reference row). On one
//   H100, before against after: simple GLA 0.737 -> 0.511 ms at B4_T4096_H64_D128 (fused), 0.778
//   -> 0.568 at B2_T16384_H16_D128 (segmented); retention and linear attention alike
//   (bench/results/2026-12-07-h100-row-gate-fragments).
//
// Modes (the segmented strategy: few long sequences still fill the SMs). A segment is kSeg
// chunks; segment slot = bos / (64 kSeg) + n + segment index (like the chunk slots of the split
// strategy), so every sequence's segments are numbered without a table.
//   kWhole   the above, one CTA walks its (sequence, head, V tile).
//   kLocal   one CTA per (V tile of 64, head, segment slot): the walk over the segment's chunks
//            from a zero state, without q or outputs; stores the local state L (fp32) to
//            p.snapshots[0] as [slot][H][K][V] and the segment's total decay per row D (fp32)
//            to p.snapshots[1] as [slot][H][K].
//   (segment_scan below: per (element of S, head, sequence), S_start(s) = S, S = D(s) S + L(s)
//            over the segments in order, S_start overwriting L; the final state.)
//   kRange   one CTA per (V tile, head, segment slot): kWhole over the segment's chunks, from
//            S_start (fp32, p.snapshots[0]) instead of the initial state, no final state.
// Tensors (fla's conventions): q, k, g(vector) [B, T, H, K], v, o [B, T, H, V], g(scalar)
// [B, T, H], states fp32 [N, H, K, V]; varlen: B = 1 and p.cuSeqlens [N + 1].
// Header-only, NVRTC-compatible (no std headers). sm_80+ (mma.sync m16n8k16 bf16, ldmatrix,
// cp.async).
#pragma once

#include "lina/device/common.cuh"

namespace lina {
namespace fc {

enum class Gate : int {
  kVector = 0,     // g [B, T, H, K], natural-log decay per key channel (GLA)
  kScalar = 1,     // g [B, T, H], natural-log decay per step (simple GLA)
  kHeadConst = 2,  // Policy::head_log_decay(p, h, H), natural log (RetNet: log(1 - 2^(-5-h)))
  kNone = 3,       // no decay (linear attention)
};

// Optional Policy members, for the kernels of the derived backward (compiler/kir/adjoint.cc);
// absent, each is false:
//   kReverse    walk every sequence from its last token to its first (row r of the walk is token
//               len - 1 - r): the adjoint states run backward in time. Nothing is flipped in memory.
//   kGateShift  the gate of walk step r is the one of token len - r (the next token in time), and
//               none (log 0) at r = 0: the adjoint recurrence is gated by the step after it.
//   kStateT     the initial and final states are stored transposed ([N, H, cols, rows]): the
//               walk's state is the transpose of the forward's.
//   kOutF32     the output is fp32, not bf16 (an intermediate the gate-gradient pass reads).
//   kInitDivScale  the initial state is divided by the read's scale as it is loaded: an adjoint
//               walk sums c q do^T unscaled and applies c at its read, so its initial state
//               d(final state) enters as dS_T / c.
template <class P, class = void>
struct reverse_of { static constexpr bool value = false; };
template <class P>
struct reverse_of<P, decltype(void(P::kReverse))> { static constexpr bool value = P::kReverse; };
template <class P, class = void>
struct gate_shift_of { static constexpr bool value = false; };
template <class P>
struct gate_shift_of<P, decltype(void(P::kGateShift))> { static constexpr bool value = P::kGateShift; };
template <class P, class = void>
struct state_t_of { static constexpr bool value = false; };
template <class P>
struct state_t_of<P, decltype(void(P::kStateT))> { static constexpr bool value = P::kStateT; };
template <class P, class = void>
struct out_f32_of { static constexpr bool value = false; };
template <class P>
struct out_f32_of<P, decltype(void(P::kOutF32))> { static constexpr bool value = P::kOutF32; };

template <class P, class = void>
struct init_div_scale_of { static constexpr bool value = false; };
template <class P>
struct init_div_scale_of<P, decltype(void(P::kInitDivScale))> { static constexpr bool value = P::kInitDivScale; };

// The walk's row r of a sequence of `len` tokens as a token offset from its first token, and the
// token whose gate walk row r takes (see kReverse, kGateShift).
template <class P>
__device__ __forceinline__ long long walk_token(long long r, long long len) {
  return reverse_of<P>::value ? len - 1 - r : r;
}
template <class P>
__device__ __forceinline__ long long gate_token(long long r, long long len) {
  return reverse_of<P>::value ? (gate_shift_of<P>::value ? len - r : len - 1 - r) : r + (gate_shift_of<P>::value ? 1 : 0);
}
// Whether walk row r has a gate (every row but the first under kGateShift, inside the sequence).
template <class P>
__device__ __forceinline__ bool gate_valid(long long r, long long len) {
  if (reverse_of<P>::value) return r < len && !(gate_shift_of<P>::value && r == 0);
  return r + (gate_shift_of<P>::value ? 1 : 0) < len;
}
// Element (row, col) of a [rows, cols] state in its stored layout.
template <class P, int ROWS, int COLS>
__device__ __forceinline__ long long state_index(int row, int col) {
  return state_t_of<P>::value ? static_cast<long long>(col) * ROWS + row : static_cast<long long>(row) * COLS + col;
}

// The Policy the emitter generates:
//   struct MyPolicy {
//     static constexpr Gate gate = Gate::kVector;
//     static constexpr int K = 128, V = 128;   // head dims, K, V in {64, 128}
//     static constexpr int BV = 128;           // V columns per CTA: 64 or 128 (4 warps per 64)
//     static constexpr int kQ = 0, kK = 1, kV = 2, kG = 3;  // KernelParams::inputs slots
//     static constexpr int kO = 0;             // KernelParams::outputs slot
//     static constexpr int kState = 0;         // initialStates / finalStates slot
//     __device__ static float scale(const KernelParams& p, int h, int H) { return 0.08838834764831845f; }
//     __device__ static float head_log_decay(const KernelParams& p, int h, int H) { return 0.f; }  // kHeadConst
//   };
// Launch: one CTA per (V tile, head, sequence), fused_chunk_forward<P>(p, vt, h, n); block =
// threads<P>(), dynamic shared memory = smem_bytes<P>() (above 48 KB: raise the attribute).

constexpr int kChunk = 64;

enum class Mode : int { kWhole = 0, kLocal = 1, kRange = 2 };

template <class P>
__host__ __device__ constexpr int threads() {
  return 128 * (P::BV / 64);
}

template <class P, Mode M = Mode::kWhole>
struct Layout {
  static constexpr bool kVec = P::gate == Gate::kVector;
  static constexpr int kStages = 2;
  static constexpr bool kWalkOnly = M == Mode::kLocal;  // no q, no Sb, no m
  static constexpr int kQ = 0;
  static constexpr int kK = kQ + (kWalkOnly ? 0 : kChunk * P::K * 2);
  static constexpr int kG = kK + kChunk * P::K * 2;
  static constexpr int kV = kG + (kVec ? kChunk * P::K * 2 : 0);
  static constexpr int kStage = kV + kChunk * P::BV * 2;
  static constexpr int kSb = kStages * kStage;                            // bf16 [K][BV], the chunk's starting state
  // Vector gates: m fp32 [4][5][K], u fp32 [4][K], d fp32 [K]. Row gates: m holds G_t and u the
  // carry's token factors, fp32 [64] each, and no d.
  static constexpr int kM = kSb + (kWalkOnly ? 0 : P::K * P::BV * 2);
  static constexpr int kU = kM + (kWalkOnly ? 0 : kVec ? 20 * P::K * 4 : kChunk * 4);
  static constexpr int kD = kU + (kVec ? 4 * P::K * 4 : kChunk * 4);
  static constexpr int kGs = kD + (kVec ? P::K * 4 : 0);  // fp32 [2][64], scalar gates
  static constexpr int kTotal = kGs + 2 * kChunk * 4;
};

template <class P, Mode M = Mode::kWhole>
__host__ __device__ constexpr int smem_bytes() {
  return Layout<P, M>::kTotal;
}

// ---- small PTX helpers --------------------------------------------------------------------------

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
// {lo, hi} -> bf16x2 (lo in the low half), round to nearest even.
__device__ __forceinline__ unsigned pack2(float lo, float hi) {
  unsigned r;
  asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}
__device__ __forceinline__ float lo_of(unsigned u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float hi_of(unsigned u) { return __uint_as_float(u & 0xffff0000u); }
__device__ __forceinline__ unsigned scale2(unsigned u, float a, float b) { return pack2(lo_of(u) * a, hi_of(u) * b); }

__device__ __forceinline__ unsigned smem_addr(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void cp_async16(unsigned dst, const void* src, bool valid) {
  const int n = valid ? 16 : 0;  // 0: zero-fill, nothing read
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

__device__ __forceinline__ void ldsm4(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm4t(unsigned (&r)[4], unsigned addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void mma16816(float (&c)[4], unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                         unsigned b0, unsigned b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// Tiles of bf16 rows (W elements, W >= 64) are stored with their 16-byte chunks permuted per row:
// chunk c of row r sits at c ^ f(r). f makes the 8 rows of an ldmatrix read distinct (r & 7) and
// the prep's 4 sub-chunk rows r, r + 16, r + 32, r + 48 land in distinct 32-byte bank groups.
__device__ __forceinline__ int swz(int row) { return (row & 7) ^ (((row >> 4) & 3) << 1); }
template <int W>
__device__ __forceinline__ int tile_off(int row, int chunk) {  // bytes
  return row * (W * 2) + ((chunk ^ swz(row)) << 4);
}
template <int W>
__device__ __forceinline__ int tile_off_elem(int row, int col) {  // bytes of element (row, col)
  return tile_off<W>(row, col >> 3) + ((col & 7) << 1);
}

// Rows [c0, c0 + 64) of a [*, rowStride] bf16 tensor, columns [col0, col0 + W), into a swizzled
// tile; rows at or past `valid`, and rows before `first`, are zero-filled without reading.
// rowStride < 0 walks the rows backward from src (a reversed walk).
template <int W, int NT, bool kFirst = false>
__device__ __forceinline__ void load_tile(unsigned dst, const bf16* src, long long rowStride, int valid, int first = 0) {
  constexpr int CH = W / 8;
  static_assert((kChunk * CH) % NT == 0, "load_tile: whole passes");
#pragma unroll
  for (int it = 0; it < kChunk * CH / NT; ++it) {
    const int idx = threadIdx.x + it * NT;
    const int row = idx / CH, ch = idx % CH;
    const bool ok = row < valid && (!kFirst || row >= first);
    const bf16* s = ok ? src + row * rowStride + ch * 8 : src;
    cp_async16(dst + tile_off<W>(row, ch), s, ok);
  }
}

// The A fragment of q rows for one 16-column step (ldmatrix at `addr`); for vector gates scaled
// per column by the factors at m (columns qq, qq + 1 and qq + 8, qq + 9 of the step).
template <bool kScaled>
__device__ __forceinline__ void load_q_fragment(unsigned (&qa)[4], unsigned addr, const float* m) {
  float2 ma, mb;
  if constexpr (kScaled) {
    ma = *reinterpret_cast<const float2*>(m);
    mb = *reinterpret_cast<const float2*>(m + 8);
  }
  ldsm4(qa, addr);
  if constexpr (kScaled) {
    qa[0] = scale2(qa[0], ma.x, ma.y), qa[1] = scale2(qa[1], ma.x, ma.y);
    qa[2] = scale2(qa[2], mb.x, mb.y), qa[3] = scale2(qa[3], mb.x, mb.y);
  }
}

// ---- the skeleton -------------------------------------------------------------------------------

// kWarpMap 1 (default): the warps of the second 64 columns take the sub-chunks in reverse
// (rb = 3 - w % 4), so the two warps sharing a scheduler (w, w + 4) have 5 intra sub-blocks
// between them; 0: rb = w % 4 for both (run 1).
// (vt, h, n): the CTA's V tile, head and sequence (the caller maps them from its grid).
// kLocal, kRange: `nOrSlot` is the segment slot (the sequence and the segment follow from it).
template <class P, int kWarpMap = 1, Mode kMode = Mode::kWhole, int kSeg = 1>
__device__ __forceinline__ void fused_chunk_forward(const KernelParams& p, const int vt, const int h, const int nOrSlot) {
  constexpr bool kStatesOnly = kMode == Mode::kLocal, kSegment = kMode != Mode::kWhole;
  constexpr int K = P::K, V = P::V, BV = P::BV, C = kChunk;
  static_assert(K == 64 || K == 128, "fused_chunk_forward: K in {64, 128}");
  static_assert(BV == 64 || BV == 128, "fused_chunk_forward: BV in {64, 128}");
  static_assert(V % BV == 0, "fused_chunk_forward: V must be a multiple of BV");
  constexpr int NVT = V / BV, NW = 4 * (BV / 64), NT = NW * 32;
  constexpr Gate G = P::gate;
  constexpr bool VEC = G == Gate::kVector;
  constexpr bool REV = reverse_of<P>::value, SHIFT = gate_shift_of<P>::value, STT = state_t_of<P>::value;
  constexpr bool OF32 = out_f32_of<P>::value;
  static_assert(!(kSegment && (REV || SHIFT || STT || OF32)), "fused_chunk_forward: the adjoint options are whole-walk only");
  static_assert(!SHIFT || REV, "fused_chunk_forward: kGateShift needs kReverse");
  constexpr int KR = K / 4, MT = KR / 16;  // state rows per warp, their m16 tiles
  using L = Layout<P, kMode>;

  extern __shared__ __align__(128) unsigned char smem[];
  const unsigned sbase = smem_addr(smem);
  float* mvec = reinterpret_cast<float*>(smem + L::kM);
  float* uvec = reinterpret_cast<float*>(smem + L::kU);
  float* dvec = reinterpret_cast<float*>(smem + L::kD);
  float* gs = reinterpret_cast<float*>(smem + L::kGs);

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int gq = lane >> 2, qq = (lane & 3) * 2;
  const int vh = warp >> 2;
  const int rb = (kWarpMap == 1 && vh == 1) ? 3 - (warp & 3) : (warp & 3);
  static_assert(NVT >= 1, "fused_chunk_forward: V >= BV");
  const int H = p.heads;
  long long bos, len;
  int n = nOrSlot, cbeg = 0;
  if constexpr (kSegment) {
    long long s0;
    if (!chunk_of_slot(p, C * kSeg, nOrSlot, n, bos, len, s0)) return;  // a spare slot
    cbeg = static_cast<int>(s0 / C);
  } else {
    sequence_bounds(p, n, bos, len);
  }
  const long long segOff = (static_cast<long long>(nOrSlot) * H + h) * K;  // [slot][H][K](*V)

  // kQ < 0: the query is a two-phase plan's bf16 intermediate [tokens, H, K] (p.snapshots[0]).
  const bf16* qg = (P::kQ < 0 ? reinterpret_cast<const bf16*>(p.snapshots[0]) : static_cast<const bf16*>(p.inputs[P::kQ < 0 ? 0 : P::kQ])) +
                   (bos * H + h) * K;
  const bf16* kg = static_cast<const bf16*>(p.inputs[P::kK]) + (bos * H + h) * K;
  const bf16* vg = static_cast<const bf16*>(p.inputs[P::kV]) + (bos * H + h) * V + vt * BV;
  bf16* og = static_cast<bf16*>(p.outputs[P::kO]) + (bos * H + h) * V + vt * BV;
  float* ogf = static_cast<float*>(p.outputs[P::kO]) + (bos * H + h) * V + vt * BV;  // kOutF32
  const long long rstep = REV ? -1 : 1;  // the token step of one walk row
  const bf16* ggv = nullptr;
  const bf16* ggs = nullptr;
  if constexpr (VEC) ggv = static_cast<const bf16*>(p.inputs[P::kG]) + (bos * H + h) * K;
  if constexpr (G == Gate::kScalar) ggs = static_cast<const bf16*>(p.inputs[P::kG]) + bos * H + h;
  float hc2 = 0.f;  // per-step log2 decay of a per-head constant gate
  if constexpr (G == Gate::kHeadConst) hc2 = P::head_log_decay(p, h, H) * kLog2e;
  const float scale = P::scale(p, h, H);
  const long long rq = static_cast<long long>(H) * K, rv = static_cast<long long>(H) * V;

  // The state slice: rows rb * KR + mt * 16 + gq (+ 8), columns vh * 64 + nt * 8 + qq (+ 1) of the tile.
  float S[MT][8][4];
  const long long stOff = (static_cast<long long>(n) * H + h) * K * V + vt * BV + vh * 64;
  {
    const float* h0 = kMode == Mode::kLocal ? nullptr : kMode == Mode::kRange ? p.snapshots[0] : p.initialStates[P::kState];
    const long long off0 = kMode == Mode::kRange ? segOff * V + vt * BV + vh * 64 : stOff;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        if (h0 && STT) {  // [cols][rows]: the transpose of the walk's state
          const float* b = h0 + (static_cast<long long>(n) * H + h) * K * V;
          const int r = rb * KR + mt * 16 + gq, col = vt * BV + vh * 64 + nt * 8 + qq;
          S[mt][nt][0] = b[state_index<P, K, V>(r, col)], S[mt][nt][1] = b[state_index<P, K, V>(r, col + 1)];
          S[mt][nt][2] = b[state_index<P, K, V>(r + 8, col)], S[mt][nt][3] = b[state_index<P, K, V>(r + 8, col + 1)];
        } else if (h0) {
          const float* b = h0 + off0 + (rb * KR + mt * 16 + gq) * V + nt * 8 + qq;
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
  const int cend = kSegment ? (cbeg + kSeg < nchunks ? cbeg + kSeg : nchunks) : nchunks;
  float Dr[MT][2];  // kLocal: the segment's total decay of this thread's state rows
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) Dr[mt][0] = Dr[mt][1] = 1.f;
  auto issue = [&](int c) {
    const long long c0 = static_cast<long long>(c) * C;
    const int valid = static_cast<int>(len - c0 < C ? len - c0 : C);
    const unsigned st = sbase + (L::kStages == 2 ? (c & 1) : 0) * L::kStage;
    const long long t0 = walk_token<P>(c0, len);  // the token of the chunk's first walk row
    if constexpr (!kStatesOnly) load_tile<K, NT>(st + L::kQ, qg + t0 * rq, rstep * rq, valid);
    load_tile<K, NT>(st + L::kK, kg + t0 * rq, rstep * rq, valid);
    if constexpr (VEC)
      load_tile<K, NT, SHIFT>(st + L::kG, ggv + gate_token<P>(c0, len) * rq, rstep * rq, valid, SHIFT && c0 == 0 ? 1 : 0);
    load_tile<BV, NT>(st + L::kV, vg + t0 * rv, rstep * rv, valid);
  };
  if (cbeg < cend) issue(cbeg);
  cp_async_commit();
  if constexpr (G == Gate::kScalar) {
    const long long t = static_cast<long long>(cbeg) * C + tid;
    if (tid < C) gs[(L::kStages == 2 ? (cbeg & 1) : 0) * C + tid] = gate_valid<P>(t, len) ? to_float(ggs[gate_token<P>(t, len) * H]) : 0.f;
  }

  for (int c = cbeg; c < cend; ++c) {
    const int sidx = L::kStages == 2 ? (c & 1) : 0;
    const long long c0 = static_cast<long long>(c) * C;
    const int valid = static_cast<int>(len - c0 < C ? len - c0 : C);
    unsigned char* stp = smem + sidx * L::kStage;
    const unsigned st = sbase + sidx * L::kStage;

    cp_async_wait_all();
    __syncthreads();  // B1: chunk c landed; every warp is done with chunk c - 1's buffers
    if (c + 1 < cend) issue(c + 1);
    cp_async_commit();
    float gnext = 0.f;
    if constexpr (G == Gate::kScalar) {
      const long long t = c0 + C + tid;
      if (tid < C && gate_valid<P>(t, len)) gnext = to_float(ggs[gate_token<P>(t, len) * H]);
    }

    // bf16 copy of the chunk's starting state for the inter term of every warp.
    if constexpr (!kStatesOnly) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const int r = rb * KR + mt * 16 + gq, col = vh * 64 + nt * 8 + qq;
          *reinterpret_cast<unsigned*>(smem + L::kSb + tile_off_elem<BV>(r, col)) = pack2(S[mt][nt][0], S[mt][nt][1]);
          *reinterpret_cast<unsigned*>(smem + L::kSb + tile_off_elem<BV>(r + 8, col)) = pack2(S[mt][nt][2], S[mt][nt][3]);
        }
    }

    // Row gates (scalar, per-head constant, none): every warp scans the chunk's 64 log2 gates
    // (lane holds rows lane and lane + 32); warp 0 publishes G_t and the carry's token factors
    // u_s = 2^(G_63 - G_s). q and k stay raw in shared memory: the factors go on fragments.
    float g63 = 0.f;  // the chunk's total log2 decay (row gates)
    if constexpr (!VEC && G != Gate::kNone) {
      auto x_of = [&](int row) -> float {
        if constexpr (G == Gate::kScalar) return gs[sidx * C + row] * kLog2e;
        else return (row < valid && !(SHIFT && c0 + row == 0)) ? hc2 : 0.f;
      };
      float glo = x_of(lane), ghi = x_of(lane + 32);
#pragma unroll
      for (int d = 1; d < 32; d *= 2) {
        const float t0 = __shfl_up_sync(0xffffffffu, glo, d), t1 = __shfl_up_sync(0xffffffffu, ghi, d);
        if (lane >= d) glo += t0, ghi += t1;
      }
      ghi += __shfl_sync(0xffffffffu, glo, 31);
      g63 = __shfl_sync(0xffffffffu, ghi, 31);
      if (warp == 0) {
        if constexpr (!kStatesOnly) mvec[lane] = glo, mvec[lane + 32] = ghi;  // G_t
        uvec[lane] = ex2(g63 - glo), uvec[lane + 32] = ex2(g63 - ghi);
      }
    }
    // Prep: lane = (sub-chunk i = lane / 8, column pair cp = lane % 8) of a 16-column strip.
    if constexpr (VEC) {
      const int i = lane >> 3, cp = lane & 7;
      for (int strip = warp; strip < K / 16; strip += NW) {
        const int col = strip * 16 + cp * 2;
        float G0[16], G1[16];
        float a0 = 0.f, a1 = 0.f;
#pragma unroll
        for (int r = 0; r < 16; ++r) {
          const int row = 16 * i + r;
          float x0, x1;
          if constexpr (VEC) {
            const unsigned u = *reinterpret_cast<const unsigned*>(stp + L::kG + tile_off_elem<K>(row, col));
            x0 = lo_of(u) * kLog2e, x1 = hi_of(u) * kLog2e;
          } else if constexpr (G == Gate::kScalar) {
            x0 = x1 = gs[sidx * C + row] * kLog2e;
          } else if constexpr (G == Gate::kHeadConst) {
            x0 = x1 = (row < valid && !(SHIFT && c0 + row == 0)) ? hc2 : 0.f;
          } else {
            x0 = x1 = 0.f;
          }
          a0 += x0, a1 += x1;
          G0[r] = a0, G1[r] = a1;
        }
        // Inclusive totals through sub-chunk i, across the 4 sub-chunks (lanes cp, cp + 8, ...).
        float s0 = a0, s1 = a1;
#pragma unroll
        for (int d = 8; d <= 16; d *= 2) {
          const float t0 = __shfl_up_sync(0xffffffffu, s0, d), t1 = __shfl_up_sync(0xffffffffu, s1, d);
          if (lane >= d) s0 += t0, s1 += t1;
        }
        float E0[4], E1[4];  // G at the last row of each sub-chunk
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          E0[j] = __shfl_sync(0xffffffffu, s0, j * 8 + cp);
          E1[j] = __shfl_sync(0xffffffffu, s1, j * 8 + cp);
        }
        // q~ and k~ in place; their factors need only this sub-chunk's local cumsum.
#pragma unroll
        for (int r = 0; r < 16; ++r) {
          const int row = 16 * i + r;
          unsigned* qp = reinterpret_cast<unsigned*>(stp + L::kQ + tile_off_elem<K>(row, col));
          unsigned* kp = reinterpret_cast<unsigned*>(stp + L::kK + tile_off_elem<K>(row, col));
          float fq0, fq1, fk0, fk1;
          fq0 = ex2(G0[r] - G0[0]);
          fk0 = ex2(a0 - G0[r]);
          if constexpr (VEC) {
            fq1 = ex2(G1[r] - G1[0]);
            fk1 = ex2(a1 - G1[r]);
          } else {
            fq1 = fq0, fk1 = fk0;
          }
          if constexpr (!kStatesOnly) {
            const unsigned uq = *qp;
            *qp = pack2(lo_of(uq) * (scale * fq0), hi_of(uq) * (scale * fq1));
          }
          const unsigned uk = *kp;
          *kp = pack2(lo_of(uk) * fk0, hi_of(uk) * fk1);
        }
        // Vectors: m[i][j + 1] = 2^(G_{f_i} - G_{e_j}) (G_{e_-1} = 0), u[i] = 2^(G_63 - G_{e_i}), d = 2^(G_63).
        const float F0 = s0 - a0 + G0[0], F1 = s1 - a1 + G1[0];
        if constexpr (!kStatesOnly) {
          float2* mrow = reinterpret_cast<float2*>(mvec + (i * 5) * K + col);
          mrow[0] = make_float2(ex2(F0), ex2(F1));
#pragma unroll
          for (int j = 0; j < 4; ++j)
            if (j <= i) mrow[(j + 1) * K / 2] = make_float2(ex2(F0 - E0[j]), ex2(F1 - E1[j]));
        }
        *reinterpret_cast<float2*>(uvec + i * K + col) = make_float2(ex2(E0[3] - s0), ex2(E1[3] - s1));
        if (i == 3) *reinterpret_cast<float2*>(dvec + col) = make_float2(ex2(E0[3]), ex2(E1[3]));
      }
    }
    __syncthreads();  // B2: q~, k~, vectors and the bf16 state are visible

    // ---- warp math (registers + ldmatrix) ----
    if constexpr (!kStatesOnly) {
    float o[8][4];
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.f;
    // q~ fragments of rows 16 rb.. are re-read per use (ldmatrix) rather than held: 32 fewer live
    // registers at K = 128.
    const unsigned qrow = st + L::kQ + tile_off<K>(16 * rb + (lane & 7) + ((lane >> 3) & 1) * 8, 0);
    const int qsw = swz(16 * rb + (lane & 7) + ((lane >> 3) & 1) * 8);
    // Inter: o = (q~ (.) m[rb][0]) S_bf16 for vector gates (m scales the A fragments); for row
    // gates o = (q S_bf16) (.)rows scale 2^(G_t) and the scores below (q k^T) (.) scale 2^(G_t - G_s),
    // every exponent <= 0 for any decay.
    {
      const float* m = mvec + (rb * 5) * K;
      const int brow = (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int kk = 0; kk < K / 16; ++kk) {
        unsigned qa[4];
        load_q_fragment<VEC>(qa, qrow - (qsw << 4) + (((kk * 2 + (lane >> 4)) ^ qsw) << 4), m + kk * 16 + qq);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          unsigned b[4];
          ldsm4t(b, sbase + L::kSb + tile_off<BV>(kk * 16 + brow, (vh * 64 + np * 16) / 8 + (lane >> 4)));
          mma16816(o[2 * np], qa[0], qa[1], qa[2], qa[3], b[0], b[1]);
          mma16816(o[2 * np + 1], qa[0], qa[1], qa[2], qa[3], b[2], b[3]);
        }
      }
    }
    const int ta = 16 * rb + gq;  // this thread's output rows ta, ta + 8
    const float* gcum = mvec;     // row gates: G_t
    float gta = 0.f, gtb = 0.f;
    if constexpr (!VEC) {
      if constexpr (G != Gate::kNone) gta = gcum[ta], gtb = gcum[ta + 8];
      const float fa = G == Gate::kNone ? scale : scale * ex2(gta), fb = G == Gate::kNone ? scale : scale * ex2(gtb);
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) o[nt][0] *= fa, o[nt][1] *= fa, o[nt][2] *= fb, o[nt][3] *= fb;
    }
    // Intra: sub-chunks j <= rb.
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      if (j > rb) break;
      const float* m = mvec + (rb * 5 + j + 1) * K;
      float A[2][4] = {{0.f, 0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
      const int krow = 16 * j + (lane & 7) + (lane >> 4) * 8;
#pragma unroll
      for (int kk = 0; kk < K / 16; ++kk) {
        unsigned qa[4];
        load_q_fragment<VEC>(qa, qrow - (qsw << 4) + (((kk * 2 + (lane >> 4)) ^ qsw) << 4), m + kk * 16 + qq);
        unsigned b[4];
        ldsm4(b, st + L::kK + tile_off<K>(krow, kk * 2 + ((lane >> 3) & 1)));
        mma16816(A[0], qa[0], qa[1], qa[2], qa[3], b[0], b[1]);
        mma16816(A[1], qa[0], qa[1], qa[2], qa[3], b[2], b[3]);
      }
      if constexpr (VEC) {
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
      } else {  // the mask and scale 2^(G_t - G_s); (t, s) of A[nt][e]: t = ta (+ 8 for e >= 2), s = 16 j + 8 nt + qq (+ 1 for odd e)
#pragma unroll
        for (int nt = 0; nt < 2; ++nt) {
          const int s0 = 16 * j + 8 * nt + qq;
          float gs0 = 0.f, gs1 = 0.f;
          if constexpr (G != Gate::kNone) {
            const float2 gg = *reinterpret_cast<const float2*>(gcum + s0);
            gs0 = gg.x, gs1 = gg.y;
          }
          A[nt][0] = s0 <= ta ? A[nt][0] * scale * ex2(gta - gs0) : 0.f;
          A[nt][1] = s0 + 1 <= ta ? A[nt][1] * scale * ex2(gta - gs1) : 0.f;
          A[nt][2] = s0 <= ta + 8 ? A[nt][2] * scale * ex2(gtb - gs0) : 0.f;
          A[nt][3] = s0 + 1 <= ta + 8 ? A[nt][3] * scale * ex2(gtb - gs1) : 0.f;
        }
      }
      const unsigned p0 = pack2(A[0][0], A[0][1]), p1 = pack2(A[0][2], A[0][3]);
      const unsigned p2 = pack2(A[1][0], A[1][1]), p3 = pack2(A[1][2], A[1][3]);
      const int vrow = 16 * j + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        unsigned b[4];
        ldsm4t(b, st + L::kV + tile_off<BV>(vrow, (vh * 64 + np * 16) / 8 + (lane >> 4)));
        mma16816(o[2 * np], p0, p1, p2, p3, b[0], b[1]);
        mma16816(o[2 * np + 1], p0, p1, p2, p3, b[2], b[3]);
      }
    }
    // Output rows 16 rb + gq (+ 8) of the chunk.
    {
      const int t0 = 16 * rb + gq;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int col = vh * 64 + nt * 8 + qq;
        const long long ta = walk_token<P>(c0 + t0, len) * rv + col, tb = walk_token<P>(c0 + t0 + 8, len) * rv + col;
        if constexpr (OF32) {
          if (t0 < valid) *reinterpret_cast<float2*>(ogf + ta) = make_float2(o[nt][0], o[nt][1]);
          if (t0 + 8 < valid) *reinterpret_cast<float2*>(ogf + tb) = make_float2(o[nt][2], o[nt][3]);
        } else {
          if (t0 < valid) *reinterpret_cast<unsigned*>(og + ta) = pack2(o[nt][0], o[nt][1]);
          if (t0 + 8 < valid) *reinterpret_cast<unsigned*>(og + tb) = pack2(o[nt][2], o[nt][3]);
        }
      }
    }
    }  // !kStatesOnly
    // Carry: S = d (.)rows S + sum_j (u_j (.)rows k~_j^T) v_j.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      const int r = rb * KR + mt * 16 + gq;
      if constexpr (G == Gate::kNone) continue;
      const float dr = VEC ? 1.f : ex2(g63);
      const float d0 = VEC ? dvec[r] : dr, d1 = VEC ? dvec[r + 8] : dr;
      if constexpr (kStatesOnly) Dr[mt][0] *= d0, Dr[mt][1] *= d1;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        S[mt][nt][0] *= d0, S[mt][nt][1] *= d0, S[mt][nt][2] *= d1, S[mt][nt][3] *= d1;
      }
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int arow = 16 * j + (lane & 7) + (lane >> 4) * 8;
      const int vrow = 16 * j + (lane & 7) + ((lane >> 3) & 1) * 8;
      unsigned a[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int kb = rb * KR + mt * 16;
        unsigned t[4];
        ldsm4t(t, st + L::kK + tile_off<K>(arow, kb / 8 + ((lane >> 3) & 1)));
        if constexpr (VEC) {  // k~ is prescaled within its sub-chunk; u per state row
          const float u0 = uvec[j * K + kb + gq], u1 = uvec[j * K + kb + gq + 8];
          a[mt][0] = scale2(t[0], u0, u0);
          a[mt][1] = scale2(t[1], u1, u1);
          a[mt][2] = scale2(t[2], u0, u0);
          a[mt][3] = scale2(t[3], u1, u1);
        } else if constexpr (G == Gate::kNone) {
          a[mt][0] = t[0], a[mt][1] = t[1], a[mt][2] = t[2], a[mt][3] = t[3];
        } else {  // raw k; u per token (the fragment's columns 16 j + qq (+1), + 8)
          const float2 ua = *reinterpret_cast<const float2*>(uvec + 16 * j + qq);
          const float2 ub = *reinterpret_cast<const float2*>(uvec + 16 * j + 8 + qq);
          a[mt][0] = scale2(t[0], ua.x, ua.y);
          a[mt][1] = scale2(t[1], ua.x, ua.y);
          a[mt][2] = scale2(t[2], ub.x, ub.y);
          a[mt][3] = scale2(t[3], ub.x, ub.y);
        }
      }
#pragma unroll
      for (int np = 0; np < 4; ++np) {
        unsigned b[4];
        ldsm4t(b, st + L::kV + tile_off<BV>(vrow, (vh * 64 + np * 16) / 8 + (lane >> 4)));
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          mma16816(S[mt][2 * np], a[mt][0], a[mt][1], a[mt][2], a[mt][3], b[0], b[1]);
          mma16816(S[mt][2 * np + 1], a[mt][0], a[mt][1], a[mt][2], a[mt][3], b[2], b[3]);
        }
      }
    }
    if constexpr (G == Gate::kScalar) {
      if (tid < C) gs[(sidx ^ 1) * C + tid] = gnext;
    }
  }

  if constexpr (kMode == Mode::kLocal) {  // L and D of the segment
    float* Lg = p.snapshots[0] + segOff * V + vt * BV + vh * 64;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        float* b = Lg + (rb * KR + mt * 16 + gq) * V + nt * 8 + qq;
        *reinterpret_cast<float2*>(b) = make_float2(S[mt][nt][0], S[mt][nt][1]);
        *reinterpret_cast<float2*>(b + 8 * V) = make_float2(S[mt][nt][2], S[mt][nt][3]);
      }
    if (vt == 0 && vh == 0 && qq == 0)
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        p.snapshots[1][segOff + rb * KR + mt * 16 + gq] = Dr[mt][0];
        p.snapshots[1][segOff + rb * KR + mt * 16 + gq + 8] = Dr[mt][1];
      }
    return;
  }
  float* ht = kSegment ? nullptr : p.finalStates[P::kState];
  if (ht && STT) {
    float* b = ht + (static_cast<long long>(n) * H + h) * K * V;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int r = rb * KR + mt * 16 + gq, col = vt * BV + vh * 64 + nt * 8 + qq;
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

// The segmented strategy's middle pass: one thread per element (k, v) of S, one CTA of
// kScanThreads per (block of elements, head, sequence). Walks the sequence's segments in order:
// S_start(s) = S (over L(s), which it reads first), S = D(s)[k] S + L(s); then the final state.
constexpr int kScanThreads = 256;
template <class P, int kSeg>
__device__ __forceinline__ void segment_scan(const KernelParams& p, const int blk, const int h, const int n) {
  constexpr int K = P::K, V = P::V, C = kChunk;
  const int e = blk * kScanThreads + threadIdx.x;
  if (e >= K * V) return;
  const int H = p.heads, k = e / V;
  long long bos, len;
  sequence_bounds(p, n, bos, len);
  const long long nseg = (len + C * kSeg - 1) / (C * kSeg), slot0 = bos / (C * kSeg) + n;
  const long long st = (static_cast<long long>(n) * H + h) * K * V + e;
  const float* h0 = p.initialStates[P::kState];
  float S = h0 ? h0[st] : 0.f;
  // Eight segments' L and D are loaded before any store, so their loads overlap (one at a time,
  // each waited for a DRAM round trip: 180 us at B2_T16384_H16_D128 under ncu).
  constexpr int kBatch = 8;
  for (long long s0 = 0; s0 < nseg; s0 += kBatch) {
    float Ls[kBatch], Ds[kBatch];
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      const long long seg = (slot0 + s0 + i) * H + h;
      Ls[i] = s0 + i < nseg ? __ldcg(p.snapshots[0] + seg * K * V + e) : 0.f;
      Ds[i] = s0 + i < nseg ? __ldcg(p.snapshots[1] + seg * K + k) : 0.f;
    }
#pragma unroll
    for (int i = 0; i < kBatch; ++i) {
      if (s0 + i >= nseg) break;
      p.snapshots[0][((slot0 + s0 + i) * H + h) * K * V + e] = S;
      S = Ds[i] * S + Ls[i];
    }
  }
  if (p.finalStates[P::kState]) p.finalStates[P::kState][st] = S;
}

}  // namespace fc
}  // namespace lina

// A kernel for one policy over a 1-D grid, blockIdx.x = (n * H + h) * (V / BV) + vt (the bench
// harness); the emitter writes its own extern "C" __global__ over lina's (tiles, heads, sequences)
// grid that calls lina::fc::fused_chunk_forward<Policy>(p, vt, h, n).
template <class P, int kWarpMap = 1>
__global__ void __launch_bounds__(lina::fc::threads<P>(), 1) lina_fused_chunk_forward_kernel(const lina::KernelParams p) {
  constexpr int kTiles = P::V / P::BV;
  const int bid = blockIdx.x / kTiles;
  lina::fc::fused_chunk_forward<P, kWarpMap>(p, blockIdx.x % kTiles, bid % p.heads, bid / p.heads);
}
