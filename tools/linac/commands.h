// linac's subcommands, one file each: print (print_command.cc: the IR or kernels of a file),
// run-reference, compile (NVRTC) and check (GPU against the reference).
#pragma once

#include <ostream>

#include "dsl/diagnostics.h"
#include "tools/linac/options.h"

namespace lina::linac {

int printCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err);
int runReferenceCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err);
int compileCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err);
int checkCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err);
int tuneCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err);
// Compiles (or parses) the input into RIR according to the options (--input, --pass, --print-after).
std::optional<rir::Module> buildModule(const Options& o, const SourceManager& sources, uint32_t file,
                                       DiagnosticEngine& diags, std::ostream& out);

}  // namespace lina::linac
