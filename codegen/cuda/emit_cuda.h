// CIR -> CUDA C++ that calls the device library (codegen/device). The output is readable
// (`linac --emit=cuda`), carries #line directives back to the .lina file, and compiles with
// NVRTC without any include path.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/cir/ir.h"

namespace lina::codegen {

// Where each buffer lives in dynamic shared memory (floats), and how much the kernel needs.
struct SharedMemoryPlan {
  std::map<std::string, int64_t> offset;  // buffer name -> offset in floats
  std::map<std::string, int64_t> size;    // buffer name -> size in floats
  int64_t totalBytes = 0;
};

// What each grid axis of a launch counts. The emitter reads blockIdx by this plan and the runtime
// sizes the grid from it, so the two cannot disagree.
enum class GridAxis {
  Tiles,       // the tiles of the tiled dim (1 when untiled)
  Heads,       // the heads
  Sequences,   // the sequences (batch entries, or cu_seqlens ranges)
  ChunkSlots,  // the split strategy's chunk slots (tokens / C + sequences)
  OneTile,     // a single tile named by KernelParams::tileBase (TensorLayout::oneTilePerLaunch)
};
const char* gridAxisName(GridAxis a);
struct LaunchGrid {
  GridAxis x = GridAxis::Tiles, y = GridAxis::Heads, z = GridAxis::Sequences;
  // The blockIdx component that counts `a`, or empty when no axis counts it.
  std::string component(GridAxis a) const;
  std::string text() const;  // "x=tiles y=heads z=sequences"
};
// The grid of a kernel: by phase and layout.
LaunchGrid planLaunchGrid(const cir::Kernel& kernel, const cir::Specialization& spec);

struct EmittedKernel {
  std::string name;
  std::string source;
  SharedMemoryPlan smem;
  int threads = 128;
  int tiles = 1;        // CTAs per (sequence or chunk slot, head): grid.x, or grid.z for the split outputs kernel
  std::string tiledDim;
  int tile = 0;
  int chunk = 1;
  int stages = 1;  // 2: cp.async prefetch of the next chunk's inputs
  // The register-tile split (segmented) kernels: chunks per segment; their chunk-slot axis counts
  // segment slots (tokens / (chunk x segment) + sequences). 0 elsewhere.
  int segmentChunks = 0;
  // A two-phase register-tile plan (GSA): the bf16 intermediate the first kernel writes and the
  // second reads as its query, through KernelParams::snapshots[0]: bytes per (token, head). 0
  // elsewhere.
  int64_t intermediateBytesPerTokenHead = 0;
  LaunchGrid grid;
  // The order of KernelParams' arrays: inputs[i], outputs[i], initialStates/finalStates[i] and
  // the scalar and vector params, as declared by the kernel's program.
  std::vector<std::string> inputs, outputs, states, scalarParams, vectorParams;
};

// Plans shared memory and emits the kernel for one specialization. `sourceName` is the .lina
// file named in #line directives (empty: none). Throws lina::Error for a specialization that
// does not fit the kernel (dims missing, tile not dividing the dim).
EmittedKernel emitCuda(const cir::Kernel& kernel, const cir::Specialization& spec, const std::string& sourceName = "");

// The shared memory plan alone (for choosing a chunk and tile that fit the device).
SharedMemoryPlan planSharedMemory(const cir::Kernel& kernel, const cir::Specialization& spec);

}  // namespace lina::codegen
