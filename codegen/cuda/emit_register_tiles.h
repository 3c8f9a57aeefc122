// KIR register-tile kernel -> CUDA C++: a Policy for the device template
// lina/device/fused_chunk_skeleton.cuh and an extern "C" kernel over lina's launch grid.
#pragma once

#include "codegen/cuda/emit_cuda.h"
#include "compiler/kir/register_tiles.h"

namespace lina::codegen {

EmittedKernel emitRegisterTiles(const kir::RegisterTileKernel& kernel);

}  // namespace lina::codegen
