// Random inputs for any program, shaped and distributed like fla's tests: per-step values
// ~ N(0, 1); gate inputs log(sigmoid(N(0, 1))) (log-decays <= 0); vector params ~ N(0, 1);
// initial states ~ N(0, 1) when requested.
#pragma once

#include <cstdint>
#include <ostream>
#include <random>

#include "compiler/reference/interpreter.h"

namespace lina::reference {

struct ProblemShape {
  int64_t batch = 1, time = 1, heads = 1;
  std::map<std::string, int64_t> dims;  // sizes; dims of the program not listed default to 16
  std::vector<int64_t> cuSeqlens;       // varlen when not empty (then batch must be 1)
  bool initialStates = false;
  // Gate inputs: log(sigmoid(N(0, 1))) (Random), near 0 (log(sigmoid(z + 6)): decays close to 1),
  // or near fla's clamp of -5 (-5 + 0.2 z).
  enum class Gates { Random, NearZero, NearClamp } gates = Gates::Random;
};

Problem makeRandomProblem(const rir::Recurrence& program, const ProblemShape& shape, uint64_t seed);

struct TensorStats {
  double mean = 0, rms = 0, min = 0, max = 0;
  int64_t nonFinite = 0;
};
TensorStats statistics(const Tensor& t);

// fla's error metric: RMS(ref - x) / (RMS(ref) + 1e-8).
double rmsErrorRatio(const Tensor& reference, const Tensor& x);

// Prints one line per output and final state: name, shape, mean, rms, min, max.
// `outputLabel`/`stateLabel` name the two groups (gradients print as "grad" lines).
void printStatistics(std::ostream& os, const Result& result, const char* outputLabel = "output",
                     const char* stateLabel = "state ");

}  // namespace lina::reference
