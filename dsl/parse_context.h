// State shared by the Flex scanner and the Bison parser while one buffer is parsed.
#pragma once

#include <cstdint>

#include "dsl/ast.h"
#include "dsl/diagnostics.h"

namespace lina::dsl {

// Expressions nest at most this deep: every later stage walks them recursively, and a deeper
// input (tens of thousands of levels) would overflow the stack instead of being reported.
constexpr int kMaxExpressionDepth = 256;

struct ParseContext {
  const SourceManager& sources;
  DiagnosticEngine& diags;
  uint32_t file;
  ast::File result;
  // The scanner's current position (1-based), advanced by every token and newline.
  uint32_t line = 1;
  uint32_t col = 1;
  SourceRange token;  // the range of the token just scanned
  bool depthReported = false;  // one "nested too deeply" error per buffer
};

}  // namespace lina::dsl
