// derive-backward, pass A: from a canonical forward recurrence F, the forward-time program
// `<F>_bwd_a` that recomputes F and, per step, runs reverse-mode through everything downstream of
// the state reads: each read's cotangent dr, the read of the same state with dr over the other
// dim (dx = S dr: "a read of the forward"), and the input-gradient parts that flow through the
// read operands. It is itself canonical RIR, so the interpreter and the chunk lowering run it as
// they run F. Pass B (the adjoint states, du, dw, gate gradients) is docs/backward-design.md.
//
// Extra inputs: `d_<out>` per output. Outputs: `dA_<input>` per input that receives a gradient
// here, `dA_<param>` per vector param (per step; summed over steps by the caller), and per read i
// `x_<i>`, `dr_<i>` and the gate-identity terms `ic_<i>` = x (.) dx, `io_<i>` = r (.) dr.
#pragma once

#include <optional>

#include "compiler/rir/ir.h"
#include "dsl/diagnostics.h"

namespace lina::passes {

std::optional<rir::Recurrence> deriveBackwardPassA(const rir::Recurrence& forward, DiagnosticEngine& diags);

}  // namespace lina::passes
