#include "library/model/float_convert.h"

#include <cstring>

#include "support/error.h"

namespace lina::model {

float bf16ToFloat(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float halfToFloat(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal
      int e = -1;
      uint32_t m = mant;
      while (!(m & 0x400)) m <<= 1, --e;
      u = sign | (static_cast<uint32_t>(127 - 15 + 1 + e) << 23) | ((m & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t floatToBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

uint16_t floatToHalf(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint32_t sign = (u >> 16) & 0x8000;
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00);
  const int32_t exp = static_cast<int32_t>((u >> 23) & 0xff) - 127 + 15;
  const uint32_t mant = u & 0x7fffff;
  if (exp <= 0) return static_cast<uint16_t>(sign);
  if (exp >= 31) return static_cast<uint16_t>(sign | 0x7c00);
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;  // a carry into the exponent is still right
  return static_cast<uint16_t>(h);
}

std::vector<float> tensorToFloat(const TensorView& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  const char* p = static_cast<const char*>(t.data);
  for (size_t i = 0; i < out.size(); ++i) {
    if (t.dtype == DType::F32) {
      std::memcpy(&out[i], p + 4 * i, 4);
    } else if (t.dtype == DType::BF16 || t.dtype == DType::F16) {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      out[i] = t.dtype == DType::BF16 ? bf16ToFloat(h) : halfToFloat(h);
    } else {
      throw Error("tensor '" + t.name + "': expected BF16, F16 or F32; got " + dtypeName(t.dtype));
    }
  }
  return out;
}

}  // namespace lina::model
