#include "tools/linac/driver.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <sstream>

#include "codegen/cuda/emit_cuda.h"
#include "compiler/cir/lower.h"
#include "compiler/cir/parser.h"
#include "compiler/cir/verify.h"
#include "compiler/cir/printer.h"
#include "compiler/passes/derive_backward.h"
#include "compiler/passes/passes.h"
#include "runtime/backward_check.h"
#include "runtime/cuda_driver.h"
#include "runtime/error.h"
#include "runtime/forward_check.h"
#include "runtime/kernel_cache.h"
#include "runtime/nvrtc_compiler.h"
#include "runtime/program.h"
#include "compiler/pipeline.h"
#include "compiler/reference/backward.h"
#include "compiler/reference/random_problem.h"
#include "compiler/rir/parser.h"
#include "compiler/rir/printer.h"
#include "compiler/rir/verify.h"
#include "dsl/parse.h"
#include "dsl/sema.h"

namespace lina::linac {

namespace {

const char* kUsage =
    "usage: linac FILE [options]            compile a .lina (or .rir) file and print an IR\n"
    "       linac run-reference FILE [options]  run the CPU reference interpreter on random inputs\n"
    "       linac compile FILE --arch sm_90a    NVRTC-compile every kernel the tuner may pick (no GPU needed)\n"
    "       linac check FILE [options]          run the kernels on the GPU against the reference\n"
    "       linac --list-passes\n"
    "\n"
    "compile options:\n"
    "  --emit=ast|rir|cir|cuda what to print (default rir, after the whole pipeline)\n"
    "  --strategy=fused|split|recurrent, --chunk=N, --tile=N, --dtype=bf16|fp16|fp32,\n"
    "  --stages=1|2            2: prefetch the next chunk's inputs with cp.async\n"
    "                          the kernel to show with --emit=cir|cuda (dims from --dims, default 64)\n"
    "  --print-after=PASS|all  print the RIR after a pass; \"(unchanged)\" when it changed nothing\n"
    "  --pass=PASS             run only PASS (lower-ast-to-rir: lowering alone) and print the result\n"
    "  --time-passes           print the time of each pass\n"
    "  --input=lina|rir        the input language (default: from the file extension)\n"
    "\n"
    "run-reference options:\n"
    "  --shape B,T,H           batch, length, heads (default 1,16,1)\n"
    "  --dims K=64,V=64        dim sizes (default 16 each)\n"
    "  --seed N                random seed (default 0)\n"
    "  --varlen 0,5,5,12       cu_seqlens (packed sequences; B must be 1)\n"
    "  --initial-state         random initial states\n"
    "  --param NAME=NUMBER     set a scalar param (repeatable)\n"
    "  --backward              also the gradients of L = sum(do * o) + sum(dht * ht), random do, dht\n"
    "  --fd                    with --backward: check them against central finite differences\n"
    "  --name NAME             which recurrence of the file (default: each)\n"
    "\n"
    "compile options: --arch sm_80|sm_90a|... (default: the GPU's, else sm_90a), --dims, --dtype\n"
    "check options: --shape, --dims, --dtype, --varlen, --initial-state, --seed, --strategy, --chunk, --tile,\n"
    "               --backward (the gradients of every input, initial state and param against the exact\n"
    "               reference backward)\n";

struct Options {
  std::string command;  // "" (compile) or "run-reference"
  std::string file;
  std::string emit = "rir";
  std::string printAfter;
  std::string pass;
  std::string input;
  bool timePasses = false;
  reference::ProblemShape shape;
  uint64_t seed = 0;
  std::string name;
  std::map<std::string, double> params;  // scalar param overrides for run-reference
  std::string dtype = "bf16";
  std::string strategy = "auto";
  int chunk = 0;
  int tile = 0;
  int stages = 1;
  std::string arch;
  bool cacheStats = false;
  bool backward = false;  // run-reference: gradients too; --emit=rir: the derived backward
  bool finiteDifferences = false;  // run-reference --backward: check them by central differences
};

bool usageError(std::ostream& err, const std::string& message) {
  err << "linac: error: " << message << "\n(run `linac --help` for usage)\n";
  return false;
}

std::optional<std::vector<int64_t>> parseIntList(const std::string& text) {
  std::vector<int64_t> values;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (item.empty() || ec != std::errc() || ptr != item.data() + item.size()) return std::nullopt;
    values.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return values;
}

bool parseOptions(const std::vector<std::string>& args, Options& o, std::ostream& err) {
  size_t i = 0;
  if (!args.empty() && (args[0] == "run-reference" || args[0] == "compile" || args[0] == "check")) {
    o.command = args[0];
    o.shape.time = 16;
    i = 1;
  }
  auto value = [&](const std::string& arg, const std::string& flag, std::string& out) -> int {
    // Accepts --flag=value and --flag value. Returns 1 if matched, 0 if not, -1 on error.
    if (arg.rfind(flag + "=", 0) == 0) {
      out = arg.substr(flag.size() + 1);
      return 1;
    }
    if (arg == flag) {
      if (i + 1 >= args.size()) return usageError(err, flag + " needs a value") ? 0 : -1;
      out = args[++i];
      return 1;
    }
    return 0;
  };
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string v;
    int m;
    if ((m = value(a, "--emit", o.emit))) {
      if (m < 0) return false;
      if (o.emit != "ast" && o.emit != "rir" && o.emit != "cir" && o.emit != "cuda")
        return usageError(err, "--emit expects ast, rir, cir or cuda; got '" + o.emit + "'");
    } else if ((m = value(a, "--dtype", o.dtype))) {
      if (m < 0) return false;
      if (o.dtype != "bf16" && o.dtype != "fp16" && o.dtype != "fp32")
        return usageError(err, "--dtype expects bf16, fp16 or fp32; got '" + o.dtype + "'");
    } else if ((m = value(a, "--strategy", o.strategy))) {
      if (m < 0) return false;
      if (o.strategy != "auto" && o.strategy != "fused" && o.strategy != "split" && o.strategy != "recurrent")
        return usageError(err, "--strategy expects auto, fused, split or recurrent; got '" + o.strategy + "'");
    } else if ((m = value(a, "--arch", o.arch))) {
      if (m < 0) return false;
    } else if ((m = value(a, "--chunk", v)) || (m = value(a, "--tile", v))) {
      if (m < 0) return false;
      bool isChunk = a.rfind("--chunk", 0) == 0;
      auto n = parseIntList(v);
      if (!n || n->size() != 1 || (*n)[0] < 0 || (*n)[0] > 4096)
        return usageError(err, std::string(isChunk ? "--chunk" : "--tile") + " expects a non-negative integer; got '" + v + "'");
      (isChunk ? o.chunk : o.tile) = static_cast<int>((*n)[0]);
    } else if ((m = value(a, "--stages", v))) {
      if (m < 0) return false;
      if (v != "1" && v != "2") return usageError(err, "--stages expects 1 or 2; got '" + v + "'");
      o.stages = v == "2" ? 2 : 1;
    } else if ((m = value(a, "--print-after", o.printAfter))) {
      if (m < 0) return false;
    } else if ((m = value(a, "--pass", o.pass))) {
      if (m < 0) return false;
    } else if ((m = value(a, "--input", o.input))) {
      if (m < 0) return false;
      if (o.input != "lina" && o.input != "rir" && o.input != "cir")
        return usageError(err, "--input expects lina, rir or cir; got '" + o.input + "'");
    } else if (a == "--time-passes") {
      o.timePasses = true;
    } else if ((m = value(a, "--shape", v))) {
      if (m < 0) return false;
      auto list = parseIntList(v);
      if (!list || list->size() != 3 || (*list)[0] < 1 || (*list)[1] < 0 || (*list)[2] < 1)
        return usageError(err, "--shape expects B,T,H with B >= 1, T >= 0, H >= 1; got '" + v + "'");
      o.shape.batch = (*list)[0];
      o.shape.time = (*list)[1];
      o.shape.heads = (*list)[2];
    } else if ((m = value(a, "--dims", v))) {
      if (m < 0) return false;
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) {
        size_t eq = item.find('=');
        auto n = eq == std::string::npos ? std::nullopt : parseIntList(item.substr(eq + 1));
        if (!n || n->size() != 1 || (*n)[0] < 1 || (*n)[0] > 4096)
          return usageError(err, "--dims expects NAME=SIZE pairs with 1 <= SIZE <= 4096, e.g. K=64,V=64; got '" + item + "'");
        o.shape.dims[item.substr(0, eq)] = (*n)[0];
      }
    } else if ((m = value(a, "--seed", v))) {
      if (m < 0) return false;
      auto n = parseIntList(v);
      if (!n || n->size() != 1 || (*n)[0] < 0) return usageError(err, "--seed expects a non-negative integer; got '" + v + "'");
      o.seed = static_cast<uint64_t>((*n)[0]);
    } else if ((m = value(a, "--varlen", v))) {
      if (m < 0) return false;
      auto n = parseIntList(v);
      if (!n || n->size() < 2) return usageError(err, "--varlen expects cu_seqlens such as 0,5,5,12; got '" + v + "'");
      o.shape.cuSeqlens = *n;
    } else if ((m = value(a, "--param", v))) {
      if (m < 0) return false;
      size_t eq = v.find('=');
      char* end = nullptr;
      double x = eq == std::string::npos ? 0 : std::strtod(v.c_str() + eq + 1, &end);
      if (eq == std::string::npos || eq == 0 || end == v.c_str() + eq + 1 || *end != '\0')
        return usageError(err, "--param expects NAME=NUMBER, e.g. scale=0.125; got '" + v + "'");
      o.params[v.substr(0, eq)] = x;
    } else if (a == "--backward") {
      o.backward = true;
    } else if (a == "--fd") {
      o.finiteDifferences = true;
    } else if (a == "--cache-stats") {
      o.cacheStats = true;
    } else if (a == "--initial-state") {
      o.shape.initialStates = true;
    } else if ((m = value(a, "--name", o.name))) {
      if (m < 0) return false;
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return usageError(err, "unknown option '" + a + "'");
    } else if (o.file.empty()) {
      o.file = a;
    } else {
      return usageError(err, "more than one input file ('" + o.file + "' and '" + a + "')");
    }
  }
  if (o.file.empty()) return usageError(err, "no input file");
  if (!o.pass.empty() && o.pass != "lower-ast-to-rir" && !passes::findPass(o.pass)) {
    std::string known = "lower-ast-to-rir";
    for (const passes::PassInfo& p : passes::catalog()) known += std::string(", ") + p.name;
    return usageError(err, "--pass: unknown pass '" + o.pass + "'; the passes are " + known);
  }
  if (!o.printAfter.empty() && o.printAfter != "all" && o.printAfter != "lower-ast-to-rir" &&
      !passes::findPass(o.printAfter))
    return usageError(err, "--print-after: unknown pass '" + o.printAfter + "'; use a name from --list-passes or all");
  if (!o.shape.cuSeqlens.empty()) {
    if (o.shape.batch != 1) return usageError(err, "--varlen needs B = 1 in --shape (sequences are packed)");
    o.shape.time = o.shape.cuSeqlens.back();
  }
  return true;
}

