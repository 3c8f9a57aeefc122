// split-phase: the two kernels of the split strategy, cut from the fused kernel.
//
// The fused kernel walks a sequence's chunks with the states on chip, reading and carrying them.
// The split strategy runs that walk with only the carries (Phase::States), storing each chunk's
// starting state, then computes every chunk's reads and stores in parallel from those snapshots
// (Phase::Outputs). Each phase keeps the ops its roots need (carries, or stores) and drops the
// rest, so the walk does none of the intra-chunk attention.
#pragma once

#include <optional>

#include "compiler/cir/ir.h"
#include "dsl/diagnostics.h"

namespace lina::cir {

// `whole` is a fused kernel; `phase` is States or Outputs. Reports an error and returns nullopt
// when the kernel cannot be split (a running sum, which is carried across chunks but not a state).
std::optional<Kernel> splitPhase(const Kernel& whole, Phase phase, DiagnosticEngine& diags);

}  // namespace lina::cir
