// Tensor-core block GEMM on fp32 shared-memory operands: mma.sync m16n8k16 with bf16 inputs and
// fp32 accumulation (sm_80+). Operands are rounded to bf16 while the fragments are built, so the
// chunk buffers stay fp32; SPLIT_B adds a second product with B's rounding residual (B = hi + lo
// in bf16), which keeps an fp32 operand such as the carried state near fp32 precision; SPLIT_A
// does the same for A (with both: hi.hi + hi.lo + lo.hi, error ~2^-16 relative).
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

// D[m][n] (+)= sum_k A(m, k) B(k, n) for m < M, n < N, k < K, with A(m, k) = A[m * sam + k * sak]
// and B(k, n) = B[k * sbk + n * sbn] in shared memory and D row-major with leading dim ldd.
// M % 16 == 0, N % 8 == 0, K % 16 == 0. Each warp owns whole 16x8 output tiles; call with the
// whole block; no barrier inside.
template <int M, int N, int K, bool ACCUMULATE, bool SPLIT_B, bool SPLIT_A = false>
__device__ void mma_gemm(float* D, int ldd, const float* A, int sam, int sak, const float* B, int sbk, int sbn) {
  static_assert(M % 16 == 0 && N % 8 == 0 && K % 16 == 0, "mma_gemm tile shape");
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const int g = lane >> 2, q = (lane & 3) * 2;
  constexpr int TN = N / 8;
  for (int tile = warp; tile < (M / 16) * TN; tile += warps) {
    const int m0 = (tile / TN) * 16, n0 = (tile % TN) * 8;
    float c[4] = {0.f, 0.f, 0.f, 0.f};
    const float* a0 = A + (m0 + g) * sam;
    const float* a1 = A + (m0 + g + 8) * sam;
    const float* b0 = B + (n0 + g) * sbn;
#pragma unroll 4
    for (int k0 = 0; k0 < K; k0 += 16) {
      const int k = k0 + q;
      unsigned a[4] = {pack_bf16(a0[k * sak], a0[(k + 1) * sak]), pack_bf16(a1[k * sak], a1[(k + 1) * sak]),
                       pack_bf16(a0[(k + 8) * sak], a0[(k + 9) * sak]), pack_bf16(a1[(k + 8) * sak], a1[(k + 9) * sak])};
      const float bk0 = b0[k * sbk], bk1 = b0[(k + 1) * sbk], bk8 = b0[(k + 8) * sbk], bk9 = b0[(k + 9) * sbk];
      unsigned b[2] = {pack_bf16(bk0, bk1), pack_bf16(bk8, bk9)};
      mma_bf16_16x8x16(c, a, b);
      if constexpr (SPLIT_B) {
        unsigned lo[2] = {pack_bf16_residual(bk0, bk1), pack_bf16_residual(bk8, bk9)};
        mma_bf16_16x8x16(c, a, lo);
      }
      if constexpr (SPLIT_A) {
        unsigned alo[4] = {pack_bf16_residual(a0[k * sak], a0[(k + 1) * sak]),
                           pack_bf16_residual(a1[k * sak], a1[(k + 1) * sak]),
                           pack_bf16_residual(a0[(k + 8) * sak], a0[(k + 9) * sak]),
                           pack_bf16_residual(a1[(k + 8) * sak], a1[(k + 9) * sak])};
        mma_bf16_16x8x16(c, alo, b);
      }
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
