// State shared by the Flex scanner and the Bison parser while one buffer is parsed.
#pragma once

#include <cstdint>

#include "dsl/ast.h"
#include "dsl/diagnostics.h"

namespace lina::dsl {

struct ParseContext {
  const SourceManager& sources;
  DiagnosticEngine& diags;
  uint32_t file;
  ast::File result;
  // The scanner's current position (1-based), advanced by every token and newline.
  uint32_t line = 1;
  uint32_t col = 1;
  SourceRange token;  // the range of the token just scanned
};

}  // namespace lina::dsl
