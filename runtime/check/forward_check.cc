#include "runtime/check/forward_check.h"

#include <cmath>
#include <cstring>

#include "runtime/check/check_support.h"
#include "runtime/cuda_driver.h"
#include "support/error.h"

namespace lina {

using check::DeviceBuffer;
using check::compare;
using check::decode;
using check::encode;
using check::toFloats;

bool CheckReport::passed() const {
  for (const CheckEntry& e : entries)
    if (!e.finite || (e.maxAbs > 1e-6 && e.ratio > tolerance)) return false;  // fla's rule: abs <= 1e-6 passes
  return true;
}

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

  check::DeviceBuffers inputs;
  ForwardArgs args = check::uploadProblem(problem, o.dtype, inputs);
  args.strategy = o.strategy;
  args.kernels = o.kernels;
  args.chunk = o.chunk;
  args.tile = o.tile;
  std::string error;
  std::optional<reference::Result> ref = reference::run(rec, problem, error);
  if (!ref) throw Error("reference: " + error);
  cuda::DeviceInfo info = cuda::deviceInfo(o.device);
  std::vector<KernelConfig> configs = configList;
  if (configs.empty()) configs.push_back(program.chooseConfig(args, info.maxSharedPerBlockOptin, info.multiprocessors));
  size_t width = o.dtype == "fp32" ? 4 : 2;
  std::vector<CheckReport> reports;
  for (const KernelConfig& config : configs) {
    // Outputs and final states are poisoned (0xff bytes: NaN) so an unwritten element shows.
    std::vector<std::unique_ptr<DeviceBuffer>> results;
    std::map<std::string, DeviceBuffer*> outBuffers, stateBuffers;
    ForwardArgs run = args;
    run.strategy = cir::strategyName(config.strategy);
    run.chunk = config.chunk;
    run.tile = config.tile;
    run.kernels = config.registerTiles ? "register" : "simt";
    if (o.exactConfigs) run.config = config;
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
    const size_t index = reports.size();
    if (index < o.afterLaunch.size() && o.afterLaunch[index]) o.afterLaunch[index](run);
    cuda::check(d->cuCtxSynchronize(), "cuCtxSynchronize", "after the forward kernel");
    CheckReport report;
    report.kernel = program.kernelNames(config, args.dims, args.dtype) + " tile=" + std::to_string(config.tile);
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
