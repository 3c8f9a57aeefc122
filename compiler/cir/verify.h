// Structural and type checks of a CIR kernel: run after lowering and on parsed CIR.
#pragma once

#include "compiler/cir/ir.h"
#include "dsl/diagnostics.h"

namespace lina::cir {

bool verify(const Kernel& kernel, DiagnosticEngine& diags);

}  // namespace lina::cir
