// KIR register-tile kernel -> CUDA C++: a Policy for the device template
// lina/device/fused_chunk_skeleton.cuh and an extern "C" kernel over lina's launch grid.
#pragma once

#include "codegen/cuda/emit_cuda.h"
#include "compiler/kir/adjoint.h"
#include "compiler/kir/register_tiles.h"

namespace lina::codegen {

EmittedKernel emitRegisterTiles(const kir::RegisterTileKernel& kernel);

// The register-tile backward's glue (lina/device/adjoint_glue.cuh): the segment totals, the gate
// gradient and the initial-state gradient kernels, in that order, each its own source. Their
// grids are the runtime's (kir_backward.cc): (segment slots, heads) and (heads, sequences).
std::vector<EmittedKernel> emitAdjointGlue(const kir::AdjointPlan& plan);

}  // namespace lina::codegen
