// Basic device types and helpers. No CUDA headers: everything here compiles under NVRTC with
// no include path (types and conversions are spelled out, special functions use builtins).
#pragma once

#include "lina/device/params.h"

namespace lina {

struct bf16 {
  unsigned short bits;
};
struct f16 {
  unsigned short bits;
};

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __uint_as_float(static_cast<unsigned>(x.bits) << 16); }
__device__ __forceinline__ float to_float(f16 x) {
  float f;
  asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x.bits));
  return f;
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) { return x; }
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) {
  unsigned u = __float_as_uint(x);
  bf16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    r.bits = 0x7fc0;  // NaN stays NaN
  } else {
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    r.bits = static_cast<unsigned short>(u >> 16);
  }
  return r;
}
template <>
__device__ __forceinline__ f16 from_float<f16>(float x) {
  f16 r;
  asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
  return r;
}

constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ float warp_sum(float x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// The first token and the length of sequence n: packed varlen (cu_seqlens) or [B, T] rows.
__device__ __forceinline__ void sequence_bounds(const KernelParams& p, int n, long long& bos, long long& len) {
  if (p.cuSeqlens) {
    if (p.cuSeqlens64) {
      const long long* cu = static_cast<const long long*>(p.cuSeqlens);
      bos = cu[n];
      len = cu[n + 1] - cu[n];
    } else {
      const int* cu = static_cast<const int*>(p.cuSeqlens);
      bos = cu[n];
      len = static_cast<long long>(cu[n + 1]) - cu[n];
    }
  } else {
    bos = static_cast<long long>(n) * p.time;
    len = p.time;
  }
}

// The split strategy numbers the chunks of sequence n from slot bos_n / C + n: consecutive
// sequences never share a slot (bos_{n+1} / C + n + 1 >= bos_n / C + ceil(len_n / C) + n), the
// slots number at most ceil(total tokens / C) + N, and the host needs no lengths to size them.
// For the CTA of `slot`: its sequence n, that sequence's bounds and the chunk's first step c0;
// false when the slot is past the end of its sequence (a spare slot).
__device__ __forceinline__ bool chunk_of_slot(const KernelParams& p, int C, long long slot, int& n, long long& bos,
                                              long long& len, long long& c0) {
  int lo = 0, hi = p.numSequences - 1;  // the last sequence whose first slot is <= slot
  while (lo < hi) {
    int mid = lo + (hi - lo + 1) / 2;
    long long b, l;
    sequence_bounds(p, mid, b, l);
    if (b / C + mid <= slot) lo = mid;
    else hi = mid - 1;
  }
  n = lo;
  sequence_bounds(p, n, bos, len);
  c0 = (slot - (bos / C + n)) * C;
  return c0 < len;
}

}  // namespace lina
