// What checkForward and checkBackward share: device buffers, conversions between the
// reference's doubles and the kernels' element types, and the per-tensor error entry.
#pragma once

#include <cuda.h>

#include <memory>
#include <string>
#include <vector>

#include "compiler/reference/interpreter.h"
#include "runtime/cuda_driver.h"
#include "runtime/check/forward_check.h"
#include "runtime/program.h"

namespace lina::check {

// A device buffer freed on scope exit.
struct DeviceBuffer {
  CUdeviceptr ptr = 0;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) {
    if (n) cuda::check(cuda::driver()->cuMemAlloc(&ptr, n), "cuMemAlloc", std::to_string(n) + " bytes");
  }
  ~DeviceBuffer() {
    if (ptr) cuda::driver()->cuMemFree(ptr);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return reinterpret_cast<void*>(ptr); }
};

// Device buffers for one check, owned together.
struct DeviceBuffers {
  std::vector<std::unique_ptr<DeviceBuffer>> owned;
  // A copy of `bytes` host bytes.
  void* upload(const void* host, size_t bytes);
  // A buffer filled with 0xff bytes (NaN), so that an element nobody writes shows.
  DeviceBuffer* poisoned(size_t bytes);
};

// Rounds the problem's inputs to `dtype` and its states and vector params to fp32, in place (so
// the reference sees exactly what the kernels see), uploads them and cu_seqlens, and returns
// forward arguments with their pointers and shapes.
ForwardArgs uploadProblem(reference::Problem& problem, const std::string& dtype, DeviceBuffers& buffers);

// Rounds a tensor to `dtype` in place (so the reference sees exactly what the kernel sees) and
// returns its bytes in that dtype.
std::vector<char> encode(reference::Tensor& t, const std::string& dtype);
std::vector<double> decode(const std::vector<char>& bytes, const std::string& dtype);
// Rounds a tensor to fp32 in place and returns the floats.
std::vector<float> toFloats(reference::Tensor& t);
// The error entry of `got` against `ref`.
CheckEntry compare(const std::string& name, const reference::Tensor& ref, const std::vector<double>& got);

}  // namespace lina::check
