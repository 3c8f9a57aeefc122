// Program::backward: the derived backward on the GPU. Pass A (forward time) and pass B
// (reversed time, docs/backward-design.md) are ordinary derived programs launched through
// Program::forward with a TensorLayout: pass B walks each sequence from its end, so nothing is
// flipped in memory; the per-read intermediates between the passes stay fp32; pass B adds its
// input gradients to pass A's in the caller's buffers. Glue kernels (gradient_glue.cuh) make
// the d(final state) row/column sums and reduce per-step param gradients. Everything is queued
// on the caller's stream; nothing synchronizes the host.
#include <algorithm>
#include <mutex>
#include <set>
#include <sstream>

#include "codegen/device/lina/device/params.h"
#include "compiler/cir/lower.h"
#include "compiler/passes/derive_backward.h"
#include "runtime/cuda_driver.h"
#include "runtime/backward_plan.h"
#include "runtime/kernel_cache.h"
#include "runtime/kir_backward.h"
#include "runtime/program.h"
#include "support/error.h"

namespace lina {

const Program::DerivedBackward& Program::derivedBackward() const {
  std::call_once(backward_->once, [&] {
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<passes::DerivedBackward> d = passes::deriveBackward(*rir_, diags);
    if (!d) {
      std::ostringstream os;
      diags.print(os);
      throw Error("@" + name_ + " backward: the backward cannot be derived: " + os.str());
    }
    DerivedBackward derived{fromRecurrence(d->passA), fromRecurrence(d->passB), "", {}, {}, d->signature,
                            d->initialHolder, d->gateSums};
    std::string separable = cir::tileableDim(*rir_);
    bool everyState = !separable.empty();
    for (const rir::Decl& st : rir_->states)
      everyState = everyState && (st.shape[0] == separable || st.shape[1] == separable);
    if (everyState) {
      derived.blockDim = separable;
      derived.blockedA = derived.passA;
      derived.blockedB = derived.passB;
      derived.blockedA.tiledDimOverride_ = separable;
      derived.blockedB.tiledDimOverride_ = separable;
      derived.blockedA.emitted_ = std::make_shared<EmittedCache>();  // their own launches
      derived.blockedB.emitted_ = std::make_shared<EmittedCache>();
    }
    backward_->derived = std::make_shared<const DerivedBackward>(std::move(derived));
  });
  return *backward_->derived;
}

const Program& Program::backwardPassA() const { return derivedBackward().passA; }
const Program& Program::backwardPassB() const { return derivedBackward().passB; }

namespace {

bool declares(const std::vector<rir::Decl>& decls, const std::string& name) {
  return std::any_of(decls.begin(), decls.end(), [&](const rir::Decl& d) { return d.name == name; });
}

struct GlueKernels {
  CUfunction rowColSums = nullptr, sumRows = nullptr, convert = nullptr;
};

// The glue module of a device, compiled (or read from the cache) and loaded once.
GlueKernels glueKernels(int device) {
  static std::mutex mutex;
  static std::map<int, GlueKernels> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(device);
  if (it != loaded.end()) return it->second;
  const std::string arch = cuda::deviceInfo(device).arch;
  const std::string source = "// lina: kernels around the derived backward passes\n#include \"lina/device/gradient_glue.cuh\"\n";
  std::vector<char> cubin = runtime::KernelCache::global().cubin(source, "lina_gradient_glue.cu", arch);
  const cuda::Driver* d = cuda::driver();
  CUmodule module = nullptr;
  cuda::check(d->cuModuleLoadData(&module, cubin.data()), "cuModuleLoadData", "lina_gradient_glue");
  GlueKernels k;
  cuda::check(d->cuModuleGetFunction(&k.rowColSums, module, "lina_state_row_col_sums"), "cuModuleGetFunction",
              "lina_state_row_col_sums");
  cuda::check(d->cuModuleGetFunction(&k.sumRows, module, "lina_sum_rows"), "cuModuleGetFunction", "lina_sum_rows");
  cuda::check(d->cuModuleGetFunction(&k.convert, module, "lina_convert"), "cuModuleGetFunction", "lina_convert");
  loaded[device] = k;
  return k;
}

}  // namespace

size_t Program::backwardWorkspaceBytes(const BackwardArgs& args) const {
  if (runtime::kirBackwardUnsupported(*this, args).empty()) return runtime::kirBackwardWorkspaceBytes(*this, args);
  return runtime::planBackward(*rir_, derivedBackward(), args, nullptr).workspace.bytes;
}

std::pair<const Program*, const Program*> Program::backwardPassesFor(const BackwardArgs& args) const {
  runtime::BackwardPlan plan = runtime::planBackward(*rir_, derivedBackward(), args, nullptr);
  return {plan.programA, plan.programB};
}

std::pair<ForwardArgs, ForwardArgs> Program::backwardPassArgs(const BackwardArgs& args) const {
  runtime::BackwardPlan plan = runtime::planBackward(*rir_, derivedBackward(), args, nullptr);
  return {plan.passA, plan.passB};
}

std::pair<std::vector<codegen::EmittedKernel>, std::vector<codegen::EmittedKernel>> Program::backwardKernelsFor(
    const BackwardArgs& args, int64_t sharedMemoryBytes, int multiprocessors) const {
  runtime::BackwardPlan plan = runtime::planBackward(*rir_, derivedBackward(), args, nullptr);
  return {plan.programA->kernelsFor(plan.passA, sharedMemoryBytes, multiprocessors),
          plan.programB->kernelsFor(plan.passB, sharedMemoryBytes, multiprocessors)};
}

void Program::backward(const BackwardArgs& args, int device) const {
  const rir::Recurrence& f = *rir_;
  const ForwardArgs& fw = args.forward;
  auto fail = [&](const std::string& message) { throw Error("@" + name_ + " backward: " + message); };
  auto checkNames = [&](const auto& map, const std::vector<rir::Decl>& decls, const char* what, const char* field) {
    for (const auto& [name, pointer] : map) {
      (void)pointer;
      if (!declares(decls, name))
        fail(std::string(field) + ": '" + name + "' is not " + what + " of @" + name_ + "; remove it");
    }
  };
  checkNames(args.outputGrads, f.outputs, "an output", "outputGrads");
  checkNames(args.finalStateGrads, f.states, "a state", "finalStateGrads");
  checkNames(args.finalStates, f.states, "a state", "finalStates");
  checkNames(args.inputGrads, f.inputs, "an input", "inputGrads");
  checkNames(args.initialStateGrads, f.states, "a state", "initialStateGrads");
  checkNames(args.paramGrads, f.params, "a param", "paramGrads");
  for (const auto& [name, pointer] : args.paramGrads)
    if (!pointer) fail("paramGrads: '" + name + "' is null; pass a device buffer or leave it out");
  if (fw.strategy == "split")
    fail("strategy: the backward passes run fused or recurrent kernels; got 'split' (pass auto, fused or recurrent)");
  for (const rir::Decl& in : f.inputs)
    if (!fw.inputs.count(in.name) || !fw.inputs.at(in.name))
      fail("input '" + in.name + "' is missing from BackwardArgs::forward; pass the forward's inputs");
  for (const std::string& d : f.dims)
    if (!fw.dims.count(d) || fw.dims.at(d) < 1) fail("dim '" + d + "' needs a size >= 1 in BackwardArgs::forward.dims");
  if (fw.batch < 1 || fw.time < 0 || fw.heads < 1)
    fail("shape (B, T, H) = (" + std::to_string(fw.batch) + ", " + std::to_string(fw.time) + ", " +
         std::to_string(fw.heads) + ") is invalid; expected B >= 1, T >= 0, H >= 1");

  // The register-tile backward where it applies (runtime/kir_backward.h), else the derived passes.
  const std::string registerTiles = runtime::kirBackwardUnsupported(*this, args);
  if (registerTiles.empty()) return runtime::kirBackward(*this, args, device);
  if (fw.kernels == "register") fail("kernels register: no register-tile backward: " + registerTiles + " (pass kernels auto or simt)");

  const DerivedBackward& derived = derivedBackward();
  // With the caller's workspace one plan both sizes and places the buffers; without one, the
  // sizing plan comes first and the placed plan after the allocation.
  runtime::BackwardPlan plan = runtime::planBackward(f, derived, args, static_cast<char*>(args.workspace));
  const size_t bytes = plan.workspace.bytes;
  if (args.workspace && args.workspaceBytes < bytes)
    fail("workspace: expected at least " + std::to_string(bytes) + " bytes (backwardWorkspaceBytes); got " +
         std::to_string(args.workspaceBytes));
  const int64_t N = fw.cuSeqlens ? fw.numSequences : fw.batch;
  cuda::useDevice(device);
  const cuda::Driver* d = cuda::driver();
  CUstream stream = fw.stream;
  if (N == 0) {
    // No sequence, no token: the param gradients (the only non-empty outputs) are zero.
    for (const auto& [name, out] : args.paramGrads) {
      const rir::Decl* p = f.param(name);
      size_t width = p->shape.empty() ? 1 : static_cast<size_t>(fw.heads * fw.dims.at(p->shape[0]));
      cuda::check(d->cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(out), 0, width * sizeof(float), stream),
                  "cuMemsetD8Async", "paramGrads '" + name + "'");
    }
    return;
  }
  CUdeviceptr owned = 0;
  if (!args.workspace && bytes > 0) {
    cuda::check(d->cuMemAllocAsync(&owned, bytes, stream), "cuMemAllocAsync",
                "the backward's workspace of " + std::to_string(bytes) + " bytes");
    plan = runtime::planBackward(f, derived, args, reinterpret_cast<char*>(owned));
  }
  try {
    for (const runtime::Clear& c : plan.clears)
      if (c.bytes > 0)
        cuda::check(d->cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(c.pointer), 0, c.bytes, stream), "cuMemsetD8Async");
    auto rethrow = [&](const char* what, const Error& e) { fail(std::string(what) + ": " + e.what()); };
    if (plan.recompute) {
      try {
        forward(plan.recomputeArgs, device);
      } catch (const Error& e) {
        rethrow("recomputing the final states", e);
      }
    }
    GlueKernels glue;
    if (!plan.stateSums.empty() || !plan.reductions.empty() || !plan.conversions.empty()) glue = glueKernels(device);
    auto launch = [&](const runtime::GlueLaunch& g) {
      if (g.kind == runtime::GlueLaunch::RowColSums) {
        int R = static_cast<int>(g.rows), C = static_cast<int>(g.cols), H = g.heads;
        void* params[] = {const_cast<float**>(&g.a), const_cast<float**>(&g.b), const_cast<float**>(&g.out),
                          const_cast<float**>(&g.out2), &H, &R, &C};
        cuda::check(d->cuLaunchKernel(glue.rowColSums, static_cast<unsigned>(H), static_cast<unsigned>(g.sequences), 1,
                                      128, 1, 1, 0, stream, params, nullptr),
                    "cuLaunchKernel", "lina_state_row_col_sums");
      } else if (g.kind == runtime::GlueLaunch::Convert) {
        long long count = g.rows;
        int code = g.dtypeCode;
        void* params[] = {const_cast<float**>(&g.a), const_cast<void**>(&g.converted), &count, &code};
        unsigned blocks = static_cast<unsigned>(std::min<long long>((count + 255) / 256, 65535));
        if (blocks > 0)
          cuda::check(d->cuLaunchKernel(glue.convert, blocks, 1, 1, 256, 1, 1, 0, stream, params, nullptr),
                      "cuLaunchKernel", "lina_convert");
      } else {
        long long rows = g.rows, cols = g.cols;
        void* params[] = {const_cast<float**>(&g.a), const_cast<float**>(&g.b), const_cast<float**>(&g.out), &rows,
                          &cols};
        unsigned blocks = static_cast<unsigned>((cols + 31) / 32);
        if (blocks > 0)
          cuda::check(d->cuLaunchKernel(glue.sumRows, blocks, 1, 1, 32, 8, 1, 0, stream, params, nullptr),
                      "cuLaunchKernel", "lina_sum_rows");
      }
    };
    for (const runtime::GlueLaunch& g : plan.stateSums) launch(g);
    for (int block = 0; block < plan.blocks; ++block) {  // each block of derived.blockDim in turn
      plan.passA.tileIndex = block;
      plan.passB.tileIndex = block;
      try {
        plan.programA->forward(plan.passA, device);
      } catch (const Error& e) {
        rethrow("pass A", e);
      }
      try {
        plan.programB->forward(plan.passB, device);
      } catch (const Error& e) {
        rethrow("pass B", e);
      }
    }
    for (const runtime::GlueLaunch& g : plan.reductions) launch(g);
    for (const runtime::GlueLaunch& g : plan.conversions) launch(g);
  } catch (...) {
    if (owned) (void)d->cuMemFreeAsync(owned, stream);
    throw;
  }
  if (owned) cuda::check(d->cuMemFreeAsync(owned, stream), "cuMemFreeAsync");
}

}  // namespace lina
