// The catalog of RIR passes: one file per pass, one documented entry here. The names are the
// `linac --pass=` and `--print-after=` flags. The order they run in lives in pipeline.cc.
#pragma once

#include <string>
#include <vector>

#include "compiler/rir/ir.h"
#include "dsl/ast.h"
#include "dsl/diagnostics.h"
#include "dsl/sema.h"

namespace lina::passes {

// lower-ast-to-rir: turns checked ASTs into RIR. Param defaults and consts become SSA values at
// the top of the step; each state update becomes one `update` with its decay factors as Linear
// gates; each `x @ S` becomes a read.before/read.after by statement order.
rir::Module lowerAstToRir(const std::vector<sema::RecurrenceInfo>& infos);

// infer-state-shapes: gives every state declared without a shape the shape of its outer() write.
bool inferStateShapes(rir::Module& module, DiagnosticEngine& diags);

// canonicalize-gates: rewrites every Linear gate as a log-space decay: exp(g) -> g, a per-head
// constant c -> log(c). A per-step gate that is not exp(...) of something is rejected.
bool canonicalizeGates(rir::Module& module, DiagnosticEngine& diags);

// fold-constants: evaluates ops whose operands are all constants and applies the identities
// x*1, 1*x, x+0, 0+x, x-0, x/1, x**1, log(exp(x)), neg(neg(x)).
bool foldConstants(rir::Module& module, DiagnosticEngine& diags);

// dce: removes results that no update, output or live value uses.
bool eliminateDeadCode(rir::Module& module, DiagnosticEngine& diags);

struct PassInfo {
  const char* name;
  const char* summary;
  bool (*run)(rir::Module&, DiagnosticEngine&);
};

// Every RIR-to-RIR pass, by flag name.
const std::vector<PassInfo>& catalog();
const PassInfo* findPass(const std::string& name);

}  // namespace lina::passes