// Compiles (or parses) the input into RIR according to the options.
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

std::map<std::string, int64_t> dimsFor(const rir::Recurrence& rec, const Options& o, int64_t fallback) {
  std::map<std::string, int64_t> dims;
  for (const std::string& d : rec.dims) dims[d] = o.shape.dims.count(d) ? o.shape.dims.at(d) : fallback;
  return dims;
}

// --emit=cir|cuda: the kernel of the chosen strategy and chunk for each recurrence.
int emitKernels(const Options& o, const rir::Module& m, DiagnosticEngine& diags, std::ostream& out, std::ostream& err) {
  for (const rir::Recurrence& rec : m.recurrences) {
    if (!o.name.empty() && rec.name != o.name) continue;
    cir::Strategy strategy = o.strategy == "recurrent" ? cir::Strategy::Recurrent
                             : o.strategy == "split"   ? cir::Strategy::Split
                                                       : cir::Strategy::Fused;
    int chunk = o.chunk ? o.chunk : static_cast<int>(rec.chunkSizes.front());
    // The split strategy is two kernels: the walk (states) and the per-chunk outputs.
    std::vector<cir::Phase> phases = {cir::Phase::Whole};
    if (strategy == cir::Strategy::Split) phases = {cir::Phase::States, cir::Phase::Outputs};
    for (cir::Phase phase : phases) {
      std::optional<cir::Kernel> k = cir::lowerRirToCir(rec, strategy, chunk, diags, phase);
      if (!k) return 1;
      if (o.emit == "cir") {
        cir::print(out, *k);
        continue;
      }
      try {
        cir::Specialization spec;
        spec.dims = dimsFor(rec, o, 64);
        spec.dtype = o.dtype;
        spec.tile = o.tile;
        spec.stages = o.stages;
      spec.stages = o.stages;
        out << codegen::emitCuda(*k, spec, o.file).source;
      } catch (const Error& e) {
        err << "linac: error: " << e.what() << '\n';
        return 2;
      }
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
      spec.stages = o.stages;
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

int compile(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
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
    if (m && o.backward) {
      // The derived backward's forward-time pass A replaces each recurrence; every later stage
      // (RIR print, CIR, CUDA) handles it like any program.
      // Both passes, as two recurrences: every later stage handles them like any program.
      rir::Module derived;
      for (const rir::Recurrence& rec : m->recurrences) {
        std::optional<rir::Recurrence> a = passes::deriveBackwardPassA(rec, diags);
        std::optional<passes::DerivedPassB> b = passes::deriveBackwardPassB(rec, diags);
        if (!a || !rir::verify(*a, diags) || !b || !rir::verify(b->program, diags)) {
          derived.recurrences.clear();
          break;
        }
        derived.recurrences.push_back(std::move(*a));
        if (b) derived.recurrences.push_back(std::move(b->program));
      }
      if (derived.recurrences.empty()) m.reset();
      else m = std::move(derived);
    }
    if (m && o.printAfter.empty()) {
      if (o.emit == "rir") rir::print(out, *m);
      else code = emitKernels(o, *m, diags, out, err);
    }
    if (!m) code = 1;
  }
  diags.print(err);
  return diags.hasErrors() ? 1 : code;
}

int runReference(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  DiagnosticEngine diags(sources);
  diags.setToolName("linac");
  std::optional<rir::Module> m = buildModule(o, sources, file, diags, out);
  diags.print(err);
  if (!m) return 1;
  bool any = false;
  for (const rir::Recurrence& rec : m->recurrences) {
    if (!o.name.empty() && rec.name != o.name) continue;
    any = true;
    for (const auto& [dim, size] : o.shape.dims) {
      (void)size;
      if (std::find(rec.dims.begin(), rec.dims.end(), dim) != rec.dims.end() || !o.name.empty()) continue;
      bool elsewhere = false;
      for (const rir::Recurrence& other : m->recurrences)
        elsewhere = elsewhere || std::find(other.dims.begin(), other.dims.end(), dim) != other.dims.end();
      if (!elsewhere) {
        std::string known;
        for (const std::string& d : rec.dims) known += (known.empty() ? "" : ", ") + d;
        err << "linac: error: --dims: '" << dim << "' is not a dim of @" << rec.name << " (its dims are " << known
            << ")\n";
        return 2;
      }
    }
    reference::Problem problem = reference::makeRandomProblem(rec, o.shape, o.seed);
    problem.scalarParams = o.params;
    std::string error;
    std::optional<reference::Result> result = reference::run(rec, problem, error);
    if (!result) {
      err << "linac: error: @" << rec.name << ": " << error;
      if (error.find("has no default and is missing") != std::string::npos) err << " (run-reference: --param NAME=NUMBER)";
      err << '\n';
      return 2;
    }
    out << "@" << rec.name << " B=" << problem.batch << " T=" << problem.time << " H=" << problem.heads;
    for (const auto& [d, n] : problem.dims) out << ' ' << d << '=' << n;
    if (!problem.cuSeqlens.empty()) out << " varlen N=" << reference::sequenceCount(problem);
    out << " seed=" << o.seed << '\n';
    reference::printStatistics(out, *result);
    if (o.backward) {
      reference::Cotangents ct = reference::randomCotangents(*result, o.seed + 1);
      std::optional<reference::Gradients> grads = reference::runBackward(rec, problem, ct, error);
      if (!grads) {
        err << "linac: error: @" << rec.name << ": " << error << '\n';
        return 2;
      }
      reference::Result asTensors;  // print the gradients with the same statistics format
      for (const auto& [name, t] : grads->inputs) asTensors.outputs["d" + name] = t;
      for (const auto& [name, t] : grads->initialStates) asTensors.finalStates["d" + name + "0"] = t;
      for (const auto& [name, t] : grads->vectorParams) asTensors.outputs["d" + name] = t;
      reference::printStatistics(out, asTensors, "grad  ", "grad  ");
      for (const auto& [name, v] : grads->scalarParams) out << "grad   d" << name << " " << v << '\n';
      if (o.finiteDifferences) {
        reference::FiniteDifferenceReport fd = reference::finiteDifferences(rec, problem, ct, *grads);
        char line[200];
        std::snprintf(line, sizeof line, "finite differences: %lld entries, max relative error %.2e (at %s)\n",
                      static_cast<long long>(fd.entriesChecked), fd.maxError, fd.worst.empty() ? "-" : fd.worst.c_str());
        out << line;
        if (!(fd.maxError <= 1e-6)) return 1;
      }
    }
  }
  if (!any) {
    err << "linac: error: --name: no recurrence named '" << o.name << "' in " << o.file << '\n';
    return 2;
  }
  return 0;
}

// linac compile: NVRTC-compiles every kernel the tuner may pick for these dims and dtype.
int compileKernels(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  std::string arch = o.arch;
  if (arch.empty()) arch = cuda::available() ? cuda::deviceInfo(0).arch : "sm_90a";
  for (const rir::Recurrence& rec : [&] {
         DiagnosticEngine diags(sources);
         diags.setToolName("linac");
         std::optional<rir::Module> m = compileToRir(sources, file, diags);
         diags.print(err);
         return m ? m->recurrences : std::vector<rir::Recurrence>{};
       }()) {
    try {
      Program program = Program::fromSource(o.file, std::string(sources.text(file)));
      std::map<std::string, int64_t> dims = dimsFor(rec, o, 64);
      std::vector<KernelConfig> configs = program.candidateConfigs(dims, o.dtype, runtime::sharedMemoryLimitForArch(arch));
      if (configs.empty()) {
        err << "linac: error: @" << rec.name << ": no kernel fits " << runtime::sharedMemoryLimitForArch(arch) << " bytes of shared memory on "
            << arch << '\n';
        return 1;
      }
      runtime::KernelCache cache("-");
      for (const KernelConfig& c : configs)
        for (const codegen::EmittedKernel& k : program.emitKernels(c, dims, o.dtype)) {
        runtime::CompileResult r = runtime::compileToCubin(k.source, k.name + ".cu", arch);
        char line[256];
        std::snprintf(line, sizeof line, "%-32s %-6s %s tile=%-3d stages=%d smem=%6lld B  cubin=%7zu B  nvrtc %.0f ms\n",
                      k.name.c_str(), arch.c_str(), o.dtype.c_str(), k.tile, k.stages, static_cast<long long>(k.smem.totalBytes),
                      r.cubin.size(), r.milliseconds);
        out << line;
      }
    } catch (const Error& e) {
      err << "linac: error: " << e.what() << '\n';
      return 1;
    }
  }
  return 0;
}

// linac check: GPU kernels against the reference interpreter, per output and final state.
int checkKernels(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  try {
    Program program = Program::fromSource(o.file, std::string(sources.text(file)));
    CheckOptions c;
    c.shape = o.shape;
    c.dtype = o.dtype;
    c.strategy = o.strategy;
    c.chunk = o.chunk;
    c.tile = o.tile;
    c.seed = o.seed;
    CheckReport report;
    if (o.backward) {
      BackwardCheckOptions b;
      b.check = c;
      report = checkBackward(program, b);
    } else {
      report = checkForward(program, c);
    }
    out << "@" << program.recurrence().name << (o.backward ? " backward" : "") << " kernel " << report.kernel << " dtype " << o.dtype << " B="
        << o.shape.batch << " T=" << o.shape.time << " H=" << o.shape.heads << '\n';
    for (const CheckEntry& e : report.entries) {
      char line[200];
      std::snprintf(line, sizeof line, "  %-14s rms-error-ratio %.3e  max-abs %.3e%s\n", e.name.c_str(), e.ratio,
                    e.maxAbs, e.finite ? "" : "  NON-FINITE");
      out << line;
    }
    out << (report.passed() ? "PASS" : "FAIL") << " (tolerance " << report.tolerance << ")\n";
    if (o.cacheStats) {
      runtime::CacheStats s = runtime::KernelCache::global().stats();
      out << "cache: " << s.compiles << " compiled, " << s.diskHits << " from disk, " << s.memoryHits
          << " from memory, " << s.corruptEntries << " corrupt (" << runtime::KernelCache::global().directory() << ")\n";
    }
    return report.passed() ? 0 : 1;
  } catch (const Error& e) {
    err << "linac: error: " << e.what() << '\n';
    return 2;
  }
}

int dispatch(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  if (o.command == "run-reference") return runReference(o, sources, file, out, err);
  if (o.command == "compile") return compileKernels(o, sources, file, out, err);
  if (o.command == "check") return checkKernels(o, sources, file, out, err);
  return compile(o, sources, file, out, err);
}

bool handleInfo(const std::vector<std::string>& args, std::ostream& out) {
  for (const std::string& a : args) {
    if (a == "--help" || a == "-h") {
      out << kUsage;
      return true;
    }
    if (a == "--list-passes") {
      out << "lower-ast-to-rir     checked AST -> RIR\n";
      for (const std::string& name : rirPipelineOrder()) {
        const passes::PassInfo* p = passes::findPass(name);
        out << name << std::string(name.size() < 21 ? 21 - name.size() : 1, ' ') << p->summary << '\n';
      }
      return true;
    }
  }
  return false;
}

}  // namespace

int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  if (handleInfo(args, out)) return 0;
  Options o;
  if (!parseOptions(args, o, err)) return 2;
  SourceManager sources;
  std::string error;
  uint32_t file = sources.addFile(o.file, error);
  if (!file) {
    err << "linac: error: " << error << '\n';
    return 2;
  }
  return dispatch(o, sources, file, out, err);
}

int runOnSource(const std::string& name, const std::string& source, const std::vector<std::string>& args,
                std::ostream& out, std::ostream& err) {
  std::vector<std::string> withFile = args;
  withFile.push_back(name);
  Options o;
  if (!parseOptions(withFile, o, err)) return 2;
  SourceManager sources;
  uint32_t file = sources.addBuffer(name, source);
  return dispatch(o, sources, file, out, err);
}

}  // namespace lina::linac
