// The reference interpreter against independent oracles: hand-written naive recurrences, the
// closed-form parallel formula, per-sequence runs (varlen) and state chaining.
#include <cmath>

#include "naive_recurrences.h"
#include "test_support.h"

namespace lina {
namespace {

using reference::Problem;
using reference::ProblemShape;
using reference::Tensor;
using testing::compileLibrary;
using testing::compileTestProgram;
using testing::maxRelativeError;
using testing::runOrFail;

constexpr double kTolerance = 1e-11;

ProblemShape shapeOf(int64_t B, int64_t T, int64_t H, std::map<std::string, int64_t> dims, bool h0) {
  ProblemShape s;
  s.batch = B;
  s.time = T;
  s.heads = H;
  s.dims = std::move(dims);
  s.initialStates = h0;
  return s;
}

TEST(Interpreter, GlaMatchesNaiveRecurrence) {
  rir::Recurrence gla = compileLibrary("gla");
  naive::Sizes s{2, 37, 3, 8, 6};
  Problem p = reference::makeRandomProblem(gla, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 1);
  reference::Result r = runOrFail(gla, p);
  naive::Buffer ht;
  naive::Buffer o = naive::gla(s, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data, p.inputs["g"].data, {},
                               1.0 / std::sqrt(8.0), p.initialStates["S"].data, ht);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["S"].data, ht), kTolerance);
}

TEST(Interpreter, GlaScaleOverride) {
  rir::Recurrence gla = compileLibrary("gla");
  naive::Sizes s{1, 20, 2, 4, 5};
  Problem p = reference::makeRandomProblem(gla, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, false), 2);
  p.scalarParams["scale"] = 0.3;
  reference::Result r = runOrFail(gla, p);
  naive::Buffer ht;
  naive::Buffer o = naive::gla(s, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data, p.inputs["g"].data, {},
                               0.3, {}, ht);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
}

TEST(Interpreter, SimpleGlaMatchesNaiveRecurrence) {
  rir::Recurrence prog = compileLibrary("simple_gla");
  naive::Sizes s{2, 41, 2, 8, 8};
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 3);
  reference::Result r = runOrFail(prog, p);
  naive::Buffer ht;
  naive::Buffer o = naive::simpleGla(s, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data,
                                     p.inputs["g"].data, 1.0 / std::sqrt(8.0), p.initialStates["S"].data, ht);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["S"].data, ht), kTolerance);
}

TEST(Interpreter, RetentionMatchesNaiveRecurrence) {
  rir::Recurrence prog = compileLibrary("retention");
  naive::Sizes s{2, 50, 4, 6, 10};
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 4);
  reference::Result r = runOrFail(prog, p);
  naive::Buffer ht;
  naive::Buffer o = naive::retention(s, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data,
                                     1.0 / std::sqrt(6.0), p.initialStates["S"].data, ht);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["S"].data, ht), kTolerance);
}

TEST(Interpreter, GsaMatchesNaiveRecurrence) {
  rir::Recurrence prog = compileLibrary("gsa");
  naive::Sizes s{2, 33, 2, 8, 6};
  const int64_t M = 5;
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}, {"M", M}}, true), 5);
  reference::Result r = runOrFail(prog, p);
  naive::Buffer hkt, hvt;
  naive::Buffer o = naive::gsa(s, M, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data, p.inputs["s"].data,
                               p.inputs["g"].data, 1.0 / std::sqrt(8.0), p.initialStates["Sk"].data,
                               p.initialStates["Sv"].data, hkt, hvt);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["Sk"].data, hkt), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["Sv"].data, hvt), kTolerance);
}

TEST(Interpreter, Rwkv6MatchesNaiveRecurrence) {
  rir::Recurrence prog = compileTestProgram("rwkv6");
  naive::Sizes s{2, 29, 3, 6, 7};
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 6);
  reference::Result r = runOrFail(prog, p);
  naive::Buffer ht;
  naive::Buffer o = naive::rwkv6(s, p.inputs["r"].data, p.inputs["k"].data, p.inputs["v"].data, p.inputs["w"].data,
                                 p.vectorParams["u"].data, 1.0, p.initialStates["S"].data, ht);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["S"].data, ht), kTolerance);
}

