// lina-bench: times lina's forward kernels on the GPU (CUDA events, median of repeats) and the
// NVRTC compile of each kernel cold and cached. One JSON object per line on stdout.
//
//   lina-bench --op gla --shape 4,4096,64 --dims K=128,V=128 [--dtype bf16] [--reps 20] [--backward]
//              [--strategy S] [--kernels K] [--chunk N] [--tile N] [--warps N] [--stages N]
//              [--file prog.lina: a program outside the library; --op names it in the output]
//
// --backward also times Program::backward (d<out> given, every input gradient stored, the
// workspace allocated once up front as a framework's caching allocator would) and forward +
// backward, as a training step runs them.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/cuda_driver.h"
#include "support/error.h"
#include "runtime/check/forward_check.h"
#include "runtime/kernel_cache.h"
#include "runtime/kir_backward.h"
#include "runtime/program.h"

#if LINA_HAVE_TUNING
#include "runtime/tuning/tuner.h"
#endif

namespace {

using namespace lina;

struct Buffer {
  CUdeviceptr ptr = 0;
  explicit Buffer(size_t bytes) { cuda::check(cuda::driver()->cuMemAlloc(&ptr, bytes), "cuMemAlloc"); }
  ~Buffer() { cuda::driver()->cuMemFree(ptr); }
  void* get() const { return reinterpret_cast<void*>(ptr); }
};

std::vector<int64_t> parseList(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoll(item));
  return out;
}

