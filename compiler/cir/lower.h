// lower-rir-to-cir: builds the chunk kernel of a canonical RIR recurrence for one strategy.
#pragma once

#include <optional>
#include <string>

#include "compiler/cir/ir.h"
#include "dsl/diagnostics.h"

namespace lina::cir {

// `chunk` is the chunk size for Strategy::Fused and Split (ignored for Recurrent, which uses 1).
// Split builds one of its two kernels, named by `phase` (States or Outputs); the others take
// Phase::Whole. Reports an error and returns nullopt when the program cannot be chunked (two
// states whose updates read each other) or split (a running sum).
std::optional<Kernel> lowerRirToCir(const rir::Recurrence& rec, Strategy strategy, int chunk, DiagnosticEngine& diags,
                                    Phase phase = Phase::Whole);

// The dim a kernel may split across CTAs: one that appears in an output and that nothing
// reduces over (no read contracts it, no sum/softmax/dot runs over it). Empty when none.
std::string tileableDim(const rir::Recurrence& rec);

}  // namespace lina::cir
