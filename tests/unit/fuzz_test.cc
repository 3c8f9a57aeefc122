// Fuzz-style robustness: thousands of mutated DSL and RIR inputs through linac in-process. Each
// must end in success or a diagnostic (exit code 0 or 1 with "error:"), never a crash; under the
// ASan/UBSan build this also catches memory and UB errors.
#include <cstdlib>
#include <random>
#include <sstream>

#include "compiler/rir/printer.h"
#include "test_support.h"
#include "tools/linac/driver.h"

namespace lina {
namespace {

const char* const kFragments[] = {
    "S", "K", "V", "M", "q", "k", "v", "g", "head", "exp(", "log(", "softmax(", "sum(", "dot(", "outer(",
    "@", "*", "+", "-", "/", "**", "(", ")", "[", "]", "{", "}", ",", ":", ";", "=", "gate", "state", "in",
    "out", "param", "const", "dims", "chunk", "tune(", "16", "0", "-1", "1e309", ".5", "\n", " ", "#", "\t",
    "recurrence", "%0", "%q", "read.after", "update", "output", "none", "log(%g)", "?", "\x01", "\xff"};

// LINA_FUZZ_SEED and LINA_FUZZ_SCALE (a multiplier on the iteration counts) allow longer runs
// with other inputs; CI uses the fixed defaults.
uint64_t seedOr(uint64_t fallback) {
  const char* s = std::getenv("LINA_FUZZ_SEED");
  return s ? std::strtoull(s, nullptr, 10) * 1000003 + fallback : fallback;
}
int scaled(int iterations) {
  const char* s = std::getenv("LINA_FUZZ_SCALE");
  return s ? iterations * std::max(1, std::atoi(s)) : iterations;
}

std::string mutate(std::string text, std::mt19937_64& rng) {
  int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits; ++e) {
    size_t n = text.size();
    size_t at = n ? rng() % (n + 1) : 0;
    switch (rng() % 6) {
      case 0:  // delete a span
        if (n) text.erase(at % n, 1 + rng() % 8);
        break;
      case 1:  // insert a fragment
        text.insert(at, kFragments[rng() % std::size(kFragments)]);
        break;
      case 2:  // replace a span with a fragment
        if (n) text.replace(at % n, 1 + rng() % 4, kFragments[rng() % std::size(kFragments)]);
        break;
      case 3: {  // duplicate a line
        size_t start = text.rfind('\n', at ? at - 1 : 0);
        start = start == std::string::npos ? 0 : start + 1;
        size_t end = text.find('\n', at);
        std::string line = text.substr(start, end == std::string::npos ? std::string::npos : end - start + 1);
        text.insert(start, line);
        break;
      }
      case 4:  // truncate
        text.resize(at);
        break;
      default:  // flip one byte
        if (n) text[at % n] = static_cast<char>(rng() % 128);
    }
  }
  return text;
}

std::vector<std::string> seeds() {
  std::vector<std::string> out;
  for (const library::Program& p : library::programs()) out.push_back(p.source);
  for (const char* name : {"linear_attention", "gla_gv", "hgrn2", "rwkv6"}) {
    std::ifstream in(std::string(LINA_SOURCE_DIR) + "/tests/programs/" + name + ".lina");
    std::stringstream text;
    text << in.rdbuf();
    out.push_back(text.str());
  }
  return out;
}

void expectGracefulEnd(const std::string& input, const std::vector<std::string>& args, int& successes) {
  std::ostringstream out, err;
  int code = linac::runOnSource("fuzz.lina", input, args, out, err);
  ASSERT_TRUE(code == 0 || code == 1) << "exit " << code << " for input:\n" << input << "\nstderr:\n" << err.str();
  if (code == 1) {
    ASSERT_NE(err.str().find("error:"), std::string::npos) << "exit 1 without a diagnostic for:\n" << input;
  } else {
    ++successes;
  }
}

TEST(Fuzz, MutatedDslNeverCrashes) {
  std::mt19937_64 rng(seedOr(20261125));
  std::vector<std::string> corpus = seeds();
  int successes = 0;
  const int kIterations = scaled(20000);
  for (int i = 0; i < kIterations; ++i) {
    std::string input = mutate(corpus[i % corpus.size()], rng);
    expectGracefulEnd(input, {}, successes);
    if (HasFatalFailure()) return;
  }
  // Some mutations (in comments, whitespace) keep the program valid; most do not.
  EXPECT_GT(successes, 0);
  EXPECT_LT(successes, kIterations);
}

TEST(Fuzz, MutatedValidProgramsRunOnTheReference) {
  // Programs that still compile after mutation also run on the interpreter without crashing.
  std::mt19937_64 rng(seedOr(7));
  std::vector<std::string> corpus = seeds();
  int successes = 0;
  for (int i = 0; i < scaled(5000); ++i) {
    std::string input = mutate(corpus[i % corpus.size()], rng);
    std::ostringstream out, err;
    if (linac::runOnSource("fuzz.lina", input, {}, out, err) != 0) continue;
    std::ostringstream out2, err2;
    int code = linac::runOnSource("fuzz.lina", input, {"run-reference", "--shape", "1,3,2", "--dims", "K=3,V=2,M=2"},
                                  out2, err2);
    // 2: the random problem cannot run this program (e.g. a required scalar param lost its
    // default); linac must say so, not crash.
    ASSERT_TRUE(code == 0 || (code == 2 && err2.str().rfind("linac: error: ", 0) == 0)) << input << "\n" << err2.str();
    if (code == 0) ++successes;
  }
  EXPECT_GT(successes, 0);
}

TEST(Fuzz, MutatedRirNeverCrashes) {
  std::mt19937_64 rng(seedOr(99));
  std::vector<std::string> corpus;
  for (const library::Program& p : library::programs()) corpus.push_back(rir::toString(rir::Module{{testing::compileLibrary(p.name)}}));
  int successes = 0;
  for (int i = 0; i < scaled(10000); ++i) {
    std::string input = mutate(corpus[i % corpus.size()], rng);
    expectGracefulEnd(input, {"--input=rir"}, successes);
    if (HasFatalFailure()) return;
  }
  EXPECT_GT(successes, 0);
}

}  // namespace
}  // namespace lina

