// Runs a CIR kernel on the CPU in double precision: the same chunked algorithm the CUDA emitter
// implements (chunk-local gate cumsums, attend = inter-chunk read of the carried state plus the
// gated intra-chunk scores, carry, running sums, partial-chunk masking), without a GPU. Checked
// against the RIR interpreter, it validates the chunk lowering of any program in CI.
#pragma once

#include <optional>
#include <string>

#include "compiler/cir/ir.h"
#include "compiler/reference/interpreter.h"

namespace lina::cir {

// A fused or recurrent kernel (Phase::Whole).
std::optional<reference::Result> interpret(const Kernel& kernel, const reference::Problem& problem, std::string& error);

// The split strategy: the walk (Phase::States) records each chunk's starting states, then the
// outputs phase computes every chunk from them. Final states come from the walk.
std::optional<reference::Result> interpretSplit(const Kernel& states, const Kernel& outputs,
                                                const reference::Problem& problem, std::string& error);

}  // namespace lina::cir
