// The LLVM CPU backend against the reference interpreter: every library program and the
// tests/programs variants, forward and both passes of the derived backward, lowered to CIR
// (recurrent, and fused at chunk sizes with partial chunks), compiled through LLVM for this CPU
// and run on threads in fp32. Fixed length with initial states, and varlen with empty sequences;
// fp32 against double within 1e-4 of max(1, |reference|).
#include "compiler/cir/lower.h"
#include "compiler/passes/derive_backward.h"
#include "runtime/cpu/llvm_backend.h"
#include "support/error.h"
#include "test_support.h"

namespace lina {
namespace {

void expectLlvmMatchesReference(const rir::Recurrence& program, bool varlen, const std::string& tag) {
  reference::ProblemShape shape = varlen ? testing::smallShape(0, {0, 0, 5, 6, 23}) : testing::smallShape(19);
  shape.dims = {{"K", 8}, {"V", 5}, {"M", 4}};
  reference::Problem p = reference::makeRandomProblem(program, shape, 7);
  reference::Result ref = testing::runOrFail(program, p);
  for (auto [strategy, chunk] : {std::pair{cir::Strategy::Recurrent, 1}, std::pair{cir::Strategy::Fused, 4},
                                 std::pair{cir::Strategy::Fused, 16}}) {
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<cir::Kernel> k = cir::lowerRirToCir(program, strategy, chunk, diags);
    ASSERT_TRUE(k.has_value()) << tag;
    const std::string what = tag + " chunk " + std::to_string(chunk) + (varlen ? " varlen" : "");
    reference::Result got = cpu::runKernel(*k, p, 2);
    for (const auto& [name, t] : ref.outputs)
      EXPECT_LT(testing::maxRelativeError(got.outputs.at(name).data, t.data), 1e-4) << what << " output " << name;
    for (const auto& [name, t] : ref.finalStates)
      EXPECT_LT(testing::maxRelativeError(got.finalStates.at(name).data, t.data), 1e-4) << what << " state " << name;
  }
}

class LlvmBackend : public ::testing::TestWithParam<std::string> {};

TEST_P(LlvmBackend, ForwardAndBothBackwardPassesMatchTheReference) {
  rir::Recurrence f = testing::compileAny(GetParam());
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<rir::Recurrence> a = passes::deriveBackwardPassA(f, diags);
  std::optional<passes::DerivedPassB> b = passes::deriveBackwardPassB(f, diags);
  ASSERT_TRUE(a && b);
  for (auto [program, role] : {std::pair{&f, "forward"}, std::pair{&*a, "pass A"}, std::pair{&b->program, "pass B"}})
    for (bool varlen : {false, true}) expectLlvmMatchesReference(*program, varlen, GetParam() + " " + role);
}

INSTANTIATE_TEST_SUITE_P(AllPrograms, LlvmBackend,
                         ::testing::Values("gla", "simple_gla", "retention", "gsa", "linear_attention", "gla_gv", "hgrn2",
                                           "rwkv6"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST(LlvmBackend, ModuleTextAndBadInput) {
  rir::Recurrence f = testing::compileAny("gla");
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<cir::Kernel> k = cir::lowerRirToCir(f, cir::Strategy::Fused, 16, diags);
  ASSERT_TRUE(k);
  const std::string text = cpu::llvmModuleText(*k, {{"K", 64}, {"V", 64}}, true);
  EXPECT_NE(text.find("define void @" + k->name), std::string::npos);
  EXPECT_NE(text.find("<8 x float>"), std::string::npos) << "the O3 pipeline vectorises for the host (AVX2 or wider)";
  reference::Problem p = reference::makeRandomProblem(f, testing::smallShape(5), 1);
  p.inputs.erase("q");
  try {
    (void)cpu::runKernel(*k, p);
    ADD_FAILURE() << "a missing input must be an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("input 'q' is missing"), std::string::npos) << e.what();
  }
  std::optional<cir::Kernel> split = cir::lowerRirToCir(f, cir::Strategy::Split, 16, diags, cir::Phase::States);
  ASSERT_TRUE(split);
  EXPECT_THROW((void)cpu::llvmModuleText(*split, {{"K", 64}, {"V", 64}}, false), Error);
}

}  // namespace
}  // namespace lina
