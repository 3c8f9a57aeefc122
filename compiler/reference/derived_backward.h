// Runs the derived backward (passes A and B of compiler/passes/derive_backward.h) on the reference
// interpreter: A forward in time; B on each sequence reversed in time; the partial gradients
// summed. Checked against runBackward (and so against finite differences) for every program.
#pragma once

#include "compiler/reference/backward.h"

namespace lina::reference {

std::optional<Gradients> runDerivedBackward(const rir::Recurrence& program, const Problem& problem,
                                            const Cotangents& cotangents, std::string& error);

}  // namespace lina::reference
