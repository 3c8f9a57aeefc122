#include "runtime/cuda_driver.h"

#include <dlfcn.h>

#include <mutex>

#include "support/error.h"

namespace lina::cuda {

namespace {

struct Loaded {
  Driver driver;
  bool ok = false;
  std::string why;
};

const Loaded& load() {
  static const Loaded loaded = [] {
    Loaded l;
    void* handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!handle) handle = dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      l.why = "no CUDA driver (libcuda.so.1 could not be loaded)";
      return l;
    }
#define LINA_CU_LOAD(fn, sym)                                                          \
  l.driver.fn = reinterpret_cast<decltype(l.driver.fn)>(dlsym(handle, sym));           \
  if (!l.driver.fn) {                                                                  \
    l.why = std::string("the CUDA driver lacks ") + sym + " (driver too old for CUDA 12+?)"; \
    return l;                                                                          \
  }
    LINA_CU_FUNCTIONS(LINA_CU_LOAD)
#undef LINA_CU_LOAD
    CUresult r = l.driver.cuInit(0);
    if (r != CUDA_SUCCESS) {
      const char* name = "?";
      l.driver.cuGetErrorName(r, &name);
      l.why = std::string("cuInit failed: ") + name + " (no usable GPU)";
      return l;
    }
    int count = 0;
    if (l.driver.cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) {
      l.why = "the CUDA driver reports no device";
      return l;
    }
    l.ok = true;
    return l;
  }();
  return loaded;
}

}  // namespace

const Driver* driver(std::string* why) {
  const Loaded& l = load();
  if (!l.ok && why) *why = l.why;
  return l.ok ? &l.driver : nullptr;
}

bool available(std::string* why) { return driver(why) != nullptr; }

void check(CUresult result, const char* call, const std::string& context) {
  if (result == CUDA_SUCCESS) return;
  const Driver* d = driver();
  const char* name = "?";
  const char* text = "";
  if (d) {
    d->cuGetErrorName(result, &name);
    d->cuGetErrorString(result, &text);
  }
  throw Error(std::string(call) + " failed: " + name + " (" + text + ")" + (context.empty() ? "" : "; " + context));
}

CUcontext useDevice(int ordinal) {
  std::string why;
  const Driver* d = driver(&why);
  if (!d) throw Error("no GPU: " + why);
  CUcontext current = nullptr;
  check(d->cuCtxGetCurrent(&current), "cuCtxGetCurrent");
  if (current) {
    CUdevice dev;
    check(d->cuCtxGetDevice(&dev), "cuCtxGetDevice");
    if (dev == ordinal) return current;
  }
  CUdevice dev;
  check(d->cuDeviceGet(&dev, ordinal), "cuDeviceGet", "device " + std::to_string(ordinal));
  CUcontext ctx;
  check(d->cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain");
  check(d->cuCtxSetCurrent(ctx), "cuCtxSetCurrent");
  return ctx;
}

DeviceInfo deviceInfo(int ordinal) {
  useDevice(ordinal);
  const Driver* d = driver();
  CUdevice dev;
  check(d->cuDeviceGet(&dev, ordinal), "cuDeviceGet");
  DeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {};
  check(d->cuDeviceGetName(name, sizeof name, dev), "cuDeviceGetName");
  info.name = name;
  check(d->cuDeviceGetAttribute(&info.major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "cuDeviceGetAttribute");
  check(d->cuDeviceGetAttribute(&info.minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "cuDeviceGetAttribute");
  check(d->cuDeviceGetAttribute(&info.multiprocessors, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev), "cuDeviceGetAttribute");
  check(d->cuDeviceGetAttribute(&info.maxSharedPerBlockOptin, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN, dev),
        "cuDeviceGetAttribute");
  int clockKHz = 0;
  if (d->cuDeviceGetAttribute(&clockKHz, CU_DEVICE_ATTRIBUTE_CLOCK_RATE, dev) == CUDA_SUCCESS) info.clockMHz = clockKHz / 1000;
  info.arch = "sm_" + std::to_string(info.major) + std::to_string(info.minor) + (info.major == 9 ? "a" : "");
  return info;
}

}  // namespace lina::cuda
