// Reads the textual CIR written by cir/printer.h, so codegen tests can start from CIR.
#pragma once

#include <optional>

#include "compiler/cir/ir.h"
#include "dsl/diagnostics.h"

namespace lina::cir {

// Parses one kernel; the result is not verified (run cir::verify next).
std::optional<Kernel> parse(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags);

}  // namespace lina::cir