#include "compiler/cir/interpreter.h"
#include "compiler/cir/lower.h"
#include "compiler/reference/derived_backward.h"

namespace lina {
namespace {

// "Any program the DSL accepts": every mutated program that still compiles gets a chunked forward
// equal to the reference and a derived backward equal to the exact one (or a clear refusal).
TEST(Fuzz, MutatedProgramsChunkAndDifferentiateCorrectly) {
  std::mt19937_64 rng(seedOr(2024));
  std::vector<std::string> corpus = seeds();
  int checked = 0, refused = 0;
  for (int i = 0; i < scaled(1500); ++i) {
    std::string input = mutate(corpus[i % corpus.size()], rng);
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<rir::Module> m = compileToRir(sources, sources.addBuffer("fuzz.lina", input), diags);
    if (!m) continue;
    for (const rir::Recurrence& rec : m->recurrences) {
      reference::ProblemShape shape;
      shape.batch = 1;
      shape.time = 5;
      shape.heads = 2;
      for (const std::string& d : rec.dims) shape.dims[d] = 3;
      shape.initialStates = true;
      reference::Problem p = reference::makeRandomProblem(rec, shape, 5);
      for (const rir::Decl& prm : rec.params)
        if (prm.shape.empty()) p.scalarParams[prm.name] = 0.5;  // a mutation may drop a default
      std::string error;
      std::optional<reference::Result> ref = reference::run(rec, p, error);
      ASSERT_TRUE(ref.has_value()) << error << "\n" << input;
      bool finite = true;
      for (const auto& [name, t] : ref->outputs)
        for (double x : t.data) finite = finite && std::isfinite(x) && std::abs(x) < 1e6;
      if (!finite) continue;  // e.g. a mutated gate that grows the state: nothing to compare
      DiagnosticEngine lowerDiags(sources);
      std::optional<cir::Kernel> k = cir::lowerRirToCir(rec, cir::Strategy::Fused, 2, lowerDiags);
      if (k) {
        std::optional<reference::Result> chunked = cir::interpret(*k, p, error);
        ASSERT_TRUE(chunked.has_value()) << error;
        for (const auto& [name, t] : ref->outputs)
          ASSERT_LT(testing::maxRelativeError(chunked->outputs.at(name).data, t.data), 1e-8) << input;
      }
      reference::Cotangents ct = reference::randomCotangents(*ref, 6);
      std::optional<reference::Gradients> exact = reference::runBackward(rec, p, ct, error);
      ASSERT_TRUE(exact.has_value()) << error;
      std::optional<reference::Gradients> derived = reference::runDerivedBackward(rec, p, ct, error);
      if (!derived) {
        ++refused;  // an unsupported form, reported with a message
        ASSERT_NE(error.find("not supported yet"), std::string::npos) << error << "\n" << input;
        continue;
      }
      for (const auto& [name, t] : exact->inputs)
        ASSERT_LT(testing::maxRelativeError(derived->inputs.at(name).data, t.data), 1e-8) << "d" << name << "\n" << input;
      for (const auto& [name, t] : exact->initialStates)
        ASSERT_LT(testing::maxRelativeError(derived->initialStates.at(name).data, t.data), 1e-8) << "d" << name << "0\n" << input;
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
  std::printf("derived backward checked on %d mutated programs (%d refused)\n", checked, refused);
}

}  // namespace
}  // namespace lina
