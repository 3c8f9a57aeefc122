// lina::Program: a compiled recurrence and its forward kernels, on raw device pointers.
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
#include "compiler/rir/ir.h"
#include "runtime/cuda_driver.h"

namespace lina {

struct ForwardArgs {
  std::string dtype = "bf16";  // of inputs and outputs: bf16 | fp16 | fp32
  int64_t batch = 1, time = 0, heads = 1;
  std::map<std::string, int64_t> dims;
  std::map<std::string, const void*> inputs;        // [B, T, H(, d)] contiguous
  std::map<std::string, void*> outputs;             // [B, T, H(, d)] contiguous
  std::map<std::string, const float*> initialStates;  // [N, H, rows, cols] fp32 (absent: zeros)
  std::map<std::string, float*> finalStates;          // [N, H, rows, cols] fp32 (absent: not written);
                                                      // may be the initial state's buffer (in place)
  std::map<std::string, double> scalarParams;         // overrides of scalar params
  std::map<std::string, const float*> vectorParams;   // [H, d] fp32
  int tileIndex = 0;  // with layout.oneTilePerLaunch: the tile of the tiled dim this launch computes
  const void* cuSeqlens = nullptr;  // [N + 1] on the device; then batch must be 1
  bool cuSeqlens64 = false;
  int64_t numSequences = 0;         // N with cu_seqlens
  CUstream stream = nullptr;
  // "auto", "fused", "split" or "recurrent"; chunk 0 picks the largest program chunk that fits.
  std::string strategy = "auto";
  int chunk = 0;
  int tile = 0;   // 0: choose
  int warps = 0;  // warps per CTA; 0: the default (16)
  int stages = 0;  // 1: load each chunk when it starts; 2: prefetch the next one (cp.async); 0: choose
  // How per-step tensors are addressed and stored (see cir::TensorLayout). A forward leaves the
  // default; Program::backward sets it for the derived passes.
  cir::TensorLayout layout;
  // The derived backward's anchor snapshots by state (layout.snapshotNames()): [slots, H, rows,
  // cols] fp32, slots = tokens / kAnchorSpacing + N + 1.
  std::map<std::string, float*> snapshotBuffers;
  // Scratch memory on the device for the split strategy's chunk snapshots, at least
  // forwardWorkspaceBytes(args); null: allocated and freed on `stream` (stream-ordered).
  void* workspace = nullptr;
  size_t workspaceBytes = 0;
};

// The gradients of L = sum(d<out> (.) <out>) + sum(dht (.) final state) with respect to every
// input, initial state and param, for the forward run with `forward`.
//
// Saved tensors: backward needs what the forward read (inputs, initial states, params,
// cu_seqlens: `forward` as it was passed) and, for each state whose final-state gradient is
// given, the final state the forward wrote (`finalStates`); a state missing there is recomputed
// by one more forward launch, unless the state's gate gradients are anchored (pass A's
// snapshots then hold it). Nothing else is saved: the backward passes recompute the chunk
// states and gate cumsums on chip.
struct BackwardArgs {
  ForwardArgs forward;  // outputs and finalStates are ignored; strategy/chunk/warps apply to both passes;
                        // tile: the width of the blocks when K or V exceeds 128 (0: 64)
  std::map<std::string, const void*> outputGrads;        // d<out>, like the output (absent: zero)
  std::map<std::string, const float*> finalStateGrads;   // dht [N, H, rows, cols] fp32 (absent: zero)
  std::map<std::string, const float*> finalStates;       // the forward's final states (see above)
  std::map<std::string, void*> inputGrads;               // d<input>, like the input (absent: not stored)
  std::map<std::string, float*> initialStateGrads;       // dh0 [N, H, rows, cols] fp32 (absent: not stored)
  std::map<std::string, float*> paramGrads;              // vector: [H, d] fp32; scalar: one fp32 (absent: not stored)
  // Scratch memory on the device, at least backwardWorkspaceBytes(args); null: allocated and freed
  // on args.forward.stream (stream-ordered, no host synchronization).
  void* workspace = nullptr;
  size_t workspaceBytes = 0;
};

// A kernel configuration the runtime may launch.
struct KernelConfig {
  cir::Strategy strategy = cir::Strategy::Fused;
  int chunk = 64;
  int tile = 0;
  int warps = 16;
  int stages = 1;  // 2: the next chunk's inputs are prefetched with cp.async (when that fits)
};

class Program {
 public:
  // Throws lina::Error carrying the rendered diagnostics when the source has errors.
  static Program fromSource(const std::string& name, const std::string& source);
  static Program fromFile(const std::string& path);
  static Program fromLibrary(const std::string& name);
  // A program already in RIR (e.g. a derived backward pass); it is verified first.
  static Program fromRecurrence(const rir::Recurrence& recurrence);

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
  static bool prefersRecurrent(const ForwardArgs& args);

 public:
  struct LoadedKernel {
    CUmodule module = nullptr;
    CUfunction function = nullptr;
  };

 private:
  // The kernels forward(args) launches, in order, emitted and loaded once per request.
  std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>> launchesFor(const ForwardArgs& args, int device,
                                                                           const cuda::DeviceInfo& info) const;

 private:
  // Per request (device, dtype, strategy, chunk, tile, warps, dims, ...): the emitted kernel and
  // its loaded function.
  struct EmittedCache {
    std::mutex mutex;
    std::map<std::string, std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>>> launches;
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
