// Structural and type checks of RIR. Run after lowering and after every pass.
#pragma once

#include "compiler/rir/ir.h"
#include "dsl/diagnostics.h"

namespace lina::rir {

struct VerifyOptions {
  // After infer-state-shapes every state has a known shape.
  bool requireKnownStateShapes = false;
  // After canonicalize-gates every gate is a log-space decay.
  bool requireLogGates = false;
};

// Reports every violation found; returns true when there is none.
bool verify(const Module& module, DiagnosticEngine& diags, VerifyOptions options = {});
bool verify(const Recurrence& rec, DiagnosticEngine& diags, VerifyOptions options = {});

}  // namespace lina::rir
