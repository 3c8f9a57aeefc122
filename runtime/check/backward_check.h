// "Are the gradients right?": runs Program::backward on the GPU and the exact reference backward
// (reverse mode over the unrolled steps, in double) on the same random inputs and cotangents,
// and reports fla's RMS error ratio for every gradient: each input, initial state and param.
// Used by `linac check --backward` and the GPU tests.
#pragma once

#include <vector>

#include "runtime/check/forward_check.h"

namespace lina {

struct BackwardCheckOptions {
  CheckOptions check;  // shape (with the gate regime), dtype, strategy/chunk (both passes), seed
  // Pass the final states of a GPU forward (the saved-tensor contract); false: let backward
  // recompute them.
  bool saveFinalStates = true;
};

// Throws lina::Error when no GPU is available or the arguments are invalid.
CheckReport checkBackward(const Program& program, const BackwardCheckOptions& options);

// The same inputs and reference gradients, once per (strategy, chunk) both passes can run
// (empty: the ones backward() picks).
std::vector<CheckReport> checkBackwardConfigs(const Program& program, const BackwardCheckOptions& options,
                                              const std::vector<KernelConfig>& configs);

// The (strategy, chunk) pairs both derived passes can run for these dims and dtype.
std::vector<KernelConfig> backwardConfigs(const Program& program, const std::map<std::string, int64_t>& dims,
                                          const std::string& dtype, int64_t sharedMemoryBytes);

}  // namespace lina
