// Reads the textual RIR written by rir/printer.h, so tests can start mid-pipeline.
#pragma once

#include <optional>

#include "compiler/rir/ir.h"
#include "dsl/diagnostics.h"

namespace lina::rir {

// Parses buffer `file` of the source manager; reports syntax errors with their location.
// The result is not verified: run rir::verify next.
std::optional<Module> parse(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags);

}  // namespace lina::rir
