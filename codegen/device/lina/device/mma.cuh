// Tensor-core block GEMM on fp32 shared-memory operands: mma.sync m16n8k16 with bf16 inputs and
// fp32 accumulation (sm_80+). Operands are rounded to bf16 while the fragments are built, so the
// chunk buffers stay fp32; SPLIT_B adds a second product with B's rounding residual (B = hi + lo
// in bf16), which keeps an fp32 operand such as the carried state near fp32 precision; SPLIT_A
// does the same for A (with both: hi.hi + hi.lo + lo.hi, error ~2^-16 relative). LEVELS = 3
// splits each split operand once more (hi + mid + lo, the six products down to 2^-24 terms),
// for fp32 precision: the derived backward's gate gradients are long sums whose terms must
// cancel to fp32 accuracy.
#pragma once

#include "lina/device/common.cuh"

namespace lina {

__device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
  return static_cast<unsigned>(from_float<bf16>(lo).bits) | (static_cast<unsigned>(from_float<bf16>(hi).bits) << 16);
}
// The residual x - bf16(x), itself as bf16.
__device__ __forceinline__ float bf16_residual(float x) { return x - to_float(from_float<bf16>(x)); }
__device__ __forceinline__ unsigned pack_bf16_residual(float lo, float hi) {
  return pack_bf16(bf16_residual(lo), bf16_residual(hi));
}

__device__ __forceinline__ void mma_bf16_16x8x16(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// The products of one k-step for one 16x8 tile, in a fixed order (so every blocking gives the
// same sums): a/b the hi fragments, amid/bmid the first residuals, av/bv the fp32 values.
template <bool SPLIT_B, bool SPLIT_A, int LEVELS>
__device__ __forceinline__ void mma_split_step(float (&c)[4], const unsigned (&a)[4], const unsigned (&amid)[4],
                                               const float (&ar)[8], const float (&bv)[4]) {
  unsigned b[2] = {pack_bf16(bv[0], bv[1]), pack_bf16(bv[2], bv[3])};
  if constexpr (LEVELS == 3) {
    // The smallest products first; each level is the previous level's residual.
    float br[4];
#pragma unroll
    for (int i = 0; i < 4; ++i) br[i] = bf16_residual(bv[i]);
    unsigned bmid[2] = {pack_bf16(br[0], br[1]), pack_bf16(br[2], br[3])};
    if constexpr (SPLIT_B) {
      unsigned blo[2] = {pack_bf16_residual(br[0], br[1]), pack_bf16_residual(br[2], br[3])};
      mma_bf16_16x8x16(c, a, blo);
    }
    if constexpr (SPLIT_A) {
      unsigned alo[4] = {pack_bf16_residual(ar[0], ar[1]), pack_bf16_residual(ar[2], ar[3]),
                         pack_bf16_residual(ar[4], ar[5]), pack_bf16_residual(ar[6], ar[7])};
      mma_bf16_16x8x16(c, alo, b);
    }
    if constexpr (SPLIT_A && SPLIT_B) mma_bf16_16x8x16(c, amid, bmid);
    if constexpr (SPLIT_B) mma_bf16_16x8x16(c, a, bmid);
    if constexpr (SPLIT_A) mma_bf16_16x8x16(c, amid, b);
    mma_bf16_16x8x16(c, a, b);
  } else {
    mma_bf16_16x8x16(c, a, b);
    if constexpr (SPLIT_B) {
      unsigned lo[2] = {pack_bf16_residual(bv[0], bv[1]), pack_bf16_residual(bv[2], bv[3])};
      mma_bf16_16x8x16(c, a, lo);
    }
    // With two levels amid holds A's bf16 residual (the "lo" part).
    if constexpr (SPLIT_A) mma_bf16_16x8x16(c, amid, b);
  }
}

// One warp's strip of NB 16x8 output tiles side by side: the A fragment (and its residuals) is
// read from shared memory and converted once per k-step for all NB tiles.
template <int M, int N, int K, bool ACCUMULATE, bool SPLIT_B, bool SPLIT_A, int LEVELS, int NB>
__device__ void mma_gemm_strips(float* D, int ldd, const float* A, int sam, int sak, const float* B, int sbk,
                                int sbn) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const int g = lane >> 2, q = (lane & 3) * 2;
  constexpr int STRIPS_PER_ROW = N / (8 * NB);
  for (int strip = warp; strip < (M / 16) * STRIPS_PER_ROW; strip += warps) {
    const int m0 = (strip / STRIPS_PER_ROW) * 16, n0 = (strip % STRIPS_PER_ROW) * 8 * NB;
    float c[NB][4];
#pragma unroll
    for (int j = 0; j < NB; ++j) c[j][0] = c[j][1] = c[j][2] = c[j][3] = 0.f;
    const float* a0 = A + (m0 + g) * sam;
    const float* a1 = A + (m0 + g + 8) * sam;
#pragma unroll 2
    for (int k0 = 0; k0 < K; k0 += 16) {
      const int k = k0 + q;
      // The fragment's values in mma.sync's register order: A rows g / g + 8, cols k, k + 1,
      // k + 8, k + 9; B rows k, k + 1, k + 8, k + 9.
      float av[8] = {a0[k * sak],       a0[(k + 1) * sak], a1[k * sak],       a1[(k + 1) * sak],
                     a0[(k + 8) * sak], a0[(k + 9) * sak], a1[(k + 8) * sak], a1[(k + 9) * sak]};
      unsigned a[4] = {pack_bf16(av[0], av[1]), pack_bf16(av[2], av[3]), pack_bf16(av[4], av[5]),
                       pack_bf16(av[6], av[7])};
      float ar[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) ar[i] = bf16_residual(av[i]);
      unsigned amid[4] = {pack_bf16(ar[0], ar[1]), pack_bf16(ar[2], ar[3]), pack_bf16(ar[4], ar[5]),
                          pack_bf16(ar[6], ar[7])};
#pragma unroll
      for (int j = 0; j < NB; ++j) {
        const float* b0 = B + (n0 + 8 * j + g) * sbn;
        float bv[4] = {b0[k * sbk], b0[(k + 1) * sbk], b0[(k + 8) * sbk], b0[(k + 9) * sbk]};
        mma_split_step<SPLIT_B, SPLIT_A, LEVELS>(c[j], a, amid, ar, bv);
      }
    }
#pragma unroll
    for (int j = 0; j < NB; ++j) {
      float* d0 = D + (m0 + g) * ldd + n0 + 8 * j + q;
      float* d1 = D + (m0 + g + 8) * ldd + n0 + 8 * j + q;
      if constexpr (ACCUMULATE) {
        d0[0] += c[j][0];
        d0[1] += c[j][1];
        d1[0] += c[j][2];
        d1[1] += c[j][3];
      } else {
        d0[0] = c[j][0];
        d0[1] = c[j][1];
        d1[0] = c[j][2];
        d1[1] = c[j][3];
      }
    }
  }
}

