// Frontend units: diagnostics rendering, RIR print -> parse -> print identity, the verifier.
#include <sstream>

#include "compiler/passes/passes.h"
#include "compiler/rir/parser.h"
#include "compiler/rir/printer.h"
#include "compiler/rir/verify.h"
#include "dsl/parse.h"
#include "test_support.h"

namespace lina {
namespace {

TEST(Diagnostics, RendersLocationSourceLineAndCaret) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  uint32_t f = sources.addBuffer("x.lina", "line one\n  o = q @ S\n");
  diags.error(SourceRange(SourceLoc{f, 2, 7}, SourceLoc{f, 2, 12}), "bad read");
  std::ostringstream os;
  diags.print(os);
  EXPECT_EQ(os.str(), "x.lina:2:7: error: bad read\n  o = q @ S\n      ^~~~~\n");
}

TEST(Diagnostics, NoLocationStillNamesTheTool) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  diags.error(SourceRange(), "something");
  std::ostringstream os;
  diags.print(os);
  EXPECT_EQ(os.str(), "lina: error: something\n");
}

std::vector<std::pair<std::string, std::string>> allPrograms() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const library::Program& p : library::programs()) out.emplace_back(p.path, p.source);
  for (const char* name : {"linear_attention", "gla_gv", "hgrn2", "rwkv6"}) {
    std::string path = std::string(LINA_SOURCE_DIR) + "/tests/programs/" + name + ".lina";
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    out.emplace_back(path, text.str());
  }
  return out;
}

std::string reprint(const std::string& text) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<rir::Module> m = rir::parse(sources, sources.addBuffer("in.rir", text), diags);
  std::ostringstream errors;
  diags.print(errors);
  EXPECT_TRUE(m.has_value()) << errors.str();
  EXPECT_TRUE(m && rir::verify(*m, diags)) << errors.str();
  return m ? rir::toString(*m) : "";
}

// Deeply nested expressions are a reported limit, never a stack overflow: 256 levels parse,
// 257 are an error at the expression, and 100000 are the same one error.
TEST(Frontend, ExpressionDepthIsBounded) {
  auto parseNested = [](int depth, std::string& errors) {
    std::string expr;
    for (int i = 0; i < depth - 1; ++i) expr += "-(";
    expr += "q" + std::string(static_cast<size_t>(depth - 1), ')');
    const std::string src = "recurrence r {\n dims K, V\n in q[K], k[K], v[V]\n state S[K, V]\n out o[V]\n"
                            " S = S + outer(k, v)\n o = " + expr + " @ S\n}\n";
    SourceManager sources;
    DiagnosticEngine diags(sources);
    const bool ok = dsl::parse(sources, sources.addBuffer("deep.lina", src), diags).has_value() && !diags.hasErrors();
    std::ostringstream os;
    diags.print(os);
    errors = os.str();
    return ok;
  };
  std::string errors;
  EXPECT_TRUE(parseNested(255, errors)) << errors;  // with the contraction above it: 256
  EXPECT_FALSE(parseNested(300, errors));
  EXPECT_NE(errors.find("deep.lina:7:"), std::string::npos) << errors;
  EXPECT_NE(errors.find("expression nested more than 256 levels deep"), std::string::npos) << errors;
  EXPECT_FALSE(parseNested(100000, errors));
  EXPECT_EQ(errors.find("nested more than", errors.find("nested more than") + 1), std::string::npos) << "one error";
}

TEST(RirRoundTrip, EveryProgramAtEveryStage) {
  for (const auto& [path, source] : allPrograms()) {
    SourceManager sources;
    DiagnosticEngine diags(sources);
    uint32_t file = sources.addBuffer(path, source);
    std::optional<rir::Module> m = lowerToRir(sources, file, diags);
    ASSERT_TRUE(m.has_value()) << path;
    std::string text = rir::toString(*m);
    EXPECT_EQ(reprint(text), text) << path << " after lowering";
    for (const std::string& pass : rirPipelineOrder()) {
      ASSERT_TRUE(runSinglePass(*m, pass, diags)) << path << " " << pass;
      text = rir::toString(*m);
      EXPECT_EQ(reprint(text), text) << path << " after " << pass;
    }
  }
}

TEST(RirRoundTrip, NumbersKeepEveryBit) {
  for (double x : {0.1, -0.5, 1e-300, 3.0, 1.0 / 3.0, 6.02214076e23, -0.0}) {
    std::string s = rir::formatNumber(x);
    EXPECT_EQ(std::strtod(s.c_str(), nullptr), x) << s;
  }
}

