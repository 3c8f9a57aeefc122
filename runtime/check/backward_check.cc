#include "runtime/check/backward_check.h"

#include <algorithm>
#include <cmath>

#include "compiler/reference/backward.h"
#include "runtime/check/check_support.h"
#include "runtime/kir_backward.h"
#include "support/error.h"

namespace lina {

using check::compare;
using check::decode;
using check::DeviceBuffer;
using check::encode;
using check::toFloats;

std::vector<KernelConfig> backwardConfigs(const Program& program, const std::map<std::string, int64_t>& dims,
                                          const std::string& dtype, int64_t sharedMemoryBytes) {
  // The passes' candidates under the layouts backward() launches them with.
  BackwardArgs shape;
  shape.forward.dims = dims;
  shape.forward.dtype = dtype;
  shape.forward.time = 1;
  auto [layoutA, layoutB] = program.backwardPassArgs(shape);
  auto [passA, passB] = program.backwardPassesFor(shape);
  // Blocked passes run at the plan's tile: list every tile, keep that one.
  const bool blocked = layoutA.layout.oneTilePerLaunch;
  std::vector<KernelConfig> a = passA->candidateConfigs(dims, dtype, sharedMemoryBytes, blocked, layoutA.layout);
  std::vector<KernelConfig> b = passB->candidateConfigs(dims, dtype, sharedMemoryBytes, blocked, layoutB.layout);
  std::vector<KernelConfig> both;
  for (const KernelConfig& x : a)
    for (const KernelConfig& y : b)
      // The passes run fused or recurrent: the split strategy is a forward one (chooseConfig).
      if (x.strategy == y.strategy && x.chunk == y.chunk && x.strategy != cir::Strategy::Split &&
          (!blocked || (x.tile == layoutA.tile && y.tile == layoutA.tile)))
        both.push_back(x);
  // The register-tile backward (runtime/kir_backward.h), where it covers these dims and dtype.
  BackwardArgs full = shape;
  static float token;  // the gradients a training step asks for; nothing is launched here
  for (const rir::Decl& in : program.recurrence().inputs) full.inputGrads[in.name] = &token;
  if (runtime::kirBackwardUnsupported(program, full).empty()) {
    KernelConfig k;
    k.registerTiles = true;
    both.push_back(k);
  }
  return both;
}

CheckReport checkBackward(const Program& program, const BackwardCheckOptions& o) {
  return checkBackwardConfigs(program, o, {}).front();
}

std::vector<CheckReport> checkBackwardConfigs(const Program& program, const BackwardCheckOptions& options,
                                              const std::vector<KernelConfig>& configList) {
  const CheckOptions& o = options.check;
  std::string why;
  if (!cuda::available(&why)) throw Error("check needs a GPU: " + why);
  cuda::useDevice(o.device);
  const cuda::Driver* d = cuda::driver();
  const rir::Recurrence& rec = program.recurrence();
  reference::Problem problem = reference::makeRandomProblem(rec, o.shape, o.seed);

  check::DeviceBuffers device;
  ForwardArgs args = check::uploadProblem(problem, o.dtype, device);
  args.kernels = o.kernels;  // auto | register | simt, as the caller asks

  std::string error;
  std::optional<reference::Result> forward = reference::run(rec, problem, error);
  if (!forward) throw Error("reference: " + error);
  reference::Cotangents ct = reference::randomCotangents(*forward, o.seed + 1);
  BackwardArgs base;
  for (auto& [name, t] : ct.outputs) {
    std::vector<char> bytes = encode(t, o.dtype);  // the GPU sees d<out> in the dtype; so does the reference
    base.outputGrads[name] = device.upload(bytes.data(), bytes.size());
  }
  for (auto& [name, t] : ct.finalStates) {
    std::vector<float> f = toFloats(t);
    base.finalStateGrads[name] = static_cast<const float*>(device.upload(f.data(), f.size() * 4));
  }
  std::optional<reference::Gradients> ref = reference::runBackward(rec, problem, ct, error);
  if (!ref) throw Error("reference backward: " + error);

  if (options.saveFinalStates) {
    // The forward on the GPU, as a training step runs it: its final states are the saved tensors.
    ForwardArgs f = args;
    for (auto& [name, t] : forward->outputs)
      f.outputs[name] = device.poisoned(t.data.size() * (o.dtype == "fp32" ? 4 : 2))->get();
    for (auto& [name, t] : forward->finalStates) {
      float* s = static_cast<float*>(device.poisoned(t.data.size() * 4)->get());
      f.finalStates[name] = s;
      base.finalStates[name] = s;
    }
    program.forward(f, o.device);
  }

  cuda::DeviceInfo info = cuda::deviceInfo(o.device);
  std::vector<KernelConfig> configs = configList;
  bool chosen = configs.empty();
  if (chosen) configs.push_back(KernelConfig{});
  const size_t width = o.dtype == "fp32" ? 4 : 2;
  std::vector<CheckReport> reports;
  for (const KernelConfig& config : configs) {
    BackwardArgs run = base;
    run.forward = args;
    if (!chosen && config.registerTiles) {
      run.forward.kernels = "register";
    } else if (!chosen) {
      run.forward.strategy = config.strategy == cir::Strategy::Recurrent ? "recurrent" : "fused";
      run.forward.chunk = config.chunk;
      run.forward.kernels = "simt";  // the derived passes at this (strategy, chunk)
    }
    // Every gradient buffer is poisoned (NaN bytes) so that an element nobody wrote shows.
    std::map<std::string, DeviceBuffer*> inputGrads, stateGrads, paramGrads;
    for (auto& [name, t] : ref->inputs) {
      inputGrads[name] = device.poisoned(t.data.size() * width);
      run.inputGrads[name] = inputGrads[name]->get();
    }
    for (auto& [name, t] : ref->initialStates) {
      stateGrads[name] = device.poisoned(t.data.size() * 4);
      run.initialStateGrads[name] = static_cast<float*>(stateGrads[name]->get());
    }
    for (auto& [name, t] : ref->vectorParams) {
      paramGrads[name] = device.poisoned(t.data.size() * 4);
      run.paramGrads[name] = static_cast<float*>(paramGrads[name]->get());
    }
    for (auto& [name, v] : ref->scalarParams) {
      (void)v;
      paramGrads[name] = device.poisoned(4);
      run.paramGrads[name] = static_cast<float*>(paramGrads[name]->get());
    }
    auto [passA, passB] = program.backwardPassesFor(run);
    program.backward(run, o.device);
    cuda::check(d->cuCtxSynchronize(), "cuCtxSynchronize", "after the backward kernels");

    CheckReport report;
    auto [launchA, launchB] = program.backwardPassArgs(run);
    const bool registerTiles = runtime::kirBackwardUnsupported(program, run).empty();
    if (registerTiles) {
      report.kernel = runtime::kirBackwardKernels(program, run);
    } else if (chosen) {
      KernelConfig a = passA->chooseConfig(launchA, info.maxSharedPerBlockOptin);
      KernelConfig b = passB->chooseConfig(launchB, info.maxSharedPerBlockOptin);
      report.kernel = passA->emitKernels(a, args.dims, args.dtype, launchA.layout).front().name + " + " +
                      passB->emitKernels(b, args.dims, args.dtype, launchB.layout).front().name;
    } else {
      report.kernel = passA->kernel(config.strategy, config.chunk).name + " + " + passB->kernel(config.strategy, config.chunk).name;
    }
    if (!registerTiles && passA != &program.backwardPassA())
      report.kernel += " (" + std::to_string(launchA.tile) + "-wide blocks)";
    report.tolerance = o.dtype == "fp32" ? 1e-5 : 5e-3;
    auto fetch = [&](DeviceBuffer* b, const std::string& dtype) {
      std::vector<char> bytes(b->bytes);
      if (!bytes.empty()) cuda::check(d->cuMemcpyDtoH(bytes.data(), b->ptr, bytes.size()), "cuMemcpyDtoH");
      return decode(bytes, dtype);
    };
    for (auto& [name, t] : ref->inputs) report.entries.push_back(compare("d" + name, t, fetch(inputGrads[name], o.dtype)));
    for (auto& [name, t] : ref->initialStates)
      report.entries.push_back(compare("d(initial " + name + ")", t, fetch(stateGrads[name], "fp32")));
    for (auto& [name, t] : ref->vectorParams)
      report.entries.push_back(compare("d" + name, t, fetch(paramGrads[name], "fp32")));
    // A scalar param's gradient is one sum over every token and head. Its error is measured
    // against the sum of the terms' magnitudes: when the terms cancel, no fp32 evaluation of
    // them has relative accuracy left to give, and the plain ratio would measure the cancellation.
    for (auto& [name, v] : ref->scalarParams) {
      CheckEntry e;
      e.name = "d" + name + " (vs sum |terms|)";
      double got = fetch(paramGrads[name], "fp32").at(0);
      e.finite = std::isfinite(got);
      e.maxAbs = std::abs(got - v);
      e.ratio = e.maxAbs / std::max({std::abs(v), ref->scalarParamMagnitudes.at(name), 1e-300});
      report.entries.push_back(e);
    }
    reports.push_back(std::move(report));
  }
  return reports;
}

}  // namespace lina
