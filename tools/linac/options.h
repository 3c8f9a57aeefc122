// linac's command line: the options every subcommand shares and their parsing.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "compiler/reference/random_problem.h"
#include "compiler/rir/ir.h"

namespace lina::linac {

extern const char* kUsage;

struct Options {
  std::string command;  // "" (compile) or "run-reference"
  std::string file;
  std::string emit = "rir";
  std::string printAfter;
  std::string pass;
  std::string input;
  bool timePasses = false;
  reference::ProblemShape shape;
  uint64_t seed = 0;
  std::string name;
  std::map<std::string, double> params;  // scalar param overrides for run-reference
  std::string dtype = "bf16";
  std::string strategy = "auto";
  std::string kernels = "auto";  // auto | register | simt
  int chunk = 0;
  int tile = 0;
  int stages = 0;  // 0: choose (as the runtime does)
  int warps = 0;   // 0: choose
  bool shapeGiven = false;
  std::string arch;
  bool cacheStats = false;
  bool backward = false;  // run-reference: gradients too; --emit=rir: the derived backward
  bool finiteDifferences = false;  // run-reference --backward: check them by central differences
  bool report = false;  // tune: print every candidate
  int reps = 20, jobs = 0;  // tune: timed runs per candidate, compile threads (0: the cores)
};

// Reports a command-line error (exit code 2) and returns false.
bool usageError(std::ostream& err, const std::string& message);
std::optional<std::vector<int64_t>> parseIntList(const std::string& text);
bool parseOptions(const std::vector<std::string>& args, Options& o, std::ostream& err);
// The program's dims: --dims, else `fallback` each.
std::map<std::string, int64_t> dimsFor(const rir::Recurrence& rec, const Options& o, int64_t fallback);
// --arch, else the GPU's, else sm_90a.
std::string targetArch(const Options& o);

}  // namespace lina::linac
