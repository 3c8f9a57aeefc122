#include "runtime/module_loader.h"

#include <map>
#include <mutex>

#include "codegen/device/lina/device/params.h"
#include "runtime/kernel_cache.h"
#include "support/error.h"

namespace lina::runtime {

LoadedKernel loadKernel(int device, const codegen::EmittedKernel& kernel, const std::string& arch) {
  static std::mutex mutex;
  static std::map<std::pair<int, std::string>, LoadedKernel> loaded;
  std::string key = KernelCache::global().key(kernel.source, arch);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find({device, key});
  if (it != loaded.end()) return it->second;
  std::vector<char> cubin = KernelCache::global().cubin(kernel.source, kernel.name + ".cu", arch);
  const cuda::Driver* d = cuda::driver();
  LoadedKernel k;
  cuda::check(d->cuModuleLoadData(&k.module, cubin.data()), "cuModuleLoadData", "kernel " + kernel.name);
  cuda::check(d->cuModuleGetFunction(&k.function, k.module, kernel.name.c_str()), "cuModuleGetFunction", kernel.name);
  if (kernel.smem.totalBytes > 48 * 1024)
    cuda::check(d->cuFuncSetAttribute(k.function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                      static_cast<int>(kernel.smem.totalBytes)),
                "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", kernel.name);
  loaded[{device, key}] = k;
  return k;
}

cuda::DeviceInfo cachedDeviceInfo(int device) {
  static std::mutex mutex;
  static std::map<int, cuda::DeviceInfo> infos;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = infos.find(device);
  if (it == infos.end()) it = infos.emplace(device, cuda::deviceInfo(device)).first;
  return it->second;
}

namespace {

unsigned axisSize(codegen::GridAxis axis, const codegen::EmittedKernel& kernel, const GridCounts& counts) {
  switch (axis) {
    case codegen::GridAxis::Tiles: return static_cast<unsigned>(kernel.tiles);
    case codegen::GridAxis::Heads: return static_cast<unsigned>(counts.heads);
    case codegen::GridAxis::Sequences: return static_cast<unsigned>(counts.sequences);
    case codegen::GridAxis::ChunkSlots: return static_cast<unsigned>(counts.chunkSlots);
    case codegen::GridAxis::OneTile: return 1;
  }
  return 1;
}

}  // namespace

void launchKernel(const codegen::EmittedKernel& kernel, const LoadedKernel& loaded, const GridCounts& counts,
                  KernelParams& params, CUstream stream) {
  const unsigned x = axisSize(kernel.grid.x, kernel, counts), y = axisSize(kernel.grid.y, kernel, counts),
                 z = axisSize(kernel.grid.z, kernel, counts);
  void* kernelArgs[] = {&params};
  cuda::check(cuda::driver()->cuLaunchKernel(loaded.function, x, y, z, static_cast<unsigned>(kernel.threads), 1, 1,
                                             static_cast<unsigned>(kernel.smem.totalBytes), stream, kernelArgs, nullptr),
              "cuLaunchKernel",
              "kernel " + kernel.name + ", grid (" + std::to_string(x) + ", " + std::to_string(y) + ", " +
                  std::to_string(z) + ") [" + kernel.grid.text() + "], block " + std::to_string(kernel.threads) +
                  ", shared memory " + std::to_string(kernel.smem.totalBytes) + " bytes");
}

}  // namespace lina::runtime
