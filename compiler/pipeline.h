// The compiler driver: source text -> checked AST -> RIR, then the RIR passes in order.
#pragma once

#include <functional>
#include <optional>
#include <ostream>
#include <string>

#include "compiler/rir/ir.h"
#include "dsl/ast.h"
#include "dsl/diagnostics.h"

namespace lina {

struct PipelineOptions {
  // `all`, a pass name, or empty: print the RIR after that pass (with "(unchanged)" when it
  // changed nothing).
  std::string printAfter;
  std::ostream* printStream = nullptr;
  // Stop after this pass (used by `linac --pass=`); empty runs the whole pipeline.
  std::string stopAfter;
  // Print the time each pass took to `printStream`.
  bool timePasses = false;
};

// The names of the RIR stage's passes, in the order buildRirPipeline runs them.
std::vector<std::string> rirPipelineOrder();

// Runs the RIR passes over `module`, verifying after each. Returns false after reporting errors.
bool runRirPipeline(rir::Module& module, DiagnosticEngine& diags, const PipelineOptions& options = {});

// Runs only `pass` (a catalog name) and the verifier.
bool runSinglePass(rir::Module& module, const std::string& pass, DiagnosticEngine& diags);

// Parses, checks and lowers buffer `file`, then runs the RIR pipeline. `ast` (optional) receives
// the checked AST.
std::optional<rir::Module> compileToRir(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags,
                                        const PipelineOptions& options = {}, ast::File* ast = nullptr);

// Parses, checks and lowers only (the RIR before any pass).
std::optional<rir::Module> lowerToRir(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags,
                                      ast::File* ast = nullptr);

}  // namespace lina
