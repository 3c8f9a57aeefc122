// The small kernels the runtime launches around the two derived backward passes
// (runtime/program_backward.cc): the per-sequence row and column sums of d(final state) (.)
// final state that enter pass B's gate gradients, and column sums that reduce per-step
// partial gradients (params over tokens, adjoint states over reads). Deterministic: fixed
// reduction order, no atomics.
#pragma once

#include "lina/device/common.cuh"

// For sequence n = blockIdx.y and head h = blockIdx.x of [N, H, R, Cn] tensors:
// crow[n, h, r] = sum_c dht * S and ccol[n, h, c] = sum_r dht * S.
extern "C" __global__ void lina_state_row_col_sums(const float* dht, const float* S, float* crow, float* ccol, int H,
                                                   int R, int Cn) {
  const long long nh = static_cast<long long>(blockIdx.y) * H + blockIdx.x;
  const float* d = dht + nh * R * Cn;
  const float* s = S + nh * R * Cn;
  for (int r = threadIdx.x; r < R; r += blockDim.x) {
    float acc = 0.f;
    for (int c = 0; c < Cn; ++c) acc += d[r * Cn + c] * s[r * Cn + c];
    crow[nh * R + r] = acc;
  }
  for (int c = threadIdx.x; c < Cn; c += blockDim.x) {
    float acc = 0.f;
    for (int r = 0; r < R; ++r) acc += d[r * Cn + c] * s[r * Cn + c];
    ccol[nh * Cn + c] = acc;
  }
}

// out[j] = sum over i < rows of a[i * cols + j] (+ b[i * cols + j] when b is not null), for
// j < cols. Block (32, 8): 32 columns per block, 8 row phases summed in shared memory. The sums
// run in fp64: a param's gradient sums one term per token (and head), and an fp32 running sum
// over T terms loses ~T * 2^-24 of the result.
extern "C" __global__ void lina_sum_rows(const float* a, const float* b, float* out, long long rows, long long cols) {
  __shared__ double part[8][33];
  const long long j = static_cast<long long>(blockIdx.x) * 32 + threadIdx.x;
  double acc = 0.0;
  if (j < cols)
    for (long long i = threadIdx.y; i < rows; i += 8) {
      acc += a[i * cols + j];
      if (b) acc += b[i * cols + j];
    }
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && j < cols) {
    double s = 0.0;
    for (int y = 0; y < 8; ++y) s += part[y][threadIdx.x];
    out[j] = static_cast<float>(s);
  }
}

// out[i] = in[i] as fp32 (code 0), bf16 (1) or fp16 (2), for i < n: the blocked derived
// backward's fp32 gradient accumulators into the caller's buffers. Grid-stride.
extern "C" __global__ void lina_convert(const float* in, void* out, long long n, int code) {
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    if (code == 0) static_cast<float*>(out)[i] = in[i];
    else if (code == 1) static_cast<lina::bf16*>(out)[i] = lina::from_float<lina::bf16>(in[i]);
    else static_cast<lina::f16*>(out)[i] = lina::from_float<lina::f16>(in[i]);
  }
}
