// The pass order lives here, in stages(), one line per stage: the RIR passes and the kernel
// stages below them.
#include "compiler/pipeline/pipeline.h"

#include <chrono>
#include <iomanip>
#include <sstream>

#include "compiler/cir/lower.h"
#include "compiler/cir/printer.h"
#include "compiler/cir/split.h"
#include "compiler/kir/register_tiles.h"
#include "codegen/cuda/emit_register_tiles.h"
#include "compiler/passes/passes.h"
#include "compiler/rir/printer.h"
#include "compiler/rir/verify.h"
#include "dsl/parse.h"
#include "dsl/sema.h"
#include "support/error.h"

namespace lina {

namespace {

struct Stage {
  StageInfo info;
  bool rirPass = false;           // a catalog pass run by runRirPipeline
  rir::VerifyOptions verifyAfter;  // rirPass: what must hold after it
};

// Every stage, in order; each line says why it runs where it does.
const std::vector<Stage>& stages() {
  static const std::vector<Stage> list = {
      {{"parse", "ast", "source text -> AST (Flex lexer, Bison grammar)"}, false, {}},
      // Names, dims broadcast by name, gate kinds; every update classified as
      // S = a (.)rows S (.)cols b + outer(u, w), or rejected with a caret.
      {{"sema", "ast", "check names, dims and gates; classify every state update"}, false, {}},
      {{"lower-ast-to-rir", "rir", "checked AST -> RIR"}, false, {}},
      // States declared without dims get them from their outer() write; every later pass and the
      // interpreter need full shapes.
      {{"infer-state-shapes", "rir", ""}, true, {.requireKnownStateShapes = true}},
      // Decays become log-space gates (exp(g) -> g, gamma -> log gamma): the chunk lowering works on
      // cumulative sums of log gates. Runs before folding so that log(const) folds.
      {{"canonicalize-gates", "rir", ""}, true, {.requireKnownStateShapes = true, .requireLogGates = true}},
      // Literal arithmetic (2 ** -5, log 0.5) and identities (x * 1, log(exp x)) disappear.
      {{"fold-constants", "rir", ""}, true, {.requireKnownStateShapes = true, .requireLogGates = true}},
      // Last: removes what canonicalization and folding left unused (exp %g, folded operands).
      {{"dce", "rir", ""}, true, {.requireKnownStateShapes = true, .requireLogGates = true}},
      // On canonical RIR only (log gates, known shapes): the backward is two more canonical
      // programs, so every stage below handles them like any forward.
      {{"derive-backward", "rir", "the backward as two canonical programs (pass A, pass B) with a typed signature"}, false, {}},
      // Reads become attends, updates gate cumsums and one carry per chunk (research/chunk-math.md).
      {{"lower-rir-to-cir", "cir", "canonical RIR -> the chunk kernel of a strategy and chunk size"}, false, {}},
      // Only for the split strategy: the walk (carries, snapshots) and the per-chunk outputs.
      {{"split-phase", "cir", "cut the split strategy's two kernels from the fused one"}, false, {}},
      // The schedule the tuner varies and the layout the derived backward needs, fixed last so that
      // everything above is shared by every configuration.
      {{"specialize", "cir", "fix dims, dtype, tile, warps, stages and the tensor layout"}, false, {}},
      // Register-tile requests only: the kernel level (KIR) below CIR, where chunk values are
      // tensor-core fragments; it matches the canonical RIR and the specialization, so it needs
      // none of the CIR stages' buffers.
      {{"lower-to-kir", "kir", "register-tile kernel: fragments, shared buffers, barriers, fusions"}, false, {}},
      // Shared memory (liveness-packed buffers) and what each grid axis counts: the emitter and the
      // runtime both read this plan.
      {{"plan-launch", "cir", "plan shared memory and the launch grid"}, false, {}},
      {{"emit-cuda", "cuda", "CUDA C++ calling the device library (codegen/device)"}, false, {}},
  };
  return list;
}

bool wantPrint(const PipelineOptions& options, const std::string& stage) {
  return options.printStream && (options.printAfter == "all" || options.printAfter == stage);
}

void printHeader(const PipelineOptions& options, const char* level, const std::string& stage, bool unchanged = false) {
  *options.printStream << "// ----- " << level << " after " << stage << (unchanged ? " (unchanged)" : "") << " -----\n";
}

void printRir(const PipelineOptions& options, const char* pass, const std::string& text, bool unchanged) {
  if (!options.printStream) return;
  printHeader(options, "RIR", pass, unchanged);
  if (!unchanged) *options.printStream << text;
}

// Times one stage when asked.
class StageTimer {
 public:
  StageTimer(const PipelineOptions& options, const char* stage)
      : options_(options), stage_(stage), start_(std::chrono::steady_clock::now()) {}
  ~StageTimer() {
    if (!options_.timePasses || !options_.printStream) return;
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start_).count();
    *options_.printStream << "// time " << std::setw(20) << std::left << stage_ << ' ' << std::fixed << std::setprecision(3)
                          << ms << " ms\n";
  }

