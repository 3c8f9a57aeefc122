// The CUDA driver API, loaded at run time with dlopen so that lina's binaries start (and can
// compile with NVRTC) on machines without a GPU driver.
#pragma once

#include <cuda.h>

#include <string>

namespace lina::cuda {

struct Driver {
#define LINA_CU_FUNCTIONS(X)                                      \
  X(cuInit, "cuInit")                                             \
  X(cuGetErrorName, "cuGetErrorName")                             \
  X(cuGetErrorString, "cuGetErrorString")                         \
  X(cuDeviceGetCount, "cuDeviceGetCount")                         \
  X(cuDeviceGet, "cuDeviceGet")                                   \
  X(cuDeviceGetName, "cuDeviceGetName")                           \
  X(cuDeviceGetAttribute, "cuDeviceGetAttribute")                 \
  X(cuDriverGetVersion, "cuDriverGetVersion")                     \
  X(cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain")         \
  X(cuCtxGetCurrent, "cuCtxGetCurrent")                           \
  X(cuCtxSetCurrent, "cuCtxSetCurrent")                           \
  X(cuCtxGetDevice, "cuCtxGetDevice")                             \
  X(cuCtxSynchronize, "cuCtxSynchronize")                         \
  X(cuModuleLoadData, "cuModuleLoadData")                         \
  X(cuModuleUnload, "cuModuleUnload")                             \
  X(cuModuleGetFunction, "cuModuleGetFunction")                   \
  X(cuFuncSetAttribute, "cuFuncSetAttribute")                     \
  X(cuFuncGetAttribute, "cuFuncGetAttribute")                     \
  X(cuLaunchKernel, "cuLaunchKernel")                             \
  X(cuMemAlloc, "cuMemAlloc_v2")                                  \
  X(cuMemFree, "cuMemFree_v2")                                    \
  X(cuMemcpyHtoD, "cuMemcpyHtoD_v2")                              \
  X(cuMemcpyDtoH, "cuMemcpyDtoH_v2")                              \
  X(cuMemsetD8, "cuMemsetD8_v2")                                  \
  X(cuMemsetD8Async, "cuMemsetD8Async")                           \
  X(cuMemAllocAsync, "cuMemAllocAsync")                           \
  X(cuMemFreeAsync, "cuMemFreeAsync")                             \
  X(cuStreamSynchronize, "cuStreamSynchronize")                   \
  X(cuEventCreate, "cuEventCreate")                               \
  X(cuEventDestroy, "cuEventDestroy_v2")                          \
  X(cuEventRecord, "cuEventRecord")                               \
  X(cuStreamWaitEvent, "cuStreamWaitEvent")                       \
  X(cuCtxPushCurrent, "cuCtxPushCurrent_v2")                      \
  X(cuCtxPopCurrent, "cuCtxPopCurrent_v2")                        \
  X(cuEventSynchronize, "cuEventSynchronize")                     \
  X(cuEventElapsedTime, "cuEventElapsedTime_v2")                 \
  X(cuStreamCreate, "cuStreamCreate")                             \
  X(cuStreamDestroy, "cuStreamDestroy_v2")                        \
  X(cuStreamBeginCapture, "cuStreamBeginCapture_v2")              \
  X(cuStreamEndCapture, "cuStreamEndCapture")                     \
  X(cuGraphInstantiate, "cuGraphInstantiateWithFlags")            \
  X(cuGraphLaunch, "cuGraphLaunch")                               \
  X(cuGraphExecDestroy, "cuGraphExecDestroy")                     \
  X(cuGraphDestroy, "cuGraphDestroy")                             \
  X(cuMemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2")                    \
  X(cuMemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2")                    \
  X(cuMemGetInfo, "cuMemGetInfo_v2")
#define LINA_CU_MEMBER(fn, sym) decltype(&::fn) fn = nullptr;
  LINA_CU_FUNCTIONS(LINA_CU_MEMBER)
#undef LINA_CU_MEMBER
};

// The loaded driver, or nullptr with `why` set (no libcuda, or cuInit failed: no GPU).
const Driver* driver(std::string* why = nullptr);
// True when a CUDA device can be used.
bool available(std::string* why = nullptr);

// Throws lina::Error naming the call and the driver's error when `result` is not CUDA_SUCCESS.
void check(CUresult result, const char* call, const std::string& context = "");

// Makes the primary context of device `ordinal` current (once per thread) and returns it.
CUcontext useDevice(int ordinal = 0);

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int major = 0, minor = 0;
  int multiprocessors = 0;
  int maxSharedPerBlockOptin = 0;
  int clockMHz = 0;  // the typical SM clock
  std::string arch;  // the NVRTC target: sm_90a on Hopper, sm_80 on A100, ...
};
DeviceInfo deviceInfo(int ordinal = 0);

}  // namespace lina::cuda