TEST(Interpreter, ValueGateMatchesNaiveRecurrence) {
  rir::Recurrence prog = compileTestProgram("gla_gv");
  naive::Sizes s{1, 30, 2, 5, 7};
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 7);
  reference::Result r = runOrFail(prog, p);
  naive::Buffer ht;
  naive::Buffer o = naive::gla(s, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data, p.inputs["gk"].data,
                               p.inputs["gv"].data, 1.0 / std::sqrt(5.0), p.initialStates["S"].data, ht);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["S"].data, ht), kTolerance);
}

TEST(Interpreter, Hgrn2IsGlaWithKeyOneMinusDecay) {
  rir::Recurrence prog = compileTestProgram("hgrn2");
  naive::Sizes s{2, 25, 2, 6, 4};
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 8);
  reference::Result r = runOrFail(prog, p);
  naive::Buffer key = p.inputs["g"].data;
  for (double& x : key) x = 1.0 - std::exp(x);
  naive::Buffer ht;
  naive::Buffer o = naive::gla(s, p.inputs["q"].data, key, p.inputs["v"].data, p.inputs["g"].data, {}, 1.0,
                               p.initialStates["S"].data, ht);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["S"].data, ht), kTolerance);
}

TEST(Interpreter, LinearAttentionIsUngatedGla) {
  rir::Recurrence prog = compileTestProgram("linear_attention");
  naive::Sizes s{1, 22, 3, 4, 4};
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 9);
  reference::Result r = runOrFail(prog, p);
  naive::Buffer ht;
  naive::Buffer o = naive::gla(s, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data, {}, {}, 0.5,
                               p.initialStates["S"].data, ht);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), kTolerance);
  EXPECT_LT(maxRelativeError(r.finalStates["S"].data, ht), kTolerance);
}

TEST(Interpreter, SimpleGlaMatchesParallelForm) {
  rir::Recurrence prog = compileLibrary("simple_gla");
  naive::Sizes s{2, 45, 2, 6, 5};
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 10);
  reference::Result r = runOrFail(prog, p);
  naive::Buffer o = naive::simpleGlaParallel(s, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data,
                                             p.inputs["g"].data, 1.0 / std::sqrt(6.0), p.initialStates["S"].data);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), 1e-10);
}

TEST(Interpreter, RetentionMatchesParallelForm) {
  rir::Recurrence prog = compileLibrary("retention");
  naive::Sizes s{1, 60, 3, 4, 6};
  Problem p = reference::makeRandomProblem(prog, shapeOf(s.B, s.T, s.H, {{"K", s.K}, {"V", s.V}}, true), 11);
  reference::Result r = runOrFail(prog, p);
  // Retention is simple GLA with g_t = log(gamma_h) at every step.
  naive::Buffer g(static_cast<size_t>(s.B * s.T * s.H));
  for (int64_t i = 0; i < static_cast<int64_t>(g.size()); ++i) g[i] = std::log(1.0 - std::pow(2.0, -5.0 - (i % s.H)));
  naive::Buffer o = naive::simpleGlaParallel(s, p.inputs["q"].data, p.inputs["k"].data, p.inputs["v"].data, g,
                                             0.5, p.initialStates["S"].data);
  EXPECT_LT(maxRelativeError(r.outputs["o"].data, o), 1e-10);
}

// Slices token range [bos, eos) of a packed [1, T, H, ...] tensor into a [1, eos - bos, H, ...] one.
Tensor sliceTokens(const Tensor& t, int64_t bos, int64_t eos) {
  std::vector<int64_t> shape = t.shape;
  shape[1] = eos - bos;
  Tensor out(shape);
  int64_t perToken = t.numel() / std::max<int64_t>(t.shape[1], 1);
  std::copy(t.data.begin() + bos * perToken, t.data.begin() + eos * perToken, out.data.begin());
  return out;
}

