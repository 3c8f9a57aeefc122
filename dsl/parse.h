// Entry point of the frontend: text -> AST.
#pragma once

#include <optional>

#include "dsl/ast.h"
#include "dsl/diagnostics.h"

namespace lina::dsl {

// Parses one buffer of the source manager. Returns nullopt after reporting syntax errors.
std::optional<ast::File> parse(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags);

}  // namespace lina::dsl
