// The model runner's 16-bit float conversions (host side): bf16 and IEEE half to and from fp32,
// round to nearest even, and a checkpoint tensor as fp32.
#pragma once

#include <cstdint>
#include <vector>

#include "library/model/safetensors.h"

namespace lina::model {

float bf16ToFloat(uint16_t h);
float halfToFloat(uint16_t h);
uint16_t floatToBf16(float x);  // NaN stays NaN
uint16_t floatToHalf(float x);  // overflow to inf; values below half's normal range flush to zero
// A BF16, F16 or F32 tensor's elements as fp32.
std::vector<float> tensorToFloat(const TensorView& t);

}  // namespace lina::model
