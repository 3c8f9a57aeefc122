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
#include <algorithm>
#include <cstdlib>

namespace lina {
namespace {

// Both passes are canonical RIR (plus running_sum): the forward's chunk lowering, emitter and
// NVRTC take them unchanged.
size_t nvrtcEvery() {
  const char* e = std::getenv("LINA_NVRTC_EVERY");
  return e ? std::max<size_t>(1, static_cast<size_t>(std::atoi(e))) : 1;
}

TEST(BackwardKernels, PassesAAndBLowerAndCompileForEveryLibraryProgram) {
  size_t compiled = 0;
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
      // LINA_NVRTC_EVERY=N (the ASan pass) compiles every N-th kernel: NVRTC itself is not
      // instrumented, and NvrtcCompile.EveryLibraryBackwardKernelForSm90a compiles them all.
      if (compiled++ % nvrtcEvery() != 0) continue;
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

#include "compiler/cir/lower.h"

namespace lina {
namespace {

// The blocked backward (runtime/program_backward.cc, docs/backward-design.md) rests on this: when
// nothing in the forward reduces over a dim X, the problem cut into blocks of X is a set of
// problems whose losses add up. The exact gradients of the whole problem are then the blocks'
// gradients: slices for tensors with X, sums for the rest (a state without X gets its d(final
// state) in one block).
reference::Tensor sliceLast(const reference::Tensor& t, int axis, int64_t begin, int64_t count) {
  std::vector<int64_t> shape = t.shape;
  int64_t full = shape[axis];
  shape[axis] = count;
  reference::Tensor out(shape);
  int64_t inner = 1, outer = 1;
  for (size_t i = axis + 1; i < t.shape.size(); ++i) inner *= t.shape[i];
  for (int i = 0; i < axis; ++i) outer *= t.shape[i];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t x = 0; x < count; ++x)
      for (int64_t i = 0; i < inner; ++i)
        out.data[(o * count + x) * inner + i] = t.data[(o * full + begin + x) * inner + i];
  return out;
}

TEST(BlockedBackward, ASeparableDimCutsTheGradientsIntoBlocks) {
  for (const char* name : {"gla", "simple_gla", "retention", "gla_gv", "hgrn2", "gsa"}) {
    rir::Recurrence f = testing::compileAny(name);
    const std::string X = cir::tileableDim(f);
    ASSERT_EQ(X, "V") << name;
    reference::ProblemShape shape = testing::smallShape(9);
    shape.dims[X] = 6;
    reference::Problem p = reference::makeRandomProblem(f, shape, 41);
    reference::Cotangents ct = reference::randomCotangents(testing::runOrFail(f, p), 42);
    std::string error;
    std::optional<reference::Gradients> whole = reference::runBackward(f, p, ct, error);
    ASSERT_TRUE(whole.has_value()) << error;
    // Where X sits in a tensor: the last axis of a per-step tensor or vector param, the state's
    // axis 2 or 3; -1 when the tensor has no X.
    auto axisOf = [&](const std::string& what, const std::string& tensor) -> int {
      if (what == "input" || what == "output") {
        const rir::Decl* d = what == "input" ? f.input(tensor) : nullptr;
        if (!d)
          for (const rir::Decl& o : f.outputs)
            if (o.name == tensor) d = &o;
        return d && !d->shape.empty() && d->shape[0] == X ? 3 : -1;
      }
      if (what == "param") return f.param(tensor)->shape[0] == X ? 1 : -1;
      const rir::Decl* s = f.state(tensor);
      return s->shape[0] == X ? 2 : s->shape[1] == X ? 3 : -1;
    };
    reference::Gradients sum = *whole;  // same shapes; tensors without X summed, with X assembled
    for (auto* m : {&sum.inputs, &sum.initialStates, &sum.vectorParams})
      for (auto& [n, t] : *m) std::fill(t.data.begin(), t.data.end(), 0.0);
    for (auto& [n, v] : sum.scalarParams) v = 0;
    double worst = 0;
    for (int64_t begin : {0, 3}) {
      reference::Problem q = p;
      q.dims[X] = 3;
      for (auto& [n, t] : q.inputs)
        if (axisOf("input", n) >= 0) t = sliceLast(t, 3, begin, 3);
      for (auto& [n, t] : q.initialStates)
        if (axisOf("state", n) >= 0) t = sliceLast(t, axisOf("state", n), begin, 3);
      for (auto& [n, t] : q.vectorParams)
        if (axisOf("param", n) >= 0) t = sliceLast(t, 1, begin, 3);
      reference::Cotangents c = ct;
      for (auto& [n, t] : c.outputs)
        if (axisOf("output", n) >= 0) t = sliceLast(t, 3, begin, 3);
      for (auto& [n, t] : c.finalStates) {
        if (axisOf("state", n) >= 0) t = sliceLast(t, axisOf("state", n), begin, 3);
        else if (begin > 0) std::fill(t.data.begin(), t.data.end(), 0.0);  // a shared state's dht: once
      }
      std::optional<reference::Gradients> block = reference::runBackward(f, q, c, error);
      ASSERT_TRUE(block.has_value()) << error;
      auto compare = [&](const char* what, const std::string& n, const reference::Tensor& got, reference::Tensor& acc,
                         const reference::Tensor& full) {
        int axis = axisOf(what, n);
        if (axis < 0) {
          for (size_t i = 0; i < got.data.size(); ++i) acc.data[i] += got.data[i];
        } else {
          worst = std::max(worst, testing::maxRelativeError(got.data, sliceLast(full, axis, begin, 3).data));
        }
      };
      for (const auto& [n, t] : block->inputs) compare("input", n, t, sum.inputs[n], whole->inputs[n]);
      for (const auto& [n, t] : block->initialStates) compare("state", n, t, sum.initialStates[n], whole->initialStates[n]);
      for (const auto& [n, t] : block->vectorParams) compare("param", n, t, sum.vectorParams[n], whole->vectorParams[n]);
      for (const auto& [n, v] : block->scalarParams) sum.scalarParams[n] += v;
    }
    auto check = [&](const char* what, const std::map<std::string, reference::Tensor>& m,
                     const std::map<std::string, reference::Tensor>& full) {
      for (const auto& [n, t] : m)
        if (axisOf(what, n) < 0) worst = std::max(worst, testing::maxRelativeError(t.data, full.at(n).data));
    };
    check("input", sum.inputs, whole->inputs);
    check("state", sum.initialStates, whole->initialStates);
    check("param", sum.vectorParams, whole->vectorParams);
    for (const auto& [n, v] : sum.scalarParams)
      worst = std::max(worst, std::abs(v - whole->scalarParams.at(n)) / std::max(1.0, std::abs(whole->scalarParams.at(n))));
    // GSA's key memory Sk has no V: every block computes the same Sk, its d(final state) enters
    // one block and its d(initial state) is the sum. The cut is exact there too; the runtime does
    // not block GSA yet (its states fit whole at K = V = 256, M = 64).
    EXPECT_LT(worst, 1e-10) << name;
  }
}

}  // namespace
}  // namespace lina
