#include "runtime/forward_check.h"

#include <cmath>
#include <cstring>

#include "runtime/cuda_driver.h"
#include "runtime/error.h"

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

bool CheckReport::passed() const {
  for (const CheckEntry& e : entries)
    if (!e.finite || (e.maxAbs > 1e-6 && e.ratio > tolerance)) return false;  // fla's rule: abs <= 1e-6 passes
  return true;
}

namespace {

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

// Rounds a tensor to `dtype` in place (so the reference sees exactly what the kernel sees) and
// returns its bytes in that dtype.
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

}  // namespace

CheckReport checkForward(const Program& program, const CheckOptions& o) {
  return checkForwardConfigs(program, o, {}).front();
}

std::vector<CheckReport> checkForwardConfigs(const Program& program, const CheckOptions& o,
                                             const std::vector<KernelConfig>& configList) {
  std::string why;
  if (!cuda::available(&why)) throw Error("check needs a GPU: " + why);
  cuda::useDevice(o.device);
  const rir::Recurrence& rec = program.recurrence();
  reference::Problem problem = reference::makeRandomProblem(rec, o.shape, o.seed);
  const cuda::Driver* d = cuda::driver();

  ForwardArgs args;
  args.dtype = o.dtype;
  args.batch = problem.batch;
  args.time = problem.time;
  args.heads = problem.heads;
  args.dims = problem.dims;
  args.strategy = o.strategy;
  args.chunk = o.chunk;
  args.tile = o.tile;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers;
  auto upload = [&](const void* host, size_t bytes) {
    buffers.push_back(std::make_unique<DeviceBuffer>(bytes));
    if (bytes) cuda::check(d->cuMemcpyHtoD(buffers.back()->ptr, host, bytes), "cuMemcpyHtoD");
    return buffers.back()->get();
  };
  for (auto& [name, t] : problem.inputs) {
    std::vector<char> bytes = encode(t, o.dtype);
    args.inputs[name] = upload(bytes.data(), bytes.size());
  }
  for (auto& [name, t] : problem.initialStates) {
    std::vector<float> f = toFloats(t);
    args.initialStates[name] = static_cast<const float*>(upload(f.data(), f.size() * 4));
  }
  for (auto& [name, t] : problem.vectorParams) {
    std::vector<float> f = toFloats(t);
    args.vectorParams[name] = static_cast<const float*>(upload(f.data(), f.size() * 4));
  }
  std::vector<int64_t> cu = problem.cuSeqlens;
  if (!cu.empty()) {
    args.cuSeqlens = upload(cu.data(), cu.size() * 8);
    args.cuSeqlens64 = true;
    args.numSequences = static_cast<int64_t>(cu.size()) - 1;
  }
  std::string error;
  std::optional<reference::Result> ref = reference::run(rec, problem, error);
  if (!ref) throw Error("reference: " + error);
  cuda::DeviceInfo info = cuda::deviceInfo(o.device);
  std::vector<KernelConfig> configs = configList;
  if (configs.empty()) configs.push_back(program.chooseConfig(args, info.maxSharedPerBlockOptin));
  size_t width = o.dtype == "fp32" ? 4 : 2;
  std::vector<CheckReport> reports;
  for (const KernelConfig& config : configs) {
    // Outputs and final states are poisoned (0xff bytes: NaN) so an unwritten element shows.
    std::vector<std::unique_ptr<DeviceBuffer>> results;
    std::map<std::string, DeviceBuffer*> outBuffers, stateBuffers;
    ForwardArgs run = args;
    run.strategy = config.strategy == cir::Strategy::Recurrent ? "recurrent" : "fused";
    run.chunk = config.chunk;
    run.tile = config.tile;
    for (auto& [name, t] : ref->outputs) {
      results.push_back(std::make_unique<DeviceBuffer>(t.data.size() * width));
      if (results.back()->bytes) cuda::check(d->cuMemsetD8(results.back()->ptr, 0xff, results.back()->bytes), "cuMemsetD8");
      run.outputs[name] = results.back()->get();
      outBuffers[name] = results.back().get();
    }
    for (auto& [name, t] : ref->finalStates) {
      results.push_back(std::make_unique<DeviceBuffer>(t.data.size() * 4));
      auto initial = problem.initialStates.find(name);
      if (o.inPlace && initial != problem.initialStates.end()) {
        // The kernel reads the initial state from and writes the final state to this buffer.
        std::vector<float> f(initial->second.data.begin(), initial->second.data.end());
        if (!f.empty()) cuda::check(d->cuMemcpyHtoD(results.back()->ptr, f.data(), f.size() * 4), "cuMemcpyHtoD");
        run.initialStates[name] = static_cast<const float*>(results.back()->get());
      } else if (results.back()->bytes) {
        cuda::check(d->cuMemsetD8(results.back()->ptr, 0xff, results.back()->bytes), "cuMemsetD8");
      }
      run.finalStates[name] = static_cast<float*>(results.back()->get());
      stateBuffers[name] = results.back().get();
    }
    program.forward(run, o.device);
    cuda::check(d->cuCtxSynchronize(), "cuCtxSynchronize", "after the forward kernel");
    CheckReport report;
    report.kernel = program.emit(config, args.dims, args.dtype).name + " tile=" + std::to_string(config.tile);
    report.tolerance = o.dtype == "fp32" ? 1e-5 : 5e-3;
    for (auto& [name, t] : ref->outputs) {
      std::vector<char> bytes(outBuffers[name]->bytes);
      if (!bytes.empty()) cuda::check(d->cuMemcpyDtoH(bytes.data(), outBuffers[name]->ptr, bytes.size()), "cuMemcpyDtoH");
      report.entries.push_back(compare(name, t, decode(bytes, o.dtype)));
    }
    for (auto& [name, t] : ref->finalStates) {
      std::vector<char> bytes(stateBuffers[name]->bytes);
      if (!bytes.empty()) cuda::check(d->cuMemcpyDtoH(bytes.data(), stateBuffers[name]->ptr, bytes.size()), "cuMemcpyDtoH");
      report.entries.push_back(compare("state " + name, t, decode(bytes, "fp32")));
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

}  // namespace lina