 private:
  const PipelineOptions& options_;
  const char* stage_;
  std::chrono::steady_clock::time_point start_;
};

[[noreturn]] void fail(const DiagnosticEngine& diags, const std::string& context) {
  std::ostringstream os;
  diags.print(os);
  throw Error(context + os.str());
}

std::optional<rir::Module> lowerToRirWith(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags,
                                          const PipelineOptions& options, ast::File* astOut) {
  std::optional<ast::File> parsed;
  {
    StageTimer t(options, "parse");
    parsed = dsl::parse(sources, file, diags);
  }
  if (!parsed) return std::nullopt;
  std::vector<sema::RecurrenceInfo> infos;
  {
    StageTimer t(options, "sema");
    infos = sema::analyze(*parsed, diags);
  }
  if (infos.empty()) return std::nullopt;
  if (wantPrint(options, "sema") || wantPrint(options, "parse")) {
    printHeader(options, "AST", options.printAfter == "parse" ? "parse" : "sema");
    ast::print(*options.printStream, *parsed);
  }
  rir::Module module;
  {
    StageTimer t(options, "lower-ast-to-rir");
    module = passes::lowerAstToRir(infos);
  }
  if (astOut) *astOut = std::move(*parsed);  // infos point into *parsed: move only after lowering
  return module;
}

}  // namespace

const std::vector<StageInfo>& pipelineStages() {
  static const std::vector<StageInfo> infos = [] {
    std::vector<StageInfo> out;
    for (const Stage& s : stages()) {
      StageInfo info = s.info;
      if (s.rirPass) info.summary = passes::findPass(info.name)->summary;
      out.push_back(info);
    }
    return out;
  }();
  return infos;
}

const StageInfo* findStage(const std::string& name) {
  for (const StageInfo& s : pipelineStages())
    if (name == s.name) return &s;
  return nullptr;
}

std::vector<std::string> rirPipelineOrder() {
  std::vector<std::string> names;
  for (const Stage& s : stages())
    if (s.rirPass) names.push_back(s.info.name);
  return names;
}

bool runRirPipeline(rir::Module& module, DiagnosticEngine& diags, const PipelineOptions& options) {
  if (!rir::verify(module, diags)) return false;
  bool printing = !options.printAfter.empty();
  std::string before = printing ? rir::toString(module) : "";
  for (const Stage& step : stages()) {
    if (!step.rirPass) continue;
    const passes::PassInfo* pass = passes::findPass(step.info.name);
    bool ok;
    {
      StageTimer t(options, step.info.name);
      ok = pass->run(module, diags);
    }
    if (!ok || !rir::verify(module, diags, step.verifyAfter)) return false;
    if (printing) {
      std::string after = rir::toString(module);
      if (wantPrint(options, step.info.name)) printRir(options, step.info.name, after, after == before);
      before = std::move(after);
    }
    if (options.stopAfter == step.info.name) break;
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
  return lowerToRirWith(sources, file, diags, {}, astOut);
}

std::optional<rir::Module> compileToRir(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags,
                                        const PipelineOptions& options, ast::File* astOut) {
  std::optional<rir::Module> module = lowerToRirWith(sources, file, diags, options, astOut);
  if (!module) return std::nullopt;
  if (wantPrint(options, "lower-ast-to-rir")) printRir(options, "lower-ast-to-rir", rir::toString(*module), false);
  if (options.stopAfter == "lower-ast-to-rir") return rir::verify(*module, diags) ? module : std::nullopt;
  if (!runRirPipeline(*module, diags, options)) return std::nullopt;
  return module;
}

std::optional<rir::Module> deriveBackwardModule(const rir::Module& module, DiagnosticEngine& diags,
                                                const PipelineOptions& options,
                                                std::vector<passes::DerivedBackward>* derived) {
  rir::Module out;
  {
    StageTimer t(options, "derive-backward");
    for (const rir::Recurrence& rec : module.recurrences) {
      std::optional<passes::DerivedBackward> d = passes::deriveBackward(rec, diags);
      if (!d) return std::nullopt;
      out.recurrences.push_back(d->passA);
      out.recurrences.push_back(d->passB);
      if (derived) derived->push_back(std::move(*d));
    }
  }
  if (wantPrint(options, "derive-backward")) printRir(options, "derive-backward", rir::toString(out), false);
  return out;
}

cir::Specialization KernelRequest::specialization() const {
  cir::Specialization spec;
  spec.dims = dims;
  spec.dtype = dtype;
  spec.tile = tile;
  spec.stages = stages;
  spec.layout = layout;
  return spec;
}

std::vector<cir::Kernel> lowerToKernels(const rir::Recurrence& rec, const KernelRequest& request,
                                        const PipelineOptions& options) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<cir::Kernel> whole;
  {
    StageTimer t(options, "lower-rir-to-cir");
    whole = cir::lowerRirToCir(rec, request.strategy == cir::Strategy::Split ? cir::Strategy::Fused : request.strategy,
                               request.chunk, diags);
  }
  if (!whole) fail(diags, "");
  auto print = [&](const char* stage, const std::vector<cir::Kernel>& kernels, bool withSpec) {
    if (!wantPrint(options, stage)) return;
    printHeader(options, "CIR", stage);
    for (const cir::Kernel& k : kernels) {
      if (withSpec) printSpecializedKernel(*options.printStream, k, request.specialization());
      else cir::print(*options.printStream, k);
    }
  };
  print("lower-rir-to-cir", {*whole}, false);
  std::vector<cir::Kernel> kernels;
  {
    StageTimer t(options, "split-phase");
    if (request.strategy == cir::Strategy::Split) {
      for (cir::Phase phase : {cir::Phase::States, cir::Phase::Outputs}) {
        std::optional<cir::Kernel> k = cir::splitPhase(*whole, phase, diags);
        if (!k) fail(diags, "");
        kernels.push_back(std::move(*k));
      }
    } else {
      kernels.push_back(std::move(*whole));
    }
  }
  print("split-phase", kernels, false);
  {
    StageTimer t(options, "specialize");
    for (cir::Kernel& k : kernels) {
      if (!request.tiledDimOverride.empty()) {
        k.tiledDim = request.tiledDimOverride;
        k.name += "_" + request.tiledDimOverride + "blocks";
      }
      if (request.warps && request.warps != k.warps) {
        if (request.warps < 1 || request.warps > 32)
          throw Error("warps: expected 1 to 32 warps per CTA; got " + std::to_string(request.warps));
        k.warps = request.warps;
        k.name += "_w" + std::to_string(request.warps);
      }
    }
  }
  print("specialize", kernels, true);
  return kernels;
}

