// lina::Program: a compiled recurrence and its forward kernels, on raw device pointers. A thin
// handle: kernels come from the pipeline (compiler/pipeline), the configuration from
// config_choice, the parameter block from launch_args, loading and launch from module_loader,
// the backward's launches from backward_plan.
//
//   lina::Program gla = lina::Program::fromLibrary("gla");
//   lina::ForwardArgs a;  a.batch = 4; a.time = 4096; a.heads = 64; a.dims = {{"K", 128}, {"V", 128}};
//   a.inputs = {{"q", q}, {"k", k}, {"v", v}, {"g", g}};  a.outputs = {{"o", o}};
//   gla.forward(a);       // launches on a.stream; no host synchronization
#pragma once

#include <cuda.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "codegen/cuda/emit_cuda.h"
#include "compiler/cir/ir.h"
#include "compiler/pipeline/pipeline.h"
#include "compiler/rir/ir.h"
#include "runtime/config_choice.h"
#include "runtime/cuda_driver.h"
#include "runtime/launch_args.h"
#include "runtime/module_loader.h"

namespace lina {

class Program {
 public:
  // Throws lina::Error carrying the rendered diagnostics when the source has errors.
  static Program fromSource(const std::string& name, const std::string& source);
  static Program fromFile(const std::string& path);
  static Program fromLibrary(const std::string& name);
  // A program already in RIR (e.g. a derived backward pass); it is verified first.
  // `sourceName` names the .lina file in the kernels' #line directives (empty: none).
  static Program fromRecurrence(const rir::Recurrence& recurrence, const std::string& sourceName = "");

  const rir::Recurrence& recurrence() const { return *rir_; }

  // The configurations the tuner may choose from for these dims and dtype, on a device with
  // `sharedMemoryBytes` of opt-in shared memory per block.
  // `requireWholeTile` keeps every tile size that fits (the whole dim included), not only the largest.
  // `layout` sizes the kernels as they will be launched (fp32 tensors stage twice the bytes).
  std::vector<KernelConfig> candidateConfigs(const std::map<std::string, int64_t>& dims, const std::string& dtype,
                                             int64_t sharedMemoryBytes, bool requireWholeTile = false,
                                             const cir::TensorLayout& layout = {}) const;
  // The CIR kernel of a strategy, chunk size and block size; `phase` picks one of the split
  // strategy's two kernels (States or Outputs) and is Whole for the others.
  cir::Kernel kernel(cir::Strategy strategy, int chunk, int warps = 16, cir::Phase phase = cir::Phase::Whole) const;
  // The kernels of a configuration in launch order: one, or the split strategy's two.
  std::vector<codegen::EmittedKernel> emitKernels(const KernelConfig& config, const std::map<std::string, int64_t>& dims,
                                                  const std::string& dtype, const cir::TensorLayout& layout = {}) const;
  // The one kernel of a fused or recurrent configuration (a split one is an error).
  codegen::EmittedKernel emit(const KernelConfig& config, const std::map<std::string, int64_t>& dims,
                              const std::string& dtype, const cir::TensorLayout& layout = {}) const;
  // The kernel names of a configuration, joined by " + ".
  std::string kernelNames(const KernelConfig& config, const std::map<std::string, int64_t>& dims,
                          const std::string& dtype) const;

  // The pipeline request forward(args) makes on a device with `sharedMemoryBytes` of opt-in shared
  // memory per block and `multiprocessors` SMs: chooseConfig, then the program's tiling and layout.
  KernelRequest requestFor(const ForwardArgs& args, int64_t sharedMemoryBytes, int multiprocessors = 0) const;
  // Why a launch of `args` cannot take the register-tile kernel (KIR), or empty when it can.
  std::string registerTilesUnsupported(const ForwardArgs& args) const;
  // The kernels forward(args) launches there, in launch order, from the pipeline (no GPU needed):
  // what `linac --emit=cuda` prints.
  std::vector<codegen::EmittedKernel> kernelsFor(const ForwardArgs& args, int64_t sharedMemoryBytes,
                                                 int multiprocessors = 0) const;
  // The kernels of backward(args)'s pass A and pass B, by the same path (backwardPassesFor,
  // backwardPassArgs, kernelsFor): what `linac --backward --emit=cuda` prints.
  std::pair<std::vector<codegen::EmittedKernel>, std::vector<codegen::EmittedKernel>> backwardKernelsFor(
      const BackwardArgs& args, int64_t sharedMemoryBytes, int multiprocessors = 0) const;