// Slices sequence n of an [N, ...] tensor into a [1, ...] one.
Tensor sliceSequence(const Tensor& t, int64_t n) {
  std::vector<int64_t> shape = t.shape;
  shape[0] = 1;
  Tensor out(shape);
  int64_t per = out.numel();
  std::copy(t.data.begin() + n * per, t.data.begin() + (n + 1) * per, out.data.begin());
  return out;
}

class VarlenEqualsSeparateRuns : public ::testing::TestWithParam<std::string> {};

TEST_P(VarlenEqualsSeparateRuns, EverySequenceMatches) {
  const std::string& name = GetParam();
  rir::Recurrence prog = testing::compileAny(name);
  ProblemShape shape = shapeOf(1, 0, 2, {{"K", 5}, {"V", 4}, {"M", 3}}, true);
  shape.cuSeqlens = {0, 7, 7, 20, 21, 40};  // includes a zero-length and a length-1 sequence
  shape.time = shape.cuSeqlens.back();
  Problem packed = reference::makeRandomProblem(prog, shape, 12);
  reference::Result all = runOrFail(prog, packed);
  for (size_t n = 0; n + 1 < shape.cuSeqlens.size(); ++n) {
    int64_t bos = shape.cuSeqlens[n], eos = shape.cuSeqlens[n + 1];
    Problem one = packed;
    one.cuSeqlens.clear();
    one.time = eos - bos;
    for (auto& [k, t] : one.inputs) t = sliceTokens(packed.inputs.at(k), bos, eos);
    for (auto& [k, t] : one.initialStates) t = sliceSequence(packed.initialStates.at(k), static_cast<int64_t>(n));
    reference::Result single = runOrFail(prog, one);
    for (auto& [k, t] : single.outputs)
      EXPECT_EQ(t.data, sliceTokens(all.outputs.at(k), bos, eos).data) << name << " output " << k << " seq " << n;
    for (auto& [k, t] : single.finalStates)
      EXPECT_EQ(t.data, sliceSequence(all.finalStates.at(k), static_cast<int64_t>(n)).data)
          << name << " state " << k << " seq " << n;
  }
  // The zero-length sequence's final state is its initial state.
  for (auto& [k, t] : all.finalStates)
    EXPECT_EQ(sliceSequence(t, 1).data, sliceSequence(packed.initialStates.at(k), 1).data) << name << " " << k;
}

class StateChaining : public ::testing::TestWithParam<std::string> {};

TEST_P(StateChaining, TwoRunsWithCarriedStateEqualOneRun) {
  const std::string& name = GetParam();
  rir::Recurrence prog = testing::compileAny(name);
  const int64_t T1 = 13, T2 = 18;
  Problem whole = reference::makeRandomProblem(prog, shapeOf(2, T1 + T2, 2, {{"K", 4}, {"V", 6}, {"M", 3}}, true), 13);
  reference::Result full = runOrFail(prog, whole);

  auto timeSlice = [](const Tensor& t, int64_t from, int64_t to) {
    std::vector<int64_t> shape = t.shape;
    shape[1] = to - from;
    Tensor out(shape);
    int64_t inner = t.numel() / (t.shape[0] * t.shape[1]);
    for (int64_t b = 0; b < t.shape[0]; ++b)
      std::copy(t.data.begin() + (b * t.shape[1] + from) * inner, t.data.begin() + (b * t.shape[1] + to) * inner,
                out.data.begin() + b * (to - from) * inner);
    return out;
  };
  Problem first = whole, second = whole;
  first.time = T1;
  second.time = T2;
  for (auto& [k, t] : first.inputs) t = timeSlice(whole.inputs.at(k), 0, T1);
  for (auto& [k, t] : second.inputs) t = timeSlice(whole.inputs.at(k), T1, T1 + T2);
  reference::Result a = runOrFail(prog, first);
  second.initialStates = a.finalStates;
  reference::Result b = runOrFail(prog, second);
  for (auto& [k, t] : full.outputs) {
    EXPECT_LT(maxRelativeError(timeSlice(t, 0, T1).data, a.outputs.at(k).data), kTolerance) << k;
    EXPECT_LT(maxRelativeError(timeSlice(t, T1, T1 + T2).data, b.outputs.at(k).data), kTolerance) << k;
  }
  for (auto& [k, t] : full.finalStates) EXPECT_LT(maxRelativeError(t.data, b.finalStates.at(k).data), kTolerance) << k;
}

