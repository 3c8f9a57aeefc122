#include "dsl/parse.h"

#include "dsl/parse_context.h"

namespace lina::dsl {

bool parseBuffer(ParseContext& ctx);  // lexer.ll

std::optional<ast::File> parse(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags) {
  ParseContext ctx{sources, diags, file, {}, 1, 1, {}};
  size_t errorsBefore = diags.errorCount();
  parseBuffer(ctx);
  if (diags.errorCount() != errorsBefore) return std::nullopt;
  if (ctx.result.recurrences.empty()) {
    diags.error(SourceRange(SourceLoc{file, 1, 1}),
                "no recurrence in this file; expected `recurrence NAME { ... }`");
    return std::nullopt;
  }
  return std::move(ctx.result);
}

}  // namespace lina::dsl