  // Validates the arguments and launches the forward on args.stream. Throws lina::Error naming
  // the argument, the expected and the actual value on bad input.
  void forward(const ForwardArgs& args, int device = 0) const;
  // The workspace forward(args) needs: the split strategy's snapshots, else 0.
  size_t forwardWorkspaceBytes(const ForwardArgs& args, int device = 0) const;

  // The derived backward (runtime/program_backward.cc): pass A, pass B and the glue kernels, on
  // args.forward.stream with no host synchronization. Throws lina::Error on bad input.
  void backward(const BackwardArgs& args, int device = 0) const;
  size_t backwardWorkspaceBytes(const BackwardArgs& args) const;
  // The launches of pass A and pass B that backward(args) makes (workspace pointers left null):
  // what `linac --backward --emit=cuda` shows and what CI compiles.
  std::pair<ForwardArgs, ForwardArgs> backwardPassArgs(const BackwardArgs& args) const;
  // The two derived passes as programs (derived once, on first use).
  const Program& backwardPassA() const;
  const Program& backwardPassB() const;
  // The pass programs backward(args) launches: the ones above, or their blocked variants when a
  // state is too wide for one CTA (K or V above 128: one launch per 64-wide block).
  std::pair<const Program*, const Program*> backwardPassesFor(const BackwardArgs& args) const;
  // True when a state passed as both initial and final state (updated in place) is shared by
  // the tiles of a split dim, so the kernel must run as one tile.
  bool updatesInPlaceAcrossTiles(const ForwardArgs& args) const;
  // The chunk size the runtime prefers for this program (see chooseConfig).
  int preferredChunk() const;
  // The configuration forward() would launch on a device with `sharedMemoryBytes` of opt-in
  // shared memory per block and `multiprocessors` SMs (0: never choose split automatically),
  // with the caller's warps and stages applied.
  KernelConfig chooseConfig(const ForwardArgs& args, int64_t sharedMemoryBytes, int multiprocessors = 0) const;
  // Bytes of snapshots the split strategy stores for `args` at chunk size `chunk`.
  size_t splitSnapshotBytes(const ForwardArgs& args, int chunk) const;

 private:
  std::string name_;
  std::string sourceName_;
  // The dim the kernels cut across CTAs: cir::tileableDim of the program, unless set. The
  // derived backward sets it on its blocked passes (a separable dim of the forward that the
  // passes contract; each block is run as its own launch, see TensorLayout::oneTilePerLaunch).
  std::string tiledDimOverride_;
  std::string tiledDim() const;
  std::shared_ptr<const rir::Recurrence> rir_;
  // What config choice and the pipeline need to know of this program.
  ProgramView view() const;
  using LoadedKernel = runtime::LoadedKernel;

  // The kernels forward(args) launches, in order, emitted and loaded once per request.
  std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>> launchesFor(const ForwardArgs& args, int device,
                                                                           const cuda::DeviceInfo& info) const;
  // forward(args) for the register-tile split's three kernels (runtime/program.cc).
  void segmentedForward(const ForwardArgs& args, KernelParams& params,
                        const std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>>& kernels,
                        runtime::GridCounts counts) const;
  void twoPhaseForward(const ForwardArgs& args, KernelParams& params,
                        const std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>>& kernels,
                        runtime::GridCounts counts) const;

 private:
  // Per request (device, dtype, strategy, chunk, tile, warps, dims, ...): the emitted kernel and
  // its loaded function.
  struct EmittedCache {
    std::mutex mutex;
    std::map<std::string, std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>>> launches;
    // The tuning database's answer per (device, dtype, shape bucket), looked up once.
    std::map<std::string, std::optional<KernelConfig>> tuned;
  };
  std::shared_ptr<EmittedCache> emitted_;

 public:
  struct DerivedBackward;  // the two passes (runtime/program_backward.cc)

 private:
  struct BackwardCache {
    std::once_flag once;
    std::shared_ptr<const DerivedBackward> derived;
  };
  std::shared_ptr<BackwardCache> backward_ = std::make_shared<BackwardCache>();
  const DerivedBackward& derivedBackward() const;
};

}  // namespace lina
