// linac FILE: the IR of a file after the pipeline (ast, rir), or the kernels the runtime would
// launch for a request (cir, cuda); a .cir input is parsed, verified and printed or emitted.
#include <optional>
#include <string>

#include "codegen/cuda/emit_cuda.h"
#include "compiler/cir/lower.h"
#include "compiler/cir/parser.h"
#include "compiler/cir/printer.h"
#include "compiler/cir/verify.h"
#if LINA_HAVE_LLVM
#include "runtime/cpu/llvm_backend.h"
#endif
#include "compiler/passes/derive_backward.h"
#include "compiler/pipeline/pipeline.h"
#include "compiler/rir/parser.h"
#include "compiler/rir/printer.h"
#include "compiler/rir/verify.h"
#include "dsl/parse.h"
#include "dsl/sema.h"
#include "runtime/kir_backward.h"
#include "runtime/nvrtc_compiler.h"
#include "runtime/program.h"
#include "support/error.h"
#include "tools/linac/commands.h"

namespace lina::linac {

std::optional<rir::Module> buildModule(const Options& o, const SourceManager& sources, uint32_t file,
                                       DiagnosticEngine& diags, std::ostream& out) {
  bool isRir = o.input.empty() ? (o.file.size() > 4 && o.file.substr(o.file.size() - 4) == ".rir") : o.input == "rir";
  PipelineOptions pipeline;
  pipeline.printAfter = o.printAfter;
  pipeline.printStream = &out;
  pipeline.timePasses = o.timePasses;
  if (isRir) {
    std::optional<rir::Module> m = rir::parse(sources, file, diags);
    if (!m) return std::nullopt;
    if (!o.pass.empty()) {
      if (o.pass == "lower-ast-to-rir") {
        out.flush();
        diags.error(SourceRange(), "--pass=lower-ast-to-rir needs a .lina input, not RIR");
        return std::nullopt;
      }
      if (!runSinglePass(*m, o.pass, diags)) return std::nullopt;
      return m;
    }
    if (!runRirPipeline(*m, diags, pipeline)) return std::nullopt;
    return m;
  }
  if (!o.pass.empty()) {
    std::optional<rir::Module> m = lowerToRir(sources, file, diags);
    if (!m) return std::nullopt;
    if (o.pass == "lower-ast-to-rir") return rir::verify(*m, diags) ? m : std::nullopt;
    if (!runSinglePass(*m, o.pass, diags)) return std::nullopt;
    return m;
  }
  return compileToRir(sources, file, diags, pipeline);
}

namespace {

// The ForwardArgs the runtime would get for this request (--strategy, --chunk, --tile, --warps,
// --stages, --dims, --dtype, --shape); what is not given is chosen by chooseConfig.
ForwardArgs requestArgs(const Options& o, const rir::Recurrence& rec) {
  ForwardArgs a;
  a.dtype = o.dtype;
  a.dims = dimsFor(rec, o, 64);
  a.batch = o.shapeGiven ? o.shape.batch : 1;
  a.time = o.shapeGiven ? o.shape.time : 4096;
  a.heads = o.shapeGiven ? o.shape.heads : 1;
  a.strategy = o.strategy;
  a.chunk = o.chunk;
  a.tile = o.tile;
  a.warps = o.warps;
  a.stages = o.stages;
  a.kernels = o.kernels;
  return a;
}

void printKernels(const Options& o, const Program& program, const ForwardArgs& args, int64_t smem, std::ostream& out) {
  const KernelRequest request = program.requestFor(args, smem);
  if (o.emit == "kir") {
    if (request.registerTiles) {
      for (const kir::RegisterTileKernel& k : lowerToKir(program.recurrence(), request)) kir::print(out, k);
    } else {
      std::string why = program.registerTilesUnsupported(args);
      if (why.empty()) why = "the runtime chose the " + std::string(cir::strategyName(request.strategy)) + " CIR kernels (chunk " +
                             std::to_string(request.chunk) + ") for this request";
      out << "// @" << program.recurrence().name << ": no register-tile kernel: " << why << "\n";
    }
    return;
  }
  if (o.emit == "cir") {
    KernelRequest cirRequest = request;
    if (request.registerTiles) {
      out << "// @" << program.recurrence().name << ": the runtime launches the register-tile kernels for this request "
          << "(--emit=kir); the CIR kernels of --kernels=simt:\n";
      ForwardArgs simt = args;
      simt.kernels = "simt";
      cirRequest = program.requestFor(simt, smem);
    }
    for (const cir::Kernel& k : lowerToKernels(program.recurrence(), cirRequest))
      printSpecializedKernel(out, k, cirRequest.specialization());
    return;
  }
  for (const codegen::EmittedKernel& k : compileKernels(program.recurrence(), request)) out << k.source;
}

}  // namespace

// --emit=cir|cuda: the kernels the runtime would launch for the request, through the same calls
// (Program::requestFor, backwardPassesFor/backwardPassArgs): linac never lowers by hand.
int emitKernels(const Options& o, const rir::Module& m, std::ostream& out, std::ostream& err) {
  const int64_t smem = runtime::sharedMemoryLimitForArch(targetArch(o));
  for (const rir::Recurrence& rec : m.recurrences) {
    if (!o.name.empty() && rec.name != o.name) continue;
    try {
      Program program = Program::fromRecurrence(rec, o.file);
      const ForwardArgs args = requestArgs(o, rec);
      if (!o.backward) {
        printKernels(o, program, args, smem, out);
        continue;
      }
      BackwardArgs b;
      b.forward = args;
      // The register-tile backward with every gradient a training step asks for (nothing is
      // launched: any non-null pointer).
      BackwardArgs step = b;
      static float token;
      for (const rir::Decl& in : rec.inputs) step.inputGrads[in.name] = &token;
      for (const rir::Decl& st : rec.states) step.initialStateGrads[st.name] = &token, step.finalStateGrads[st.name] = &token;
      if (std::optional<kir::AdjointPlan> plan = runtime::kirBackwardPlan(program, step)) {
        if (o.emit == "kir") kir::print(out, *plan);
        else if (o.emit == "cuda")
          for (const codegen::EmittedKernel& k : runtime::kirBackwardEmitted(program, step)) out << k.source;
        else
          out << "// @" << rec.name << ": the register-tile backward (--emit=kir shows its plan; --kernels simt: the derived passes)\n";
        continue;
      }
      if (o.emit == "kir") out << "// @" << rec.name << ": no register-tile backward: " << runtime::kirBackwardUnsupported(program, step) << "\n";
      auto [passA, passB] = program.backwardPassesFor(b);
      auto [argsA, argsB] = program.backwardPassArgs(b);
      out << "// ----- pass A of @" << rec.name << " -----\n";
      printKernels(o, *passA, argsA, smem, out);
      out << "// ----- pass B of @" << rec.name << " -----\n";
      printKernels(o, *passB, argsB, smem, out);
    } catch (const Error& e) {
      err << "linac: error: " << e.what() << '\n';
      return 2;
    }
  }
  return 0;
}

// A .cir input: parse, verify, then print it again (--emit=cir) or emit CUDA (--emit=cuda).
int compileCir(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  DiagnosticEngine diags(sources);
  diags.setToolName("linac");
  std::optional<cir::Kernel> k = cir::parse(sources, file, diags);
  if (k && !cir::verify(*k, diags)) k.reset();
  diags.print(err);
  if (!k) return 1;
  if (o.emit == "cuda") {
    try {
      std::map<std::string, int64_t> dims;
      for (const std::string& d : k->dims) dims[d] = o.shape.dims.count(d) ? o.shape.dims.at(d) : 64;
      cir::Specialization spec;
      spec.dims = dims;
      spec.dtype = o.dtype;
      spec.tile = o.tile;
      spec.stages = o.stages ? o.stages : 1;
      out << codegen::emitCuda(*k, spec, "").source;
    } catch (const Error& e) {
      err << "linac: error: " << e.what() << '\n';
      return 2;
    }
  } else {
    cir::print(out, *k);
  }
  return 0;
}

// --emit=llvm: the CPU backend's module for each recurrence (fused at --chunk, default 16, or
// recurrent), after LLVM's O3 for this host.
int emitLlvm(const Options& o, const rir::Module& m, std::ostream& out, std::ostream& err) {
#if LINA_HAVE_LLVM
  for (const rir::Recurrence& rec : m.recurrences) {
    if (!o.name.empty() && rec.name != o.name) continue;
    const bool recurrent = o.strategy == "recurrent";
    if (o.strategy == "split") {
      err << "linac: error: --strategy split: the CPU backend runs fused or recurrent kernels\n";
      return 2;
    }
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<cir::Kernel> k = cir::lowerRirToCir(rec, recurrent ? cir::Strategy::Recurrent : cir::Strategy::Fused,
                                                      recurrent ? 1 : (o.chunk ? o.chunk : 16), diags);
    if (!k) {
      diags.print(err);
      return 1;
    }
    try {
      out << "; @" << rec.name << ": " << cir::strategyName(k->strategy) << " chunk " << k->chunk << ", for " << cpu::hostCpu()
          << "\n"
          << cpu::llvmModuleText(*k, dimsFor(rec, o, 64), true);
    } catch (const Error& e) {
      err << "linac: error: " << e.what() << '\n';
      return 2;
    }
  }
  return 0;
#else
  (void)o, (void)m, (void)out;
  err << "linac: error: --emit=llvm: this build has no LLVM backend (install llvm-14-dev and reconfigure)\n";
  return 2;
#endif
}

int printCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  bool isCir = o.input.empty() ? (o.file.size() > 4 && o.file.substr(o.file.size() - 4) == ".cir") : o.input == "cir";
  if (isCir) return compileCir(o, sources, file, out, err);
  DiagnosticEngine diags(sources);
  diags.setToolName("linac");
  int code = 0;
  if (o.emit == "ast") {
    std::optional<ast::File> parsed = dsl::parse(sources, file, diags);
    if (parsed && !sema::analyze(*parsed, diags).empty()) ast::print(out, *parsed);
    else code = 1;
  } else {
    std::optional<rir::Module> m = buildModule(o, sources, file, diags, out);
    if (m && o.backward && o.emit == "rir") {
      // derive-backward: both passes as two recurrences, each canonical RIR.
      PipelineOptions pipeline;
      pipeline.printAfter = o.printAfter;
      pipeline.printStream = &out;
      pipeline.timePasses = o.timePasses;
      std::vector<passes::DerivedBackward> derived;
      m = deriveBackwardModule(*m, diags, pipeline, &derived);
      // The typed signature the runtime and the reference consume, as comments the parser skips.
      if (m && o.printAfter.empty())
        for (const passes::DerivedBackward& d : derived)
          for (const auto& [pass, entries] : {std::pair{&d.passA, &d.signature.passA}, std::pair{&d.passB, &d.signature.passB}})
            for (const passes::SignatureEntry& e : *entries)
              out << "// signature @" << pass->name << ' ' << e.tensor << ": " << passes::tensorRoleName(e.role) << " of "
                  << e.of << '\n';
    }
    if (m && o.emit == "llvm") {
      code = emitLlvm(o, *m, out, err);
      diags.print(err);
      return diags.hasErrors() ? 1 : code;
    }
    const bool printingStages = !o.printAfter.empty() || o.timePasses;
    const StageInfo* stage = findStage(o.printAfter);
    const bool kernelStage = stage && std::string(stage->level) != "ast" && std::string(stage->level) != "rir";
    if (m && (o.emit == "cir" || o.emit == "kir" || o.emit == "cuda" || kernelStage)) {
      if (printingStages) {
        // --print-after / --time-passes over the kernel stages: the pipeline prints them.
        PipelineOptions pipeline;
        pipeline.printAfter = o.printAfter;
        pipeline.printStream = &out;
        pipeline.timePasses = o.timePasses;
        for (const rir::Recurrence& rec : m->recurrences) {
          if (!o.name.empty() && rec.name != o.name) continue;
          try {
            Program program = Program::fromRecurrence(rec, o.file);
            const int64_t smem = runtime::sharedMemoryLimitForArch(targetArch(o));
            (void)compileKernels(rec, program.requestFor(requestArgs(o, rec), smem), pipeline);
          } catch (const Error& e) {
            err << "linac: error: " << e.what() << '\n';
            code = 2;
          }
        }
      } else {
        code = emitKernels(o, *m, out, err);
      }
    } else if (m && o.printAfter.empty()) {
      rir::print(out, *m);
    }
    if (!m) code = 1;
  }
  diags.print(err);
  return diags.hasErrors() ? 1 : code;
}

}  // namespace lina::linac
