// DLPack for lina._lina: borrowing any array that speaks `__dlpack__` (PyTorch, CuPy, JAX, ...)
// as a device pointer, and exporting lina's own device allocations through `__dlpack__`, so
// tensors go in and out without torch. The struct layouts are DLPack's stable C ABI
// (dlpack.h, version 0.8+: DLDevice, DLDataType, DLTensor, DLManagedTensor).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lina::dlpack {

// A borrowed array: the producer's memory, valid while the producer keeps it (the caller's
// object). The DLPack capsule's deleter runs when this is destroyed.
class Borrowed {
 public:
  // Calls obj.__dlpack__(stream=...) (or takes a "dltensor" capsule) and checks it: a CUDA
  // array, row-major contiguous, bf16/fp16/fp32/int32/int64. `argument` names it in errors.
  Borrowed(pybind11::handle obj, const std::string& argument, int64_t stream);
  ~Borrowed();
  Borrowed(const Borrowed&) = delete;
  Borrowed& operator=(const Borrowed&) = delete;

  uintptr_t pointer() const { return pointer_; }
  int device() const { return device_; }
  const std::string& dtype() const { return dtype_; }  // bf16, fp16, fp32, int32, int64
  const std::vector<int64_t>& shape() const { return shape_; }

 private:
  void release();
  void* managed_ = nullptr;  // DLManagedTensor*
  uintptr_t pointer_ = 0;
  int device_ = 0;
  std::string dtype_;
  std::vector<int64_t> shape_;
};

// A device allocation owned by lina and shared with whoever imports it through __dlpack__;
// freed when the last holder lets go.
class DeviceArray {
 public:
  DeviceArray(std::vector<int64_t> shape, const std::string& dtype, int device);
  uintptr_t pointer() const;
  int device() const { return device_; }
  const std::string& dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  // The capsule of the DLPack protocol (ordering with the consumer's stream is orderBefore's).
  pybind11::capsule dlpack() const;
  // Records an event on `stream` after the work that writes this array.
  void writtenOn(uintptr_t stream);
  // Makes `consumerStream` wait for that event (nothing when the array was never written by lina).
  void orderBefore(uintptr_t consumerStream) const;

  struct Allocation;

 private:
  std::shared_ptr<Allocation> allocation_;
  std::vector<int64_t> shape_;
  std::string dtype_;
  int device_ = 0;
};

// Binds Borrowed and DeviceArray into the module.
void bind(pybind11::module_& m);

}  // namespace lina::dlpack
