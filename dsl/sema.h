// Semantic analysis of a parsed recurrence: name resolution, dimension checking with named dims,
// gate kinds, and the classification of every state update into the canonical form
//     S = a (.)rows S (.)cols b + outer(u, w)
// Expressions are annotated in place (shape, isUniform, ref); update statements are recorded
// in RecurrenceInfo for lowering.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "dsl/ast.h"
#include "dsl/diagnostics.h"

namespace lina::sema {

using Shape = std::vector<std::string>;

struct StateUpdate {
  const ast::Expr* rowDecay = nullptr;  // multiplies the rows of S (scalar or over rows); may be null
  const ast::Expr* colDecay = nullptr;  // multiplies the columns of S; may be null
  const ast::Expr* u = nullptr;         // outer(u, w): u over the rows
  const ast::Expr* w = nullptr;         //              w over the columns
};

struct RecurrenceInfo {
  const ast::Recurrence* ast = nullptr;
  std::map<std::string, Shape> stateShapes;           // declared or inferred from the update
  std::map<const ast::Item*, StateUpdate> updates;    // keyed by the Assign item
  std::vector<int64_t> chunkSizes;                    // checked; {64} when absent
  bool chunkTuned = false;
};

// Checks every recurrence of the file; returns one info per recurrence, or an empty vector after
// reporting errors.
std::vector<RecurrenceInfo> analyze(const ast::File& file, DiagnosticEngine& diags);

// Builtin functions, for messages and for lowering.
bool isBuiltinFunction(const std::string& name);

}  // namespace lina::sema
