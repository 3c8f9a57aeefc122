#include "dsl/diagnostics.h"

namespace lina {

void DiagnosticEngine::error(SourceRange range, std::string message) {
  diagnostics_.push_back({Severity::Error, range, std::move(message)});
  ++errorCount_;
}

void DiagnosticEngine::warning(SourceRange range, std::string message) {
  diagnostics_.push_back({Severity::Warning, range, std::move(message)});
}

void DiagnosticEngine::note(SourceRange range, std::string message) {
  diagnostics_.push_back({Severity::Note, range, std::move(message)});
}

void DiagnosticEngine::clear() {
  diagnostics_.clear();
  errorCount_ = 0;
}

void DiagnosticEngine::print(std::ostream& os) const {
  for (const Diagnostic& diag : diagnostics_) render(os, diag);
}

void DiagnosticEngine::render(std::ostream& os, const Diagnostic& diag) const {
  const char* label = diag.severity == Severity::Error     ? "error"
                      : diag.severity == Severity::Warning ? "warning"
                                                           : "note";
  if (!diag.range.isValid()) {
    os << toolName_ << ": " << label << ": " << diag.message << '\n';
    return;
  }
  const SourceLoc& b = diag.range.begin;
  os << sources_.name(b.file) << ':' << b.line << ':' << b.col << ": " << label << ": "
     << diag.message << '\n';
  std::string_view line = sources_.line(b.file, b.line);
  os << line << '\n';
  // Tabs in the source line are kept in the caret line so the caret stays aligned.
  std::string caret;
  for (uint32_t c = 1; c < b.col && c - 1 < line.size(); ++c) caret += line[c - 1] == '\t' ? '\t' : ' ';
  caret += '^';
  const SourceLoc& e = diag.range.end;
  if (e.isValid() && e.line == b.line && e.col > b.col + 1) {
    uint32_t last = std::min<uint32_t>(e.col - 1, static_cast<uint32_t>(line.size()));
    for (uint32_t c = b.col + 1; c <= last; ++c) caret += '~';
  }
  os << caret << '\n';
}

}  // namespace lina