int run(int argc, char** argv) {
  std::string op = "gla", dtype = "bf16", strategy = "auto", kernels = "auto";
  std::vector<int64_t> shape = {4, 4096, 64};
  std::map<std::string, int64_t> dims;
  int reps = 20, chunk = 0, warps = 0, stages = 0, tile = 0;
  std::string file;  // a .lina program outside the library (--file), named by --op in the output
  bool backward = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--op") op = next();
    else if (a == "--shape") shape = parseList(next());
    else if (a == "--dtype") dtype = next();
    else if (a == "--reps") reps = std::stoi(next());
    else if (a == "--strategy") strategy = next();
    else if (a == "--kernels") kernels = next();
    else if (a == "--chunk") chunk = std::stoi(next());
    else if (a == "--warps") warps = std::stoi(next());
    else if (a == "--stages") stages = std::stoi(next());
    else if (a == "--tile") tile = std::stoi(next());
    else if (a == "--file") file = next();
    else if (a == "--backward") backward = true;
    else if (a == "--dims") {
      std::stringstream ss(next());
      std::string item;
      while (std::getline(ss, item, ',')) dims[item.substr(0, item.find('='))] = std::stoll(item.substr(item.find('=') + 1));
    } else throw Error("unknown option '" + a + "'");
  }
  if (shape.size() != 3) throw Error("--shape expects B,T,H");
  std::string why;
  if (!cuda::available(&why)) throw Error("lina-bench needs a GPU: " + why);
  cuda::useDevice(0);
  const cuda::Driver* d = cuda::driver();
  Program program = file.empty() ? Program::fromLibrary(op) : Program::fromFile(file);
  const rir::Recurrence& rec = program.recurrence();
  for (const std::string& dim : rec.dims)
    if (!dims.count(dim)) dims[dim] = 64;

  ForwardArgs args;
  args.dtype = dtype;
  args.batch = shape[0];
  args.time = shape[1];
  args.heads = shape[2];
  args.dims = dims;
  args.strategy = strategy;
  args.kernels = kernels;
  args.chunk = chunk;
  args.warps = warps;
  args.stages = stages;
  args.tile = tile;
  size_t width = dtype == "fp32" ? 4 : 2;
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<std::unique_ptr<Buffer>> buffers;
  int64_t tokens = shape[0] * shape[1] * shape[2];
  double bytesMoved = 0;
  for (const rir::Decl& in : rec.inputs) {
    int64_t n = tokens * (in.shape.empty() ? 1 : dims.at(in.shape[0]));
    std::vector<uint16_t> half(n);
    std::vector<float> full(n);
    for (int64_t i = 0; i < n; ++i) {
      float x = normal(rng);
      if (in.isGate) x = -std::log1p(std::exp(-x)) / 16.f;  // logsigmoid / 16, as fla's GLA layer
      full[i] = x;
      half[i] = dtype == "fp16" ? toFp16(x) : toBf16(x);
    }
    buffers.push_back(std::make_unique<Buffer>(n * width));
    cuda::check(d->cuMemcpyHtoD(buffers.back()->ptr, width == 4 ? static_cast<const void*>(full.data()) : half.data(), n * width),
                "cuMemcpyHtoD");
    args.inputs[in.name] = buffers.back()->get();
    bytesMoved += static_cast<double>(n * width);
  }
  for (const rir::Decl& o : rec.outputs) {
    int64_t n = tokens * (o.shape.empty() ? 1 : dims.at(o.shape[0]));
    buffers.push_back(std::make_unique<Buffer>(n * width));
    args.outputs[o.name] = buffers.back()->get();
    bytesMoved += static_cast<double>(n * width);
  }
  for (const rir::Decl& prm : rec.params) {
    if (prm.shape.empty()) continue;
    std::vector<float> v(shape[2] * dims.at(prm.shape[0]), 0.5f);
    buffers.push_back(std::make_unique<Buffer>(v.size() * 4));
    cuda::check(d->cuMemcpyHtoD(buffers.back()->ptr, v.data(), v.size() * 4), "cuMemcpyHtoD");
    args.vectorParams[prm.name] = static_cast<const float*>(buffers.back()->get());
  }

  // The split strategies' scratch states, allocated once up front as a framework's caching
  // allocator would (without it, each call allocates them stream-ordered).
  const size_t forwardWorkspace = program.forwardWorkspaceBytes(args);
  if (forwardWorkspace) {
    buffers.push_back(std::make_unique<Buffer>(forwardWorkspace));
    args.workspace = buffers.back()->get();
    args.workspaceBytes = forwardWorkspace;
  }

  // First call: NVRTC (or the disk cache) + module load + launch.
  auto wallStart = std::chrono::steady_clock::now();
  program.forward(args);
  cuda::check(d->cuCtxSynchronize(), "cuCtxSynchronize");
  double firstCallMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wallStart).count();
  runtime::CacheStats stats = runtime::KernelCache::global().stats();

  CUevent start, stop;
  cuda::check(d->cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  cuda::check(d->cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  auto median = [&](const auto& call) {
    for (int i = 0; i < 3; ++i) call();
    std::vector<float> t;
    for (int i = 0; i < reps; ++i) {
      cuda::check(d->cuEventRecord(start, nullptr), "cuEventRecord");
      call();
      cuda::check(d->cuEventRecord(stop, nullptr), "cuEventRecord");
      cuda::check(d->cuEventSynchronize(stop), "cuEventSynchronize");
      float ms = 0;
      cuda::check(d->cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
      t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t;
  };
  std::vector<float> times = median([&] { program.forward(args); });
  std::string backwardJson;
  if (backward) {
    BackwardArgs b;
    b.forward = args;
    for (const auto& [name, out] : args.outputs) b.outputGrads[name] = out;  // any values: timing only
    for (const rir::Decl& in : rec.inputs) {
      int64_t n = tokens * (in.shape.empty() ? 1 : dims.at(in.shape[0]));
      buffers.push_back(std::make_unique<Buffer>(n * width));
      b.inputGrads[in.name] = buffers.back()->get();
    }
    b.workspaceBytes = program.backwardWorkspaceBytes(b);
    buffers.push_back(std::make_unique<Buffer>(std::max<size_t>(b.workspaceBytes, 1)));
    b.workspace = buffers.back()->get();
    auto wall = std::chrono::steady_clock::now();
    program.backward(b);
    cuda::check(d->cuCtxSynchronize(), "cuCtxSynchronize");
    double firstBackwardMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - wall).count();
    std::vector<float> bwd = median([&] { program.backward(b); });
    std::vector<float> both = median([&] {
      program.forward(args);
      program.backward(b);
    });
    std::string backwardKernels;
    if (lina::runtime::kirBackwardUnsupported(program, b).empty()) {
      backwardKernels = lina::runtime::kirBackwardKernels(program, b);
    } else {
      KernelConfig ca = program.backwardPassA().chooseConfig(b.forward, cuda::deviceInfo(0).maxSharedPerBlockOptin);
      KernelConfig cb = program.backwardPassB().chooseConfig(b.forward, cuda::deviceInfo(0).maxSharedPerBlockOptin);
      backwardKernels = program.backwardPassA().emit(ca, dims, dtype).name + " + " + program.backwardPassB().emit(cb, dims, dtype).name;
    }
    char text[768];
    std::snprintf(text, sizeof text,
                  ", \"backward_median_ms\": %.4f, \"fwd_bwd_median_ms\": %.4f, \"backward_first_call_ms\": %.1f, "
                  "\"backward_kernels\": \"%s\", \"workspace_bytes\": %zu",
                  bwd[bwd.size() / 2], both[both.size() / 2], firstBackwardMs, backwardKernels.c_str(), b.workspaceBytes);
    backwardJson = text;
  }
  std::sort(times.begin(), times.end());
  cuda::DeviceInfo info = cuda::deviceInfo(0);
  KernelConfig config = program.chooseConfig(args, info.maxSharedPerBlockOptin, info.multiprocessors);
  std::string kernel = program.kernelNames(config, dims, dtype);
  std::printf(
      "{\"tool\": \"lina-bench\", \"device\": \"%s\", \"op\": \"%s\", \"B\": %lld, \"T\": %lld, \"H\": %lld, "
      "\"dims\": \"%s\", \"dtype\": \"%s\", \"kernel\": \"%s\", \"tile\": %d, \"stages\": %d, \"median_ms\": %.4f, \"min_ms\": %.4f, "
      "\"first_call_ms\": %.1f, \"nvrtc_compiles\": %d, \"nvrtc_ms\": %.1f, \"disk_hits\": %d, "
      "\"io_bytes\": %.0f, \"io_TBps\": %.3f, \"forward_workspace_bytes\": %zu%s}\n",
      info.name.c_str(), op.c_str(), static_cast<long long>(shape[0]), static_cast<long long>(shape[1]),
      static_cast<long long>(shape[2]),
      [&] {
        std::string s;
        for (auto& [k, v] : dims) s += (s.empty() ? "" : ",") + k + "=" + std::to_string(v);
        return s;
      }()
          .c_str(),
      dtype.c_str(), kernel.c_str(), config.tile, config.stages, times[times.size() / 2], times.front(), firstCallMs, stats.compiles,
      stats.compileMilliseconds, stats.diskHits, bytesMoved, bytesMoved / (times[times.size() / 2] * 1e-3) / 1e12,
      forwardWorkspace, backwardJson.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#if LINA_HAVE_TUNING
  lina::tuning::installTuneOnMiss();  // LINA_TUNE=1 tunes a shape bucket on its first launch
#endif
  try {
    return run(argc, argv);
  } catch (const lina::Error& e) {
    std::fprintf(stderr, "lina-bench: error: %s\n", e.what());
    return 2;
  }
}
