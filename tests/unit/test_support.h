// Shared helpers for the unit tests: compiling a program through the whole RIR pipeline.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "compiler/pipeline/pipeline.h"
#include "compiler/reference/interpreter.h"
#include "compiler/reference/random_problem.h"
#include "library/library.h"

namespace lina::testing {

// Compiles `source` (named `name` in diagnostics); fails the test with the diagnostics on error.
inline rir::Recurrence compileSource(const std::string& name, const std::string& source) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  uint32_t file = sources.addBuffer(name, source);
  std::optional<rir::Module> module = compileToRir(sources, file, diags);
  std::ostringstream messages;
  diags.print(messages);
  EXPECT_TRUE(module.has_value()) << messages.str();
  if (!module) return {};
  EXPECT_EQ(module->recurrences.size(), 1u);
  return module->recurrences.front();
}

inline rir::Recurrence compileLibrary(const std::string& name) {
  const library::Program* p = library::find(name);
  EXPECT_NE(p, nullptr) << "no library program " << name;
  return p ? compileSource(p->path, p->source) : rir::Recurrence{};
}

// Programs under tests/programs (the DSL-generality variants).
inline rir::Recurrence compileTestProgram(const std::string& name) {
  std::string path = std::string(LINA_SOURCE_DIR) + "/tests/programs/" + name + ".lina";
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  std::stringstream text;
  text << in.rdbuf();
  return compileSource(path, text.str());
}

// A library program by name, else one under tests/programs.
inline rir::Recurrence compileAny(const std::string& name) {
  return library::find(name) ? compileLibrary(name) : compileTestProgram(name);
}

// A small random problem: H = 2, K = 4, V = 3, M = 3, initial states; B = 2 sequences of
// `time` steps, or (with cu_seqlens) one packed batch of the lengths they describe.
// Everything the engine reported, as printed.
inline std::string render(DiagnosticEngine& diags) {
  std::ostringstream os;
  diags.print(os);
  return os.str();
}

inline reference::ProblemShape smallShape(int64_t time, std::vector<int64_t> cuSeqlens = {}) {
  reference::ProblemShape shape;
  shape.heads = 2;
  shape.dims = {{"K", 4}, {"V", 3}, {"M", 3}};
  shape.initialStates = true;
  shape.batch = cuSeqlens.empty() ? 2 : 1;
  shape.time = cuSeqlens.empty() ? time : cuSeqlens.back();
  shape.cuSeqlens = std::move(cuSeqlens);
  return shape;
}

inline reference::Result runOrFail(const rir::Recurrence& rec, const reference::Problem& problem) {
  std::string error;
  std::optional<reference::Result> r = reference::run(rec, problem, error);
  EXPECT_TRUE(r.has_value()) << error;
  return r ? *r : reference::Result{};
}

// Max |a - b| / max(1, |b|) over the buffers; sizes must match.
inline double maxRelativeError(const std::vector<double>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return worst;
}

}  // namespace lina::testing
