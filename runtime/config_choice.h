// Config choice: the kernel configurations a program may run on a device, and the one a launch
// takes. The tuning database (issue: per-GPU autotuning) plugs in here; today the rules are
// measured on an H100 (docs/forward-strategies.md).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/pipeline/pipeline.h"
#include "compiler/rir/ir.h"
#include "runtime/launch_args.h"

namespace lina {

// What config choice needs to know of a program.
struct ProgramView {
  const rir::Recurrence& recurrence;
  std::string tiledDim;     // the dim its kernels cut across CTAs (empty: none)
  bool blockedPass = false; // a derived backward pass run block by block over tiledDim
  std::string sourceName;   // for #line directives
  // The pipeline request of a configuration.
  KernelRequest request(const KernelConfig& config, const std::map<std::string, int64_t>& dims, const std::string& dtype,
                        const cir::TensorLayout& layout = {}) const;
};

// The configurations the tuner may choose from for these dims and dtype, on a device with
// `sharedMemoryBytes` of opt-in shared memory per block. `requireWholeTile` keeps every tile
// size that fits (the whole dim included), not only the largest. `layout` sizes the kernels as
// they will be launched (fp32 tensors stage twice the bytes).
std::vector<KernelConfig> candidateConfigs(const ProgramView& program, const std::map<std::string, int64_t>& dims,
                                           const std::string& dtype, int64_t sharedMemoryBytes,
                                           bool requireWholeTile = false, const cir::TensorLayout& layout = {});

// The configuration a launch of `args` takes on a device with `sharedMemoryBytes` of opt-in shared
// memory per block and `multiprocessors` SMs (0: never choose split automatically), with the
// caller's warps and stages applied. Throws lina::Error naming what does not fit.
KernelConfig chooseConfig(const ProgramView& program, const ForwardArgs& args, int64_t sharedMemoryBytes,
                          int multiprocessors = 0);

// The chunk size the rules prefer: 16 when a read contracts a vector-gated dim, else 32.
int preferredChunk(const rir::Recurrence& recurrence);
// Why `args` cannot run the register-tile kernel with `tile` columns per CTA (0: choose), or empty.
std::string registerTilesUnsupported(const ProgramView& program, const ForwardArgs& args, int tile = 0);

// Decode-like launches (few steps per sequence) step through time.
bool prefersRecurrent(const ForwardArgs& args);
// True when a state passed as both initial and final state (updated in place) is shared by the
// tiles of a split dim, so the kernel must run as one tile.
bool updatesInPlaceAcrossTiles(const ProgramView& program, const ForwardArgs& args);

}  // namespace lina
