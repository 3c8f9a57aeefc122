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

std::optional<reference::Result> interpret(const Kernel& kernel, const reference::Problem& problem, std::string& error);

}  // namespace lina::cir
