// "Is it right?": runs a program's forward kernels on the GPU and the reference interpreter on
// the same random inputs (rounded to the kernel's dtype first), and reports fla's RMS error
// ratio for every output and final state. Used by `linac check` and the GPU tests.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "compiler/reference/random_problem.h"
#include "runtime/program.h"

namespace lina {

struct CheckOptions {
  reference::ProblemShape shape;
  std::string dtype = "bf16";
  std::string strategy = "auto";
  std::string kernels = "auto";  // auto | register | simt (ForwardArgs::kernels)
  int chunk = 0;
  int tile = 0;
  uint64_t seed = 0;
  int device = 0;
  bool inPlace = false;  // final states written over the initial states' buffers
  // Launch each configuration exactly as given (ForwardArgs::config; the tuner) instead of
  // through the rules with its strategy, chunk, tile and kernel level fixed.
  bool exactConfigs = false;
  // Called after each configuration's launch (test hooks: the tuner's planted wrong candidate).
  std::vector<std::function<void(const ForwardArgs&)>> afterLaunch;
};

struct CheckEntry {
  std::string name;  // "o", or "state S"
  double ratio = 0;  // RMS(ref - gpu) / RMS(ref)
  double maxAbs = 0;
  bool finite = true;
};

struct CheckReport {
  std::string kernel;      // the kernel that ran
  std::vector<CheckEntry> entries;
  double tolerance = 0;    // 5e-3 for bf16/fp16, 1e-5 for fp32
  bool passed() const;
};

// Throws lina::Error when no GPU is available or the arguments are invalid.
CheckReport checkForward(const Program& program, const CheckOptions& options);

// The same inputs and reference, once per configuration (empty: the one forward() picks).
std::vector<CheckReport> checkForwardConfigs(const Program& program, const CheckOptions& options,
                                             const std::vector<KernelConfig>& configs);

// Host conversions to the kernels' element types (round to nearest even).
uint16_t toBf16(float x);
float fromBf16(uint16_t x);
uint16_t toFp16(float x);
float fromFp16(uint16_t x);

}  // namespace lina
