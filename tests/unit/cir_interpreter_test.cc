// The chunked algorithm, checked on the CPU: every program and both passes of its derived
// backward are lowered to CIR at several chunk sizes (partial chunks included) and run by the CIR
// interpreter, which must agree with the RIR interpreter on outputs and final states (double
// precision). This is the math the CUDA kernels implement; a lowering bug shows here, in CI.
#include "compiler/cir/interpreter.h"
#include "compiler/cir/lower.h"
#include "compiler/passes/derive_backward.h"
#include "test_support.h"

namespace lina {
namespace {

// Outputs and final states agree to double precision.
void expectSameResult(const reference::Result& ref, const reference::Result& got, const std::string& tag) {
  for (const auto& [name, t] : ref.outputs)
    EXPECT_LT(testing::maxRelativeError(got.outputs.at(name).data, t.data), 1e-10) << tag << " output " << name;
  for (const auto& [name, t] : ref.finalStates)
    EXPECT_LT(testing::maxRelativeError(got.finalStates.at(name).data, t.data), 1e-10) << tag << " state " << name;
}

void expectChunkedMatchesReference(const rir::Recurrence& program, bool varlen) {
  reference::ProblemShape shape = varlen ? testing::smallShape(0, {0, 0, 5, 6, 17}) : testing::smallShape(11);
  reference::Problem p = reference::makeRandomProblem(program, shape, 41);
  reference::Result ref = testing::runOrFail(program, p);
  for (auto [strategy, chunk] : {std::pair{cir::Strategy::Recurrent, 1}, std::pair{cir::Strategy::Fused, 3},
                                 std::pair{cir::Strategy::Fused, 4}, std::pair{cir::Strategy::Fused, 16}}) {
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<cir::Kernel> k = cir::lowerRirToCir(program, strategy, chunk, diags);
    ASSERT_TRUE(k.has_value()) << program.name;
    std::string error;
    std::optional<reference::Result> got = cir::interpret(*k, p, error);
    ASSERT_TRUE(got.has_value()) << error;
    expectSameResult(ref, *got, program.name + " chunk " + std::to_string(chunk) + (varlen ? " varlen" : ""));
  }
  // The split strategy: the walk keeps only the carries, the outputs phase only the reads and
  // stores, and the two together give the reference's outputs and final states.
  bool runningSum = false;
  for (const rir::Inst& inst : program.body) runningSum = runningSum || inst.op == rir::Op::RunningSum;
  for (int chunk : {3, 16}) {
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<cir::Kernel> walk = cir::lowerRirToCir(program, cir::Strategy::Split, chunk, diags, cir::Phase::States);
    std::optional<cir::Kernel> outputs = cir::lowerRirToCir(program, cir::Strategy::Split, chunk, diags, cir::Phase::Outputs);
    if (runningSum) {
      // A running sum is carried across chunks but has no snapshot: the split is refused.
      EXPECT_FALSE(walk || outputs) << program.name;
      EXPECT_NE(testing::render(diags).find("cannot use the split strategy"), std::string::npos);
      continue;
    }
    ASSERT_TRUE(walk && outputs) << program.name << ": " << testing::render(diags);
    for (const cir::Op& op : walk->ops)
      EXPECT_TRUE(op.kind != cir::OpKind::Attend && op.kind != cir::OpKind::Store) << program.name << " walk keeps a read";
    for (const cir::Op& op : outputs->ops) EXPECT_NE(op.kind, cir::OpKind::Carry) << program.name;
    std::string error;
    std::optional<reference::Result> got = cir::interpretSplit(*walk, *outputs, p, error);
    ASSERT_TRUE(got.has_value()) << error;
    expectSameResult(ref, *got, program.name + " split chunk " + std::to_string(chunk) + (varlen ? " varlen" : ""));
  }
}

class ChunkedAlgorithm : public ::testing::TestWithParam<std::string> {};

TEST_P(ChunkedAlgorithm, ForwardAndBothBackwardPassesMatchTheReference) {
  rir::Recurrence f = testing::compileAny(GetParam());
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<rir::Recurrence> a = passes::deriveBackwardPassA(f, diags);
  std::optional<passes::DerivedPassB> b = passes::deriveBackwardPassB(f, diags);
  ASSERT_TRUE(a && b);
  for (const rir::Recurrence* program : {&f, &*a, &b->program})
    for (bool varlen : {false, true}) expectChunkedMatchesReference(*program, varlen);
}

INSTANTIATE_TEST_SUITE_P(AllPrograms, ChunkedAlgorithm,
                         ::testing::Values("gla", "simple_gla", "retention", "gsa", "linear_attention", "gla_gv",
                                           "hgrn2", "rwkv6"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace lina