// D[m][n] (+)= sum_k A(m, k) B(k, n) for m < M, n < N, k < K, with A(m, k) = A[m * sam + k * sak]
// and B(k, n) = B[k * sbk + n * sbn] in shared memory and D row-major with leading dim ldd.
// M % 16 == 0, N % 8 == 0, K % 16 == 0. Each warp owns whole strips of 16x8 output tiles, as wide
// (up to 4 tiles) as still gives every warp a strip; call with the whole block; no barrier inside.
template <int M, int N, int K, bool ACCUMULATE, bool SPLIT_B, bool SPLIT_A = false, int LEVELS = 2>
__device__ void mma_gemm(float* D, int ldd, const float* A, int sam, int sak, const float* B, int sbk, int sbn) {
  static_assert(M % 16 == 0 && N % 8 == 0 && K % 16 == 0, "mma_gemm tile shape");
  static_assert(LEVELS == 2 || LEVELS == 3, "mma_gemm: LEVELS is 2 (hi + lo) or 3 (hi + mid + lo)");
  const int warps = blockDim.x >> 5;
  constexpr int TM = M / 16, TN = N / 8;
  if constexpr (TN % 4 == 0) {
    if (TM * (TN / 4) >= warps)
      return mma_gemm_strips<M, N, K, ACCUMULATE, SPLIT_B, SPLIT_A, LEVELS, 4>(D, ldd, A, sam, sak, B, sbk, sbn);
  }
  if constexpr (TN % 2 == 0) {
    if (TM * (TN / 2) >= warps)
      return mma_gemm_strips<M, N, K, ACCUMULATE, SPLIT_B, SPLIT_A, LEVELS, 2>(D, ldd, A, sam, sak, B, sbk, sbn);
  }
  mma_gemm_strips<M, N, K, ACCUMULATE, SPLIT_B, SPLIT_A, LEVELS, 1>(D, ldd, A, sam, sak, B, sbk, sbn);
}

// ldmatrix: eight 8x8 bf16 blocks' rows from shared memory into mma.sync fragments (lane l gives
// the address of row l % 8 of block l / 8; rows 16-byte aligned).
__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}
__device__ __forceinline__ void ldmatrix_x2(unsigned (&r)[2], const void* row) {
  const unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(a));
}

// D (+)= A B on tensor cores with bf16 operands already in shared memory: A(m, k) = A[m * lda + k]
// and B(k, n) = B[n * ldb + k] (each row of B is one output column), fragments by ldmatrix. The
// same products as mma_gemm without splits on the same (bf16-exact) values. lda, ldb: multiples
// of 8 elements; M % 16 == 0, N % 8 == 0, K % 16 == 0; whole block, no barrier inside.
template <int M, int N, int K, bool ACCUMULATE>
__device__ void mma_gemm_bf16(float* D, int ldd, const bf16* A, int lda, const bf16* B, int ldb) {
  static_assert(M % 16 == 0 && N % 8 == 0 && K % 16 == 0, "mma_gemm_bf16 tile shape");
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const int g = lane >> 2, q = (lane & 3) * 2;
  // Lane l's rows: A block l / 8 is (rows +8 when odd, columns +8 from block 2), row l % 8; B
  // block (l / 8) & 1 is columns k +8 when odd, row l % 8.
  const int aRow = (lane & 7) + ((lane >> 3) & 1) * 8, aCol = (lane >> 4) * 8;
  const int bRow = lane & 7, bCol = ((lane >> 3) & 1) * 8;
  for (int tile = warp; tile < (M / 16) * (N / 8); tile += warps) {
    const int m0 = (tile / (N / 8)) * 16, n0 = (tile % (N / 8)) * 8;
    float c[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll 2
    for (int k0 = 0; k0 < K; k0 += 16) {
      unsigned a[4], b[2];
      ldmatrix_x4(a, A + (m0 + aRow) * lda + k0 + aCol);
      ldmatrix_x2(b, B + (n0 + bRow) * ldb + k0 + bCol);
      mma_bf16_16x8x16(c, a, b);
    }
    float* d0 = D + (m0 + g) * ldd + n0 + q;
    float* d1 = D + (m0 + g + 8) * ldd + n0 + q;
    if constexpr (ACCUMULATE) {
      d0[0] += c[0];
      d0[1] += c[1];
      d1[0] += c[2];
      d1[1] += c[3];
    } else {
      d0[0] = c[0];
      d0[1] = c[1];
      d1[0] = c[2];
      d1[1] = c[3];
    }
  }
}

}  // namespace lina
