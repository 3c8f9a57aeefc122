// Collects user-facing errors and renders them as `file:line:col: error: message`,
// followed by the source line and a caret under the range.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "dsl/source_manager.h"

namespace lina {

enum class Severity { Error, Warning, Note };

struct Diagnostic {
  Severity severity;
  SourceRange range;
  std::string message;
};

class DiagnosticEngine {
 public:
  explicit DiagnosticEngine(const SourceManager& sources) : sources_(sources) {}

  void error(SourceRange range, std::string message);
  void warning(SourceRange range, std::string message);
  void note(SourceRange range, std::string message);

  bool hasErrors() const { return errorCount_ > 0; }
  size_t errorCount() const { return errorCount_; }
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

  // Writes every diagnostic collected so far, in order.
  void print(std::ostream& os) const;
  // Renders one diagnostic (exposed for tests).
  void render(std::ostream& os, const Diagnostic& diag) const;
  void clear();
  // Diagnostics without a location are prefixed with this name (default "lina").
  void setToolName(std::string name) { toolName_ = std::move(name); }

 private:
  std::string toolName_ = "lina";
  const SourceManager& sources_;
  std::vector<Diagnostic> diagnostics_;
  size_t errorCount_ = 0;
};

}  // namespace lina
