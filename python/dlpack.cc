#include "python/dlpack.h"

#include <cuda.h>
#include <pybind11/stl.h>

#include "runtime/cuda_driver.h"
#include "support/error.h"

namespace py = pybind11;

namespace lina::dlpack {
namespace {

// DLPack's C ABI (stable since 0.6; field order and sizes are the contract).
struct DLDevice {
  int32_t deviceType;  // kDLCPU = 1, kDLCUDA = 2
  int32_t deviceId;
};
struct DLDataType {
  uint8_t code;  // kDLInt = 0, kDLUInt = 1, kDLFloat = 2, kDLBfloat = 4
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // in elements; null means row-major contiguous
  uint64_t byteOffset;
};
struct DLManagedTensor {
  DLTensor tensor;
  void* managerContext;
  void (*deleter)(DLManagedTensor*);
};

constexpr int32_t kDLCUDA = 2;

std::string dtypeName(DLDataType t) {
  if (t.lanes != 1) return "a vector type";
  if (t.code == 4 && t.bits == 16) return "bf16";
  if (t.code == 2 && t.bits == 16) return "fp16";
  if (t.code == 2 && t.bits == 32) return "fp32";
  if (t.code == 2 && t.bits == 64) return "fp64";
  if (t.code == 0 && t.bits == 32) return "int32";
  if (t.code == 0 && t.bits == 64) return "int64";
  return "code " + std::to_string(t.code) + " with " + std::to_string(t.bits) + " bits";
}

DLDataType dtypeOf(const std::string& name) {
  if (name == "bf16") return {4, 16, 1};
  if (name == "fp16") return {2, 16, 1};
  if (name == "fp32") return {2, 32, 1};
  if (name == "int32") return {0, 32, 1};
  if (name == "int64") return {0, 64, 1};
  throw Error("dtype: expected bf16, fp16, fp32, int32 or int64; got '" + name + "'");
}

size_t elementBytes(const std::string& dtype) { return dtypeOf(dtype).bits / 8; }

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace

Borrowed::Borrowed(py::handle obj, const std::string& argument, int64_t stream) {
  py::object capsule;
  if (PyCapsule_CheckExact(obj.ptr())) {
    capsule = py::reinterpret_borrow<py::object>(obj);
  } else if (py::hasattr(obj, "__dlpack__")) {
    // Ask where it lives first: a stream means something only for a CUDA producer (NumPy refuses one).
    if (py::hasattr(obj, "__dlpack_device__")) {
      auto where = obj.attr("__dlpack_device__")().cast<std::pair<int, int>>();
      if (where.first != kDLCUDA)
        throw Error(argument + ": expected an array on a CUDA device (DLPack device type 2); got device type " +
                    std::to_string(where.first) + " (copy it to the GPU first)");
    }
    // The consumer's stream: 1 is the legacy default stream in the protocol (0 is not allowed).
    capsule = obj.attr("__dlpack__")(py::arg("stream") = stream == 0 ? 1 : stream);
  } else {
    throw Error(argument + ": expected an array with __dlpack__ (a torch/CuPy/JAX array on a CUDA device); got " +
                std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  if (!PyCapsule_IsValid(capsule.ptr(), "dltensor"))
    throw Error(argument + ": __dlpack__ returned no unused 'dltensor' capsule (was it consumed already?)");
  auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule.ptr(), "dltensor"));
  // Take ownership as the protocol says: rename the capsule so its destructor leaves it to us.
  PyCapsule_SetName(capsule.ptr(), "used_dltensor");
  managed_ = m;
  const DLTensor& t = m->tensor;
  shape_.assign(t.shape, t.shape + t.ndim);
  dtype_ = dtypeName(t.dtype);
  device_ = t.device.deviceId;
  if (t.device.deviceType != kDLCUDA) {
    std::string type = std::to_string(t.device.deviceType);
    release();
    throw Error(argument + ": expected an array on a CUDA device (DLPack device type 2); got device type " + type +
                " (copy it to the GPU first)");
  }
  bool empty = false;
  for (int i = 0; i < t.ndim; ++i) empty = empty || t.shape[i] == 0;
  if (t.strides && !empty) {  // an empty array has nothing to lay out (its strides are arbitrary)
    int64_t expected = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      if (t.shape[i] != 1 && t.strides[i] != expected) {
        std::string shape = shapeText(shape_);
        release();
        throw Error(argument + ": expected a row-major contiguous array; shape " + shape + " has stride " +
                    std::to_string(t.strides[i]) + " in dim " + std::to_string(i) + " where " +
                    std::to_string(expected) + " is contiguous (make a contiguous copy first)");
      }
      expected *= t.shape[i];
    }
  }
  pointer_ = reinterpret_cast<uintptr_t>(t.data) + t.byteOffset;
}

Borrowed::~Borrowed() { release(); }

void Borrowed::release() {
  auto* m = static_cast<DLManagedTensor*>(managed_);
  if (m && m->deleter) m->deleter(m);
  managed_ = nullptr;
}

namespace {
// Makes device `ordinal`'s primary context current for a scope and restores the caller's context
// after, so that lina never changes which device the caller's framework is on.
class OnDevice {
 public:
  explicit OnDevice(int ordinal) {
    cuda::driver()->cuCtxGetCurrent(&previous_);
    cuda::useDevice(ordinal);
  }
  ~OnDevice() {
    if (previous_) cuda::driver()->cuCtxSetCurrent(previous_);
  }
  OnDevice(const OnDevice&) = delete;
  OnDevice& operator=(const OnDevice&) = delete;

