// The arguments of lina::Program's launches: ForwardArgs, BackwardArgs and the kernel
// configuration the runtime (or the tuner) picks; their validation and packing (launch_args.cc).
#pragma once

#include <cuda.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "codegen/device/lina/device/params.h"
#include "compiler/cir/ir.h"
#include "compiler/rir/ir.h"

namespace lina {

struct KernelConfig {
  cir::Strategy strategy = cir::Strategy::Fused;
  int chunk = 64;
  int tile = 0;
  int warps = 16;
  int stages = 1;  // 2: the next chunk's inputs are prefetched with cp.async (when that fits)
  bool registerTiles = false;  // the KIR register-tile kernel (fused, chunk 64, bf16) instead of CIR's
};

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
  // The kernel level: "auto" (register tiles where the program and the request allow them),
  // "register" (only the register-tile kernel: an error naming why when it does not apply) or
  // "simt" (the CIR kernels, values in shared memory).
  std::string kernels = "auto";
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
  // A configuration to launch as it is, past the choice rules and the tuning database (the
  // tuner times candidates through it). The pipeline still rejects one that does not fit.
  std::optional<KernelConfig> config;
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

}  // namespace lina

namespace lina {

// Sequences (batch entries or cu_seqlens ranges) and tokens of a launch.
inline int64_t sequenceCount(const ForwardArgs& a) { return a.cuSeqlens ? a.numSequences : a.batch; }
inline int64_t tokenCount(const ForwardArgs& a) { return a.cuSeqlens ? a.time : a.batch * a.time; }
// The split strategy's chunk slots (see chunk_of_slot in device/common.cuh).
inline int64_t chunkSlots(const ForwardArgs& a, int chunk) {
  return (tokenCount(a) + chunk - 1) / chunk + sequenceCount(a);
}
// Where each state's snapshots start in the split strategy's workspace (256-byte aligned); the
// last entry is the total size. Elements of 4 bytes (the CIR kernels' fp32) or 2 (KIR's bf16).
std::vector<size_t> splitSnapshotOffsets(const rir::Recurrence& recurrence, const ForwardArgs& args, int chunk,
                                         size_t elementBytes = 4);

// The register-tile split's workspace: {0, where the segment decays start, the total}: fp32 segment
// states [slots][H][K][V], then decays [slots][H][K], slots = tokens / segmentTokens + sequences.
std::vector<size_t> segmentWorkspaceOffsets(const rir::Recurrence& recurrence, const ForwardArgs& args, int64_t segmentTokens);

// Checks `args` against the program (dtype, shape, dims, names, counts) and packs the kernel
// parameter block, tensors in the program's declaration order. Throws lina::Error
// "@<name> forward: <what>" naming the argument, the expected and the actual value.
KernelParams packForwardParams(const rir::Recurrence& recurrence, const ForwardArgs& args);

}  // namespace lina
