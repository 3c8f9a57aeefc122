// The reference backward (reverse-mode over the unrolled steps) and the compiler's derived
// backward (passes A and B, run by the interpreter) against central finite differences in double
// precision, for every library program and the DSL variants: every entry of every input,
// initial state and param; relative error <= 1e-6.
#include <cmath>
#include <random>

#include "compiler/reference/backward.h"
#include "compiler/reference/derived_backward.h"
#include "test_support.h"

namespace lina {
namespace {

using reference::Problem;
using reference::ProblemShape;

// Sets every gate input to values drawn uniformly from [lo, hi] (log-decays).
void setGates(const rir::Recurrence& rec, Problem& p, double lo, double hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  for (const rir::Decl& in : rec.inputs)
    if (in.isGate)
      for (double& x : p.inputs[in.name].data) x = u(rng);
}

void expectGradientsMatch(const rir::Recurrence& rec, Problem p, uint64_t seed, const std::string& label) {
  for (const rir::Decl& prm : rec.params)
    if (prm.shape.empty()) p.scalarParams[prm.name] = 0.7;  // so its gradient is checked too
  std::string error;
  std::optional<reference::Result> forward = reference::run(rec, p, error);
  ASSERT_TRUE(forward.has_value()) << error;
  reference::Cotangents ct = reference::randomCotangents(*forward, seed);
  std::optional<reference::Gradients> grads = reference::runBackward(rec, p, ct, error);
  ASSERT_TRUE(grads.has_value()) << error;
  double norm = 0;
  for (const auto& [name, t] : grads->inputs)
    for (double x : t.data) norm += x * x;
  EXPECT_GT(norm, 0) << label << ": all input gradients are zero";
  reference::FiniteDifferenceReport fd = reference::finiteDifferences(rec, p, ct, *grads);
  EXPECT_LE(fd.maxError, 1e-6) << label << ": worst at " << fd.worst;
  EXPECT_GT(fd.entriesChecked, 50) << label;
  std::optional<reference::Gradients> derived = reference::runDerivedBackward(rec, p, ct, error);
  ASSERT_TRUE(derived.has_value()) << error;
  reference::FiniteDifferenceReport fdDerived = reference::finiteDifferences(rec, p, ct, *derived);
  EXPECT_LE(fdDerived.maxError, 1e-6) << label << " (derived backward): worst at " << fdDerived.worst;
  EXPECT_EQ(fdDerived.entriesChecked, fd.entriesChecked) << label;
}

class GradientCheck : public ::testing::TestWithParam<std::string> {};

TEST_P(GradientCheck, FixedLengthWithInitialState) {
  rir::Recurrence rec = testing::compileAny(GetParam());
  ProblemShape s;
  s.batch = 2;
  s.time = 6;
  s.heads = 2;
  s.dims = {{"K", 4}, {"V", 3}, {"M", 3}};
  s.initialStates = true;
  expectGradientsMatch(rec, reference::makeRandomProblem(rec, s, 1), 11, GetParam() + " fixed");
}

TEST_P(GradientCheck, VarlenWithEmptySequence) {
  rir::Recurrence rec = testing::compileAny(GetParam());
  ProblemShape s;
  s.batch = 1;
  s.heads = 2;
  s.dims = {{"K", 3}, {"V", 4}, {"M", 2}};
  s.cuSeqlens = {0, 0, 3, 8};
  s.time = 8;
  s.initialStates = true;
  expectGradientsMatch(rec, reference::makeRandomProblem(rec, s, 2), 12, GetParam() + " varlen");
}

TEST_P(GradientCheck, GatesNearZeroAndNearTheClamp) {
  rir::Recurrence rec = testing::compileAny(GetParam());
  ProblemShape s;
  s.batch = 1;
  s.time = 7;
  s.heads = 2;
  s.dims = {{"K", 3}, {"V", 3}, {"M", 3}};
  s.initialStates = true;
  Problem nearZero = reference::makeRandomProblem(rec, s, 3);
  setGates(rec, nearZero, -1e-3, 0.0, 4);
  expectGradientsMatch(rec, nearZero, 13, GetParam() + " gates near 0");
  Problem nearClamp = reference::makeRandomProblem(rec, s, 5);
  setGates(rec, nearClamp, -5.0, -4.5, 6);
  expectGradientsMatch(rec, nearClamp, 14, GetParam() + " gates near -5");
}

INSTANTIATE_TEST_SUITE_P(AllPrograms, GradientCheck,
                         ::testing::Values("gla", "simple_gla", "retention", "gsa", "linear_attention", "gla_gv",
                                           "hgrn2", "rwkv6"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// The finite-difference checker can fail: a wrong gradient is caught.
TEST(GradientCheck, CheckerCatchesAWrongGradient) {
  rir::Recurrence rec = testing::compileLibrary("gla");
  ProblemShape s;
  s.batch = 1;
  s.time = 4;
  s.heads = 1;
  s.dims = {{"K", 3}, {"V", 3}};
  Problem p = reference::makeRandomProblem(rec, s, 7);
  std::string error;
  std::optional<reference::Result> forward = reference::run(rec, p, error);
  ASSERT_TRUE(forward.has_value());
  reference::Cotangents ct = reference::randomCotangents(*forward, 8);
  std::optional<reference::Gradients> grads = reference::runBackward(rec, p, ct, error);
  ASSERT_TRUE(grads.has_value());
  grads->inputs["g"].data[5] += 1e-3;
  reference::FiniteDifferenceReport fd = reference::finiteDifferences(rec, p, ct, *grads);
  EXPECT_GT(fd.maxError, 1e-4);
  EXPECT_EQ(fd.worst, "input g[5]");
}

}  // namespace
}  // namespace lina
