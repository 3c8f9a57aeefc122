// Runs the derived backward (passes A and B of compiler/passes/derive_backward.h) on the reference
// interpreter: A forward in time; B on each sequence reversed in time; the partial gradients
// summed. Checked against runBackward (and so against finite differences) for every program.
#pragma once

#include <functional>

#include "compiler/reference/backward.h"

namespace lina::reference {

// What runs the forward and the two passes: the reference interpreter by default; the LLVM CPU
// backend passes its compiled kernels (runtime/cpu/llvm_backend.h).
using RecurrenceRunner = std::function<std::optional<Result>(const rir::Recurrence&, const Problem&, std::string&)>;

std::optional<Gradients> runDerivedBackward(const rir::Recurrence& program, const Problem& problem,
                                            const Cotangents& cotangents, std::string& error,
                                            const RecurrenceRunner& runner = {});

}  // namespace lina::reference
