// The pass order lives here, in runRirPipeline, one line per pass.
#include "compiler/pipeline.h"

#include <chrono>
#include <iomanip>

#include "compiler/passes/passes.h"
#include "compiler/rir/printer.h"
#include "compiler/rir/verify.h"
#include "dsl/parse.h"
#include "dsl/sema.h"

namespace lina {

namespace {

struct Step {
  const char* pass;
  rir::VerifyOptions verifyAfter;
};

// The RIR stage, in order; each line says why it runs where it does.
const std::vector<Step>& rirSteps() {
  static const std::vector<Step> steps = {
      // States declared without dims get them from their outer() write; every later pass and the
      // interpreter need full shapes.
      {"infer-state-shapes", {.requireKnownStateShapes = true}},
      // Decays become log-space gates (exp(g) -> g, gamma -> log gamma): the chunk lowering works on
      // cumulative sums of log gates. Runs before folding so that log(const) folds.
      {"canonicalize-gates", {.requireKnownStateShapes = true, .requireLogGates = true}},
      // Literal arithmetic (2 ** -5, log 0.5) and identities (x * 1, log(exp x)) disappear.
      {"fold-constants", {.requireKnownStateShapes = true, .requireLogGates = true}},
      // Last: removes what canonicalization and folding left unused (exp %g, folded operands).
      {"dce", {.requireKnownStateShapes = true, .requireLogGates = true}},
  };
  return steps;
}

void printModule(const PipelineOptions& options, const char* pass, const std::string& text, bool unchanged) {
  if (!options.printStream) return;
  *options.printStream << "// ----- RIR after " << pass << (unchanged ? " (unchanged)" : "") << " -----\n";
  if (!unchanged) *options.printStream << text;
}

bool wantPrint(const PipelineOptions& options, const std::string& pass) {
  return options.printAfter == "all" || options.printAfter == pass;
}

}  // namespace

std::vector<std::string> rirPipelineOrder() {
  std::vector<std::string> names;
  for (const Step& s : rirSteps()) names.push_back(s.pass);
  return names;
}

bool runRirPipeline(rir::Module& module, DiagnosticEngine& diags, const PipelineOptions& options) {
  if (!rir::verify(module, diags)) return false;
  bool printing = !options.printAfter.empty();
  std::string before = printing ? rir::toString(module) : "";
  for (const Step& step : rirSteps()) {
    const passes::PassInfo* pass = passes::findPass(step.pass);
    auto start = std::chrono::steady_clock::now();
    bool ok = pass->run(module, diags);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (!ok || !rir::verify(module, diags, step.verifyAfter)) return false;
    if (options.timePasses && options.printStream)
      *options.printStream << "// time " << std::setw(20) << std::left << step.pass << ' ' << std::fixed
                           << std::setprecision(3) << ms << " ms\n";
    if (printing) {
      std::string after = rir::toString(module);
      if (wantPrint(options, step.pass)) printModule(options, step.pass, after, after == before);
      before = std::move(after);
    }
    if (options.stopAfter == step.pass) break;
  }
  return true;
}

bool runSinglePass(rir::Module& module, const std::string& name, DiagnosticEngine& diags) {
  const passes::PassInfo* pass = passes::findPass(name);
  if (!pass) {
    std::string known;
    for (const passes::PassInfo& p : passes::catalog()) known += std::string(known.empty() ? "" : ", ") + p.name;
    diags.error(SourceRange(), "unknown pass '" + name + "'; the passes are lower-ast-to-rir, " + known);
    return false;
  }
  if (!rir::verify(module, diags)) return false;
  return pass->run(module, diags) && rir::verify(module, diags);
}

std::optional<rir::Module> lowerToRir(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags,
                                      ast::File* astOut) {
  std::optional<ast::File> parsed = dsl::parse(sources, file, diags);
  if (!parsed) return std::nullopt;
  std::vector<sema::RecurrenceInfo> infos = sema::analyze(*parsed, diags);
  if (infos.empty()) return std::nullopt;
  rir::Module module = passes::lowerAstToRir(infos);
  if (astOut) *astOut = std::move(*parsed);  // infos point into *parsed: move only after lowering
  return module;
}

std::optional<rir::Module> compileToRir(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags,
                                        const PipelineOptions& options, ast::File* astOut) {
  std::optional<rir::Module> module = lowerToRir(sources, file, diags, astOut);
  if (!module) return std::nullopt;
  if (wantPrint(options, "lower-ast-to-rir")) printModule(options, "lower-ast-to-rir", rir::toString(*module), false);
  if (options.stopAfter == "lower-ast-to-rir") return rir::verify(*module, diags) ? module : std::nullopt;
  if (!runRirPipeline(*module, diags, options)) return std::nullopt;
  return module;
}

}  // namespace lina
