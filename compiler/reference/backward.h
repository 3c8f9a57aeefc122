// Gradients on the reference interpreter, in double precision:
//  - runBackward: exact reverse-mode over the unrolled steps (the forward is re-run per
//    (sequence, head) recording every value and the state each read and update saw). It is
//    the gradient reference for the GPU tests, where finite differences cannot reach.
//  - finiteDifferences: central differences of L = sum(do * o) + sum(dht * ht), fla's checked
//    loss; the independent oracle that validates runBackward and any derived backward.
#pragma once

#include <optional>
#include <string>

#include "compiler/reference/interpreter.h"

namespace lina::reference {

// Upstream gradients: d(outputs) like the outputs, d(final states) like the final states
// (absent: zero).
struct Cotangents {
  std::map<std::string, Tensor> outputs;
  std::map<std::string, Tensor> finalStates;
};

struct Gradients {
  std::map<std::string, Tensor> inputs;         // like Problem::inputs
  std::map<std::string, Tensor> initialStates;  // [N, H, rows, cols], for every state
  std::map<std::string, Tensor> vectorParams;   // [H, d]
  std::map<std::string, double> scalarParams;   // d L / d(the value used), for every scalar param
  // Per scalar param, the sum of |each (token, head)'s contribution|: the scale that rounding
  // errors of the sum are relative to (the terms may cancel to a much smaller result).
  std::map<std::string, double> scalarParamMagnitudes;
};

std::optional<Gradients> runBackward(const rir::Recurrence& program, const Problem& problem,
                                     const Cotangents& cotangents, std::string& error);

// Random cotangents shaped like a forward result (N(0, 1)).
Cotangents randomCotangents(const Result& forward, uint64_t seed);

// L = sum(do * o) + sum(dht * ht) of a forward result.
double loss(const Result& forward, const Cotangents& cotangents);

struct FiniteDifferenceReport {
  double maxError = 0;          // max |analytic - numeric| / max(1, |numeric|) over the checked entries
  std::string worst;            // where it was, e.g. "input q[17]"
  int64_t entriesChecked = 0;
};

// Compares `gradients` with central differences (step `eps`) on every entry of every input,
// initial state and param (at most `maxEntriesPerTensor` per tensor, evenly spaced).
FiniteDifferenceReport finiteDifferences(const rir::Recurrence& program, const Problem& problem,
                                         const Cotangents& cotangents, const Gradients& gradients,
                                         double eps = 1e-6, int64_t maxEntriesPerTensor = 1 << 30);

}  // namespace lina::reference
