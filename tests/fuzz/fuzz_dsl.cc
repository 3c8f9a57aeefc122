// libFuzzer target: any bytes as a .lina source through the whole compiler that runs without a
// GPU — parse, sema, the RIR passes, derive-backward, CIR lowering for three strategies, the
// register-tile (KIR) lowering, and CUDA emission. Every input must end in a result or a
// diagnostic / lina::Error; a crash, a sanitizer report or a broken invariant (checked below with
// __builtin_trap) is a finding. Invariants: a compiled module prints as RIR that parses back to
// the same text.
#include <cstdint>
#include <string>

#include "compiler/pipeline/pipeline.h"
#include "compiler/rir/parser.h"
#include "compiler/rir/printer.h"
#include "dsl/diagnostics.h"
#include "dsl/source_manager.h"
#include "support/error.h"

namespace {

void kernels(const lina::rir::Recurrence& rec) {
  lina::KernelRequest request;
  for (const std::string& d : rec.dims) request.dims[d] = 16;
  for (auto [strategy, chunk] : {std::pair{lina::cir::Strategy::Fused, 16}, std::pair{lina::cir::Strategy::Recurrent, 1},
                                 std::pair{lina::cir::Strategy::Split, 32}}) {
    request.strategy = strategy;
    request.chunk = chunk;
    try {
      (void)lina::compileKernels(rec, request);
    } catch (const lina::Error&) {
    }
  }
  request.strategy = lina::cir::Strategy::Fused;
  request.chunk = 64;
  request.registerTiles = true;
  for (const std::string& d : rec.dims) request.dims[d] = 64;
  try {
    (void)lina::compileKernels(rec, request);
  } catch (const lina::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 1 << 16) return 0;  // the frontend's own limit is larger; keep runs fast
  lina::SourceManager sources;
  const uint32_t file = sources.addBuffer("fuzz.lina", std::string(reinterpret_cast<const char*>(data), size));
  lina::DiagnosticEngine diags(sources);
  std::optional<lina::rir::Module> module;
  try {
    module = lina::compileToRir(sources, file, diags);
  } catch (const lina::Error&) {
    return 0;
  }
  if (!module) {
    if (!diags.hasErrors()) __builtin_trap();  // a failure must say why
    return 0;
  }
  // The printed RIR parses back to the same module.
  const std::string printed = lina::rir::toString(*module);
  lina::SourceManager again;
  lina::DiagnosticEngine diags2(again);
  const std::optional<lina::rir::Module> reparsed = lina::rir::parse(again, again.addBuffer("fuzz.rir", printed), diags2);
  if (!reparsed || lina::rir::toString(*reparsed) != printed) __builtin_trap();
  for (const lina::rir::Recurrence& rec : module->recurrences) kernels(rec);
  lina::DiagnosticEngine diags3(sources);
  try {
    if (std::optional<lina::rir::Module> backward = lina::deriveBackwardModule(*module, diags3))
      for (const lina::rir::Recurrence& rec : backward->recurrences) kernels(rec);
  } catch (const lina::Error&) {
  }
  return 0;
}
