// Module loading and launch: an emitted kernel compiled (through the kernel cache), loaded once
// per device, and launched on the grid its plan names (codegen::LaunchGrid).
#pragma once

#include <cuda.h>

#include <string>

#include "codegen/cuda/emit_cuda.h"
#include "runtime/cuda_driver.h"

namespace lina {
struct KernelParams;
}

namespace lina::runtime {

struct LoadedKernel {
  CUmodule module = nullptr;
  CUfunction function = nullptr;
};

// The kernel's module on `device`: compiled or read from the cache, loaded and configured for
// its shared memory once per (device, source), under a lock.
LoadedKernel loadKernel(int device, const codegen::EmittedKernel& kernel, const std::string& arch);

// The device's attributes, read once per device.
cuda::DeviceInfo cachedDeviceInfo(int device);

// What each grid axis counts for one launch (codegen::GridAxis).
struct GridCounts {
  int64_t heads = 1, sequences = 1, chunkSlots = 1;
};

// Launches `kernel` with `params` on `stream`, its grid sized from the kernel's LaunchGrid.
// Throws lina::Error naming the kernel, grid, block and shared memory when the launch fails.
void launchKernel(const codegen::EmittedKernel& kernel, const LoadedKernel& loaded, const GridCounts& counts,
                  KernelParams& params, CUstream stream);

}  // namespace lina::runtime