const std::vector<std::string> kAllPrograms = {"gla", "simple_gla", "retention", "gsa",
                                              "linear_attention", "gla_gv", "hgrn2", "rwkv6"};
std::string programName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }
INSTANTIATE_TEST_SUITE_P(AllPrograms, VarlenEqualsSeparateRuns, ::testing::ValuesIn(kAllPrograms), programName);
INSTANTIATE_TEST_SUITE_P(AllPrograms, StateChaining, ::testing::ValuesIn(kAllPrograms), programName);

TEST(Interpreter, ZeroLengthSequenceAlone) {
  rir::Recurrence prog = compileLibrary("gla");
  ProblemShape shape = shapeOf(1, 0, 1, {{"K", 3}, {"V", 3}}, true);
  shape.cuSeqlens = {0, 0};
  Problem p = reference::makeRandomProblem(prog, shape, 14);
  reference::Result r = runOrFail(prog, p);
  EXPECT_EQ(r.outputs["o"].numel(), 0);
  EXPECT_EQ(r.finalStates["S"].data, p.initialStates["S"].data);
}

// Bad inputs are reported with the argument, the expected and the actual value.
TEST(InterpreterErrors, MessagesNameArgumentExpectedAndActual) {
  rir::Recurrence prog = compileLibrary("gla");
  auto expectError = [&](const Problem& p, const std::string& fragment) {
    std::string error;
    EXPECT_FALSE(reference::run(prog, p, error).has_value());
    EXPECT_NE(error.find(fragment), std::string::npos) << "error was: " << error;
  };
  Problem good = reference::makeRandomProblem(prog, shapeOf(1, 8, 2, {{"K", 4}, {"V", 4}}, false), 15);
  Problem p = good;
  p.inputs.erase("q");
  expectError(p, "input 'q' is missing; expected shape [1, 8, 2, 4]");
  p = good;
  p.inputs["k"] = Tensor({1, 8, 2, 5});
  expectError(p, "input 'k' has shape [1, 8, 2, 5]; expected [1, 8, 2, 4]");
  p = good;
  p.cuSeqlens = {0, 5, 3, 8};
  expectError(p, "cu_seqlens must be non-decreasing");
  p.cuSeqlens = {0, 5, 7};
  expectError(p, "cu_seqlens[-1] must equal the total length T = 8; got 7");
  p.cuSeqlens = {1, 8};
  expectError(p, "cu_seqlens[0] must be 0; got 1");
  p = good;
  p.dims.erase("V");
  expectError(p, "dim 'V' needs a size");
  p = good;
  p.initialStates["S"] = Tensor({2, 2, 4, 4});
  expectError(p, "initial state 'S' has shape [2, 2, 4, 4]; expected [1, 2, 4, 4]");
  p = good;
  p.scalarParams["nope"] = 1;
  expectError(p, "'nope' is not a scalar param of @gla");
  Problem two = reference::makeRandomProblem(prog, shapeOf(2, 8, 2, {{"K", 4}, {"V", 4}}, false), 15);
  two.cuSeqlens = {0, 8};
  expectError(two, "cu_seqlens needs batch size 1");
}

TEST(InterpreterErrors, RequiredVectorParamMissing) {
  rir::Recurrence prog = compileTestProgram("rwkv6");
  Problem p = reference::makeRandomProblem(prog, shapeOf(1, 4, 2, {{"K", 3}, {"V", 3}}, false), 16);
  p.vectorParams.erase("u");
  std::string error;
  EXPECT_FALSE(reference::run(prog, p, error).has_value());
  EXPECT_EQ(error, "param 'u' is missing; expected shape [2, 3]");
}

}  // namespace
}  // namespace lina