TEST(Pipeline, GatesEndInLogSpaceAndDeadExpIsGone) {
  rir::Recurrence rec = testing::compileLibrary("retention");
  const rir::Inst* update = nullptr;
  for (const rir::Inst& inst : rec.body)
    if (inst.op == rir::Op::Update) update = &inst;
  ASSERT_NE(update, nullptr);
  EXPECT_EQ(update->rows.space, rir::GateSpace::Log);
  const rir::Inst* gate = rec.definition(update->rows.value);
  ASSERT_NE(gate, nullptr);
  EXPECT_EQ(gate->op, rir::Op::Log);  // log(gamma): gamma depends on the head
  rir::Recurrence gla = testing::compileLibrary("gla");
  for (const rir::Inst& inst : gla.body) EXPECT_NE(inst.op, rir::Op::Exp) << "exp(g) should be dead after dce";
}

TEST(Pipeline, FoldConstantsEvaluatesLiteralArithmetic) {
  rir::Recurrence rec = testing::compileSource("fold.lina", R"(
recurrence r {
  dims K, V
  in q[K], k[K], v[V]
  state S[K, V]
  out o[V]
  const c = 1 - 2 ** -5
  S = c * S + outer(k, v)
  o = 1 * (q @ S)
})");
  int consts = 0;
  bool sawLogConst = false;
  for (const rir::Inst& inst : rec.body) {
    if (inst.op == rir::Op::Const) {
      ++consts;
      sawLogConst = sawLogConst || std::abs(inst.number - std::log(1 - std::pow(2.0, -5))) < 1e-15;
    }
    EXPECT_NE(inst.op, rir::Op::Mul) << "1 * x should fold away";
  }
  EXPECT_EQ(consts, 1);
  EXPECT_TRUE(sawLogConst);
}

TEST(Verifier, RejectsReadPlacedAfterItsUpdateButMarkedBefore) {
  rir::Recurrence rec = testing::compileLibrary("gla");
  for (rir::Inst& inst : rec.body)
    if (inst.op == rir::Op::Read) inst.afterUpdate = false;
  SourceManager sources;
  DiagnosticEngine diags(sources);
  EXPECT_FALSE(rir::verify(rec, diags));
  std::ostringstream os;
  diags.print(os);
  EXPECT_NE(os.str().find("read.before of 'S' is placed after its update"), std::string::npos) << os.str();
}

TEST(Verifier, RejectsNonLinearWrite) {
  // The write term of S depends on a read of S.
  std::string text = R"(recurrence @bad {
  dims K, V
  in q : [K]
  in k : [K]
  state S : [K, V]
  out o : [V]
  chunk 64
  step {
    %q = input q : [K]
    %r = read.before S, %q over K : [V]
    %k = input k : [K]
    update S rows none cols none outer(%k, %r)
    %o = read.after S, %q over K : [V]
    output o = %o
  }
}
)";
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<rir::Module> m = rir::parse(sources, sources.addBuffer("bad.rir", text), diags);
  ASSERT_TRUE(m.has_value());
  EXPECT_FALSE(rir::verify(*m, diags));
  std::ostringstream os;
  diags.print(os);
  EXPECT_NE(os.str().find("depends on a read of 'S' (not linear)"), std::string::npos) << os.str();
}

TEST(Verifier, EveryLibraryProgramVerifiesWithCanonicalGates) {
  for (const library::Program& p : library::programs()) {
    rir::Recurrence rec = testing::compileLibrary(p.name);
    SourceManager sources;
    DiagnosticEngine diags(sources);
    EXPECT_TRUE(rir::verify(rec, diags, {.requireKnownStateShapes = true, .requireLogGates = true})) << p.name;
  }
}

}  // namespace
}  // namespace lina

#include "compiler/cir/lower.h"
#include "compiler/cir/parser.h"
#include "compiler/cir/printer.h"
#include "compiler/cir/verify.h"

namespace lina {
namespace {

TEST(CirRoundTrip, EveryProgramEveryStrategy) {
  for (const auto& [path, source] : allPrograms()) {
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<rir::Module> m = compileToRir(sources, sources.addBuffer(path, source), diags);
    ASSERT_TRUE(m.has_value()) << path;
    for (const rir::Recurrence& rec : m->recurrences) {
      for (auto [strategy, chunk] : {std::pair{cir::Strategy::Fused, 64}, std::pair{cir::Strategy::Recurrent, 1}}) {
        std::optional<cir::Kernel> k = cir::lowerRirToCir(rec, strategy, chunk, diags);
        ASSERT_TRUE(k.has_value()) << path;
        std::ostringstream text;
        cir::print(text, *k);
        uint32_t file = sources.addBuffer("k.cir", text.str());
        std::optional<cir::Kernel> back = cir::parse(sources, file, diags);
        std::ostringstream errors;
        diags.print(errors);
        ASSERT_TRUE(back.has_value()) << errors.str() << text.str();
        EXPECT_TRUE(cir::verify(*back, diags)) << text.str();
        std::ostringstream again;
        cir::print(again, *back);
        EXPECT_EQ(again.str(), text.str()) << path;
      }
    }
  }
}

}  // namespace
}  // namespace lina
