// libFuzzer target: any bytes as printed RIR and as a printed CIR kernel, through the parsers
// and verifiers lit and `linac --input=rir|cir` use. A text that parses and verifies must print
// to a text that parses back to the same print (the IRs are the project's test format, so the
// round trip is an invariant); a crash, sanitizer report or broken round trip is a finding.
#include <cstdint>
#include <sstream>
#include <string>

#include "compiler/cir/parser.h"
#include "compiler/cir/printer.h"
#include "compiler/cir/verify.h"
#include "compiler/rir/parser.h"
#include "compiler/rir/printer.h"
#include "compiler/rir/verify.h"
#include "dsl/diagnostics.h"
#include "dsl/source_manager.h"
#include "support/error.h"

namespace {

std::string cirText(const lina::cir::Kernel& k) {
  std::ostringstream os;
  lina::cir::print(os, k);
  return os.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 16) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    lina::SourceManager sources;
    lina::DiagnosticEngine diags(sources);
    if (std::optional<lina::rir::Module> m = lina::rir::parse(sources, sources.addBuffer("fuzz.rir", text), diags)) {
      if (lina::rir::verify(*m, diags)) {
        const std::string printed = lina::rir::toString(*m);
        lina::SourceManager s2;
        lina::DiagnosticEngine d2(s2);
        const std::optional<lina::rir::Module> back = lina::rir::parse(s2, s2.addBuffer("fuzz.rir", printed), d2);
        if (!back || lina::rir::toString(*back) != printed) __builtin_trap();
      }
    } else if (!diags.hasErrors()) {
      __builtin_trap();
    }
  } catch (const lina::Error&) {
  }
  try {
    lina::SourceManager sources;
    lina::DiagnosticEngine diags(sources);
    if (std::optional<lina::cir::Kernel> k = lina::cir::parse(sources, sources.addBuffer("fuzz.cir", text), diags)) {
      if (lina::cir::verify(*k, diags)) {
        const std::string printed = cirText(*k);
        lina::SourceManager s2;
        lina::DiagnosticEngine d2(s2);
        const std::optional<lina::cir::Kernel> back = lina::cir::parse(s2, s2.addBuffer("fuzz.cir", printed), d2);
        if (!back || cirText(*back) != printed) __builtin_trap();
      }
    } else if (!diags.hasErrors()) {
      __builtin_trap();
    }
  } catch (const lina::Error&) {
  }
  return 0;
}
