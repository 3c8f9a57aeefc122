// Pass A of the derived backward (compiler/passes/derive_backward.h) run on the reference
// interpreter: the gradients of the query-side inputs (those that reach a state only as a read
// operand) are complete after pass A, and must equal the exact reference backward.
#include "compiler/passes/derive_backward.h"
#include "compiler/reference/backward.h"
#include "compiler/rir/verify.h"
#include "test_support.h"

namespace lina {
namespace {

struct Case {
  std::string program;
  std::vector<std::string> queryInputs;  // complete after pass A
  std::vector<std::string> vectorParams;  // per-step partials, summed over steps here
};

class PassA : public ::testing::TestWithParam<Case> {};

TEST_P(PassA, QuerySideGradientsMatchTheReferenceBackward) {
  const Case& c = GetParam();
  rir::Recurrence f = testing::compileAny(c.program);
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<rir::Recurrence> a = passes::deriveBackwardPassA(f, diags);
  ASSERT_TRUE(a.has_value());
  ASSERT_TRUE(rir::verify(*a, diags, {.requireKnownStateShapes = true, .requireLogGates = true}));

  reference::ProblemShape shape = testing::smallShape(9);
  reference::Problem p = reference::makeRandomProblem(f, shape, 21);
  reference::Result forward = testing::runOrFail(f, p);
  reference::Cotangents ct = reference::randomCotangents(forward, 22);
  std::string error;
  std::optional<reference::Gradients> exact = reference::runBackward(f, p, ct, error);
  ASSERT_TRUE(exact.has_value()) << error;

  reference::Problem pa = p;  // pass A's inputs: the forward's plus the output cotangents
  for (const auto& [name, t] : ct.outputs) pa.inputs["d_" + name] = t;
  reference::Result ra = testing::runOrFail(*a, pa);
  for (const std::string& in : c.queryInputs) {
    ASSERT_TRUE(ra.outputs.count("dA_" + in)) << in;
    EXPECT_LT(testing::maxRelativeError(ra.outputs["dA_" + in].data, exact->inputs[in].data), 1e-11) << c.program << " d" << in;
  }
  for (const std::string& prm : c.vectorParams) {
    const reference::Tensor& perStep = ra.outputs["dA_" + prm];  // [B, T, H, d]
    std::vector<double> summed(exact->vectorParams[prm].data.size(), 0.0);
    int64_t d = perStep.shape[3], H = perStep.shape[2];
    for (int64_t i = 0; i < perStep.numel(); ++i) summed[((i / d) % H) * d + i % d] += perStep.data[i];
    EXPECT_LT(testing::maxRelativeError(summed, exact->vectorParams[prm].data), 1e-11) << c.program << " d" << prm;
  }
}

INSTANTIATE_TEST_SUITE_P(Programs, PassA,
                         ::testing::Values(Case{"gla", {"q"}, {}}, Case{"simple_gla", {"q"}, {}},
                                           Case{"retention", {"q"}, {}}, Case{"gsa", {"q"}, {}},
                                           Case{"linear_attention", {"q"}, {}}, Case{"gla_gv", {"q"}, {}},
                                           Case{"hgrn2", {"q"}, {}}, Case{"rwkv6", {"r"}, {"u"}}),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.program; });

}  // namespace
}  // namespace lina

#include "codegen/cuda/emit_cuda.h"
#include "compiler/cir/lower.h"
#include "runtime/nvrtc_compiler.h"

namespace lina {
namespace {

// Both passes are canonical RIR (plus running_sum): the forward's chunk lowering, emitter and
// NVRTC take them unchanged.
TEST(BackwardKernels, PassesAAndBLowerAndCompileForEveryLibraryProgram) {
  for (const library::Program& lib : library::programs()) {
    rir::Recurrence f = testing::compileLibrary(lib.name);
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<rir::Recurrence> a = passes::deriveBackwardPassA(f, diags);
    std::optional<passes::DerivedPassB> b = passes::deriveBackwardPassB(f, diags);
    ASSERT_TRUE(a.has_value() && b.has_value()) << lib.name;
    for (const rir::Recurrence* pass : {&*a, &b->program})
    for (auto [strategy, chunk] : {std::pair{cir::Strategy::Fused, 32}, std::pair{cir::Strategy::Recurrent, 1}}) {
      std::optional<cir::Kernel> k = cir::lowerRirToCir(*pass, strategy, chunk, diags);
      std::ostringstream errors;
      diags.print(errors);
      ASSERT_TRUE(k.has_value()) << lib.name << errors.str();
      cir::Specialization spec;
      spec.dims = {{"K", 64}, {"V", 64}, {"M", 32}};
      spec.dtype = "bf16";
      codegen::EmittedKernel emitted = codegen::emitCuda(*k, spec);
      EXPECT_FALSE(runtime::compileToCubin(emitted.source, emitted.name + ".cu", "sm_90a").cubin.empty()) << emitted.name;
    }
  }
}

}  // namespace
}  // namespace lina

#include "compiler/reference/derived_backward.h"

namespace lina {
namespace {

class DerivedBackward : public ::testing::TestWithParam<std::string> {};

// Passes A and B together give every gradient: inputs, vector params, initial states.
TEST_P(DerivedBackward, MatchesTheReferenceBackwardEverywhere) {
  rir::Recurrence f = testing::compileAny(GetParam());
  for (bool varlen : {false, true}) {
    reference::ProblemShape shape = varlen ? testing::smallShape(0, {0, 0, 4, 9}) : testing::smallShape(7);
    reference::Problem p = reference::makeRandomProblem(f, shape, 31);
    reference::Result forward = testing::runOrFail(f, p);
    reference::Cotangents ct = reference::randomCotangents(forward, 32);
    std::string error;
    std::optional<reference::Gradients> exact = reference::runBackward(f, p, ct, error);
    ASSERT_TRUE(exact.has_value()) << error;
    std::optional<reference::Gradients> derived = reference::runDerivedBackward(f, p, ct, error);
    ASSERT_TRUE(derived.has_value()) << error;
    std::string tag = GetParam() + (varlen ? " varlen" : " fixed");
    for (const auto& [name, t] : exact->inputs)
      EXPECT_LT(testing::maxRelativeError(derived->inputs[name].data, t.data), 1e-10) << tag << " d" << name;
    for (const auto& [name, t] : exact->initialStates)
      EXPECT_LT(testing::maxRelativeError(derived->initialStates[name].data, t.data), 1e-10) << tag << " d" << name << "0";
    for (const auto& [name, t] : exact->vectorParams)
      EXPECT_LT(testing::maxRelativeError(derived->vectorParams[name].data, t.data), 1e-10) << tag << " d" << name;
    for (const auto& [name, v] : exact->scalarParams) {
      ASSERT_TRUE(derived->scalarParams.count(name)) << tag << " d" << name;
      EXPECT_LT(std::abs(derived->scalarParams[name] - v) / std::max(1.0, std::abs(v)), 1e-10) << tag << " d" << name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllPrograms, DerivedBackward,
                         ::testing::Values("gla", "simple_gla", "retention", "gsa", "linear_attention", "gla_gv",
                                           "hgrn2", "rwkv6"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

}  // namespace
}  // namespace lina
