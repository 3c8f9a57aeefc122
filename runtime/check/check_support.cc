#include "runtime/check/check_support.h"

#include <cmath>
#include <cstring>

#include "compiler/reference/random_problem.h"

namespace lina {

uint16_t toBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
float fromBf16(uint16_t x) {
  uint32_t u = static_cast<uint32_t>(x) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t toFp16(float x) {
  _Float16 h = static_cast<_Float16>(x);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}
float fromFp16(uint16_t x) {
  _Float16 h;
  std::memcpy(&h, &x, 2);
  return static_cast<float>(h);
}


namespace check {

std::vector<char> encode(reference::Tensor& t, const std::string& dtype) {
  size_t n = t.data.size();
  std::vector<char> bytes;
  if (dtype == "fp32") {
    bytes.resize(n * 4);
    for (size_t i = 0; i < n; ++i) {
      float f = static_cast<float>(t.data[i]);
      t.data[i] = f;
      std::memcpy(bytes.data() + i * 4, &f, 4);
    }
  } else {
    bytes.resize(n * 2);
    for (size_t i = 0; i < n; ++i) {
      uint16_t b = dtype == "bf16" ? toBf16(static_cast<float>(t.data[i])) : toFp16(static_cast<float>(t.data[i]));
      t.data[i] = dtype == "bf16" ? fromBf16(b) : fromFp16(b);
      std::memcpy(bytes.data() + i * 2, &b, 2);
    }
  }
  return bytes;
}

std::vector<double> decode(const std::vector<char>& bytes, const std::string& dtype) {
  size_t width = dtype == "fp32" ? 4 : 2;
  std::vector<double> out(bytes.size() / width);
  for (size_t i = 0; i < out.size(); ++i) {
    if (dtype == "fp32") {
      float f;
      std::memcpy(&f, bytes.data() + i * 4, 4);
      out[i] = f;
    } else {
      uint16_t b;
      std::memcpy(&b, bytes.data() + i * 2, 2);
      out[i] = dtype == "bf16" ? fromBf16(b) : fromFp16(b);
    }
  }
  return out;
}

std::vector<float> toFloats(reference::Tensor& t) {
  std::vector<float> f(t.data.size());
  for (size_t i = 0; i < f.size(); ++i) {
    f[i] = static_cast<float>(t.data[i]);
    t.data[i] = f[i];
  }
  return f;
}

CheckEntry compare(const std::string& name, const reference::Tensor& ref, const std::vector<double>& got) {
  CheckEntry e;
  e.name = name;
  reference::Tensor g;
  g.shape = ref.shape;
  g.data = got;
  for (double x : got) e.finite = e.finite && std::isfinite(x);
  for (size_t i = 0; i < got.size() && i < ref.data.size(); ++i) e.maxAbs = std::max(e.maxAbs, std::abs(got[i] - ref.data[i]));
  e.ratio = reference::rmsErrorRatio(ref, g);
  return e;
}

void* DeviceBuffers::upload(const void* host, size_t bytes) {
  owned.push_back(std::make_unique<DeviceBuffer>(bytes));
  if (bytes) cuda::check(cuda::driver()->cuMemcpyHtoD(owned.back()->ptr, host, bytes), "cuMemcpyHtoD");
  return owned.back()->get();
}

DeviceBuffer* DeviceBuffers::poisoned(size_t bytes) {
  owned.push_back(std::make_unique<DeviceBuffer>(bytes));
  if (bytes) cuda::check(cuda::driver()->cuMemsetD8(owned.back()->ptr, 0xff, bytes), "cuMemsetD8");
  return owned.back().get();
}

ForwardArgs uploadProblem(reference::Problem& problem, const std::string& dtype, DeviceBuffers& buffers) {
  ForwardArgs args;
  args.dtype = dtype;
  args.batch = problem.batch;
  args.time = problem.time;
  args.heads = problem.heads;
  args.dims = problem.dims;
  for (auto& [name, t] : problem.inputs) {
    std::vector<char> bytes = encode(t, dtype);
    args.inputs[name] = buffers.upload(bytes.data(), bytes.size());
  }
  for (auto& [name, t] : problem.initialStates) {
    std::vector<float> f = toFloats(t);
    args.initialStates[name] = static_cast<const float*>(buffers.upload(f.data(), f.size() * 4));
  }
  for (auto& [name, t] : problem.vectorParams) {
    std::vector<float> f = toFloats(t);
    args.vectorParams[name] = static_cast<const float*>(buffers.upload(f.data(), f.size() * 4));
  }
  const std::vector<int64_t>& cu = problem.cuSeqlens;
  if (!cu.empty()) {
    args.cuSeqlens = buffers.upload(cu.data(), cu.size() * 8);
    args.cuSeqlens64 = true;
    args.numSequences = static_cast<int64_t>(cu.size()) - 1;
  }
  return args;
}

}  // namespace check
}  // namespace lina