std::vector<kir::RegisterTileKernel> lowerToKir(const rir::Recurrence& rec, const KernelRequest& request,
                                                const PipelineOptions& options) {
  std::vector<kir::RegisterTileKernel> k;
  {
    StageTimer t(options, "lower-to-kir");
    k = kir::lowerToRegisterTiles(rec, request.strategy, request.chunk, request.specialization());
  }
  if (wantPrint(options, "lower-to-kir")) {
    printHeader(options, "KIR", "lower-to-kir");
    for (const kir::RegisterTileKernel& kernel : k) kir::print(*options.printStream, kernel);
  }
  return k;
}

std::vector<codegen::EmittedKernel> compileKernels(const rir::Recurrence& rec, const KernelRequest& request,
                                                   const PipelineOptions& options) {
  if (request.registerTiles) {
    const std::vector<kir::RegisterTileKernel> kernels = lowerToKir(rec, request, options);
    std::vector<codegen::EmittedKernel> out;
    {
      StageTimer t(options, "emit-cuda");
      for (const kir::RegisterTileKernel& k : kernels) out.push_back(codegen::emitRegisterTiles(k));
    }
    if (wantPrint(options, "emit-cuda")) {
      printHeader(options, "CUDA", "emit-cuda");
      for (const codegen::EmittedKernel& k : out) *options.printStream << k.source;
    }
    return out;
  }
  const std::vector<cir::Kernel> kernels = lowerToKernels(rec, request, options);
  const cir::Specialization spec = request.specialization();
  if (wantPrint(options, "plan-launch")) {
    printHeader(options, "CIR", "plan-launch");
    for (const cir::Kernel& k : kernels) {
      codegen::EmittedKernel planned;
      planned.smem = codegen::planSharedMemory(k, spec);
      planned.grid = codegen::planLaunchGrid(k, spec);
      planned.threads = k.warps * 32;
      printSpecializedKernel(*options.printStream, k, spec, &planned);
    }
  }
  std::vector<codegen::EmittedKernel> out;
  {
    StageTimer t(options, "emit-cuda");
    for (const cir::Kernel& k : kernels) out.push_back(codegen::emitCuda(k, spec, request.sourceName));
  }
  if (wantPrint(options, "emit-cuda")) {
    printHeader(options, "CUDA", "emit-cuda");
    for (const codegen::EmittedKernel& k : out) *options.printStream << k.source;
  }
  return out;
}

void printSpecializedKernel(std::ostream& os, const cir::Kernel& kernel, const cir::Specialization& spec,
                            const codegen::EmittedKernel* emitted) {
  os << "// specialize dtype=" << spec.dtype;
  for (const auto& [d, n] : spec.dims) os << ' ' << d << '=' << n;
  os << " tile=" << spec.tile << " stages=" << spec.stages << '\n';
  if (spec.layout.key() != cir::TensorLayout().key()) os << "// layout " << spec.layout.key() << '\n';
  if (emitted) {
    os << "// launch grid(" << emitted->grid.text() << ") block=" << emitted->threads
       << " shared=" << emitted->smem.totalBytes << "B";
    for (const auto& [name, offset] : emitted->smem.offset)
      os << ' ' << name << '@' << offset << '+' << emitted->smem.size.at(name);
    os << '\n';
  }
  cir::print(os, kernel);
}

}  // namespace lina
