// The tuner (`linac tune`, lina.tune): every candidate schedule of a program for one problem
// shape, compiled in parallel, checked against the reference interpreter on a probe problem
// (a candidate that fails scores infinity and is never recorded), the survivors timed at the
// real shape with L2 flushed between runs (median of N), the fastest recorded in the device's
// tuning database.
#pragma once

#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "runtime/launch_args.h"
#include "runtime/program.h"
#include "runtime/tuning/tuning_db.h"

namespace lina::tuning {

struct TuneCandidate {
  KernelConfig config;
  // Test hook: runs after every launch of this candidate (a planted wrong schedule corrupts an
  // output element here). Empty for real candidates.
  std::function<void(const ForwardArgs&)> afterLaunch;
  std::string label;  // shown in the report; default: the kernel names
};

struct CandidateResult {
  TuneCandidate candidate;
  std::string kernels;   // the kernel names, " + "-joined
  std::string rejected;  // why it was pruned or failed (empty: timed)
  double compileMs = 0;
  double checkRatio = 0;  // the largest RMS error ratio of the probe check
  bool checked = false, passed = false;
  double ms = std::numeric_limits<double>::infinity();  // median; infinity unless timed
};

struct TuneOptions {
  // The problem: dtype, batch, time, heads, dims (and, for varlen, cu_seqlens as host offsets).
  ForwardArgs shape;
  std::vector<int64_t> cuSeqlens;  // host offsets; empty: fixed length
  int reps = 20;
  int jobs = 0;  // compile threads; 0: the machine's cores
  bool record = true;
  std::string databasePath;                    // empty: the device's database
  std::vector<TuneCandidate> extraCandidates;  // appended to the program's (tests)
  // One line per event on stderr when unset: candidates compiled / checked / timed, best so far.
  std::function<void(const std::string&)> progress;
  int device = 0;
};

struct TuneResult {
  TuningKey key;
  std::vector<CandidateResult> candidates;
  std::optional<size_t> best;                                    // index into candidates
  double heuristicMs = std::numeric_limits<double>::infinity();  // what the rules choose, same run
  std::string heuristicKernels;
  double wallMs = 0;
  int compiled = 0, rejectedByCheck = 0, timed = 0;
  std::string databasePath;  // where the best was recorded (empty: not recorded)
};

TuneResult tune(const Program& program, const TuneOptions& options);

// Makes LINA_TUNE=1 tune a launch's shape bucket the first time the process meets it without a
// database entry (fixed length or varlen; 10 timed runs per candidate), record the best and
// launch it. Called once at start-up by linac, lina-bench and the Python module.
void installTuneOnMiss();

// The table `linac tune --report` prints: every candidate with its time, check error and why it
// was pruned or rejected.
std::string reportTable(const TuneResult& result);

}  // namespace lina::tuning