 private:
  CUcontext previous_ = nullptr;
};
}  // namespace

struct DeviceArray::Allocation {
  CUdeviceptr pointer = 0;
  CUevent written = nullptr;  // recorded on the stream that last wrote the array
  int device = 0;
  ~Allocation() {
    if (!pointer && !written) return;
    try {  // a destructor must not throw (a driver that is gone, a forked child)
      OnDevice scope(device);
      if (written) cuda::driver()->cuEventDestroy(written);
      if (pointer) cuda::driver()->cuMemFree(pointer);
    } catch (...) {
    }
  }
};

DeviceArray::DeviceArray(std::vector<int64_t> shape, const std::string& dtype, int device)
    : allocation_(std::make_shared<Allocation>()), shape_(std::move(shape)), dtype_(dtype), device_(device) {
  size_t bytes = elementBytes(dtype);
  for (int64_t d : shape_) {
    if (d < 0) throw Error("shape: expected sizes >= 0; got " + shapeText(shape_));
    bytes *= static_cast<size_t>(d);
  }
  std::string why;
  if (!cuda::available(&why)) throw Error("lina.DeviceArray: no GPU: " + why);
  OnDevice scope(device);
  allocation_->device = device;
  if (bytes)
    cuda::check(cuda::driver()->cuMemAlloc(&allocation_->pointer, bytes), "cuMemAlloc",
                std::to_string(bytes) + " bytes for an array " + shapeText(shape_));
}

void DeviceArray::writtenOn(uintptr_t stream) {
  OnDevice scope(device_);
  const cuda::Driver* d = cuda::driver();
  if (!allocation_->written)
    cuda::check(d->cuEventCreate(&allocation_->written, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
  cuda::check(d->cuEventRecord(allocation_->written, reinterpret_cast<CUstream>(stream)), "cuEventRecord");
}

void DeviceArray::orderBefore(uintptr_t consumerStream) const {
  if (!allocation_->written) return;
  OnDevice scope(device_);
  cuda::check(cuda::driver()->cuStreamWaitEvent(reinterpret_cast<CUstream>(consumerStream), allocation_->written, 0),
              "cuStreamWaitEvent", "ordering the consumer's stream after lina's writes");
}

uintptr_t DeviceArray::pointer() const { return static_cast<uintptr_t>(allocation_->pointer); }

namespace {
// What an exported capsule owns: a share of the allocation and the shape array DLTensor points to.
struct Export {
  DLManagedTensor managed;
  std::shared_ptr<DeviceArray::Allocation> allocation;
  std::vector<int64_t> shape;
};

void deleteExport(DLManagedTensor* m) { delete static_cast<Export*>(m->managerContext); }

void capsuleDestructor(PyObject* capsule) {
  // Only an unconsumed capsule still owns its tensor; a consumer renames it "used_dltensor".
  if (PyCapsule_IsValid(capsule, "dltensor")) {
    auto* m = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(capsule, "dltensor"));
    m->deleter(m);
  }
}
}  // namespace

py::capsule DeviceArray::dlpack() const {
  auto* e = new Export;
  e->allocation = allocation_;
  e->shape = shape_;
  DLTensor& t = e->managed.tensor;
  t.data = reinterpret_cast<void*>(allocation_->pointer);
  t.device = {kDLCUDA, device_};
  t.ndim = static_cast<int32_t>(shape_.size());
  t.dtype = dtypeOf(dtype_);
  t.shape = e->shape.data();
  t.strides = nullptr;
  t.byteOffset = 0;
  e->managed.managerContext = e;
  e->managed.deleter = deleteExport;
  return py::reinterpret_steal<py::capsule>(PyCapsule_New(&e->managed, "dltensor", capsuleDestructor));
}

void bind(py::module_& m) {
  py::class_<Borrowed>(m, "Borrowed", "An array borrowed through DLPack (lina keeps no copy).")
      .def(py::init<py::handle, const std::string&, int64_t>(), py::arg("obj"), py::arg("argument"),
           py::arg("stream") = 0)
      .def_property_readonly("pointer", &Borrowed::pointer)
      .def_property_readonly("device", &Borrowed::device)
      .def_property_readonly("dtype", &Borrowed::dtype)
      .def_property_readonly("shape", &Borrowed::shape);
  py::class_<DeviceArray>(m, "DeviceArray",
                          "A CUDA array allocated by lina; hand it to any framework with its from_dlpack().")
      .def(py::init<std::vector<int64_t>, const std::string&, int>(), py::arg("shape"), py::arg("dtype"),
           py::arg("device") = 0)
      .def_property_readonly("pointer", &DeviceArray::pointer)
      .def_property_readonly("device", &DeviceArray::device)
      .def_property_readonly("dtype", &DeviceArray::dtype)
      .def_property_readonly("shape", &DeviceArray::shape)
      .def(
          "written_on", [](DeviceArray& a, uintptr_t stream) { a.writtenOn(stream); }, py::arg("stream"),
          "Records that work queued on `stream` (a CUDA stream handle) writes this array; a consumer's "
          "__dlpack__(stream=...) then waits for it.")
      .def(
          "__dlpack__",
          [](const DeviceArray& a, py::object stream, py::object maxVersion, py::object dlDevice, py::object copy) {
            (void)maxVersion;  // the legacy (unversioned) capsule, which every consumer accepts
            if (!copy.is_none() && copy.cast<bool>())
              throw py::buffer_error(
                  "lina.DeviceArray.__dlpack__: copy=True is not supported; it exports its own memory (copy after "
                  "import)");
            if (!dlDevice.is_none()) {
              auto want = dlDevice.cast<std::pair<int, int>>();
              if (want.first != kDLCUDA || want.second != a.device())
                throw py::buffer_error("lina.DeviceArray.__dlpack__: dl_device (" + std::to_string(want.first) +
                                       ", " + std::to_string(want.second) + ") requested; the array is on (2, " +
                                       std::to_string(a.device()) + ")");
            }
            // The protocol's consumer stream: None means the legacy default stream (1), 2 the
            // per-thread default stream, -1 no ordering; 0 is not allowed for CUDA.
            int64_t s = stream.is_none() ? 1 : stream.cast<int64_t>();
            if (s == 0)
              throw py::value_error(
                  "lina.DeviceArray.__dlpack__: stream=0 is ambiguous for CUDA; pass 1 (legacy default), 2 "
                  "(per-thread default) or a stream handle");
            if (s != -1) a.orderBefore(static_cast<uintptr_t>(s));  // 1 and 2 are the driver's own handles
            return a.dlpack();
          },
          py::kw_only(), py::arg("stream") = py::none(), py::arg("max_version") = py::none(),
          py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack_device__", [](const DeviceArray& a) { return py::make_tuple(kDLCUDA, a.device()); });
}

}  // namespace lina::dlpack
