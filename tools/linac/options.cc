#include "tools/linac/options.h"

#include <charconv>
#include <cstdlib>
#include <sstream>

#include "compiler/passes/passes.h"
#include "compiler/pipeline/pipeline.h"
#include "runtime/cuda_driver.h"

namespace lina::linac {

const char* kUsage =
    "usage: linac FILE [options]            compile a .lina (or .rir) file and print an IR\n"
    "       linac run-reference FILE [options]  run the CPU reference interpreter on random inputs\n"
    "       linac compile FILE --arch sm_90a    NVRTC-compile every kernel the tuner may pick (no GPU needed)\n"
    "       linac check FILE [options]          run the kernels on the GPU against the reference\n"
    "       linac tune FILE [options]           tune its schedule for a shape on this GPU (tuning database)\n"
    "       linac --list-passes | --version | --help\n"
    "\n"
    "print options (linac FILE):\n"
    "  --emit=ast|rir|cir|kir|cuda|llvm what to print (default rir, after the whole pipeline); cir, kir and\n"
    "                          cuda show the kernels the runtime would launch for this request on --arch\n"
    "                          (kir: the register-tile kernel, or why the request has none); llvm: the\n"
    "                          CPU backend's module (fused at --chunk, default 16, or recurrent) after O3\n"
    "  --kernels=auto|register|simt  the kernel level: register tiles where they apply (auto), only\n"
    "                          them, or the CIR kernels with values in shared memory\n"
    "  --strategy=auto|fused|split|recurrent, --chunk=N, --tile=N, --warps=N, --stages=1|2 (2: prefetch\n"
    "                          with cp.async), --dtype=bf16|fp16|fp32, --dims K=64,V=64 (default 64 each),\n"
    "                          --shape B,T,H (default 1,4096,1): the request; what is not given is chosen\n"
    "                          as the runtime chooses it\n"
    "  --backward              the derived backward: its two passes (with --emit=cuda, as launched)\n"
    "  --print-after=STAGE|all print the IR after a pipeline stage; \"(unchanged)\" when it changed nothing\n"
    "  --pass=PASS             run only PASS (lower-ast-to-rir: lowering alone) and print the result\n"
    "  --time-passes           print the time of each stage\n"
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
    "compile options: --arch sm_80|sm_90a|... (default: the GPU's, else sm_90a; also sizes --emit's\n"
    "               shared memory), --dims, --dtype\n"
    "check options: --shape, --dims, --dtype, --varlen, --initial-state, --seed, --strategy, --chunk, --tile,\n"
    "               --backward (the gradients of every input, initial state and param against the exact\n"
    "               reference backward)\n"
    "tune options: --shape B,T,H (default 1,4096,1), --dims, --dtype, --varlen, --reps N (timed runs per\n"
    "               candidate, default 20), --jobs N (compile threads), --report (every candidate: time,\n"
    "               check error, why pruned). Every candidate is checked against the reference on a probe\n"
    "               problem before it is timed; the fastest goes to $LINA_CACHE_DIR/tuning/. LINA_TUNE=0\n"
    "               makes launches ignore the database.\n";

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
  if (!args.empty() && (args[0] == "run-reference" || args[0] == "compile" || args[0] == "check" || args[0] == "tune")) {
    o.command = args[0];
    o.shape.time = args[0] == "tune" ? 4096 : 16;
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
      if (o.emit != "ast" && o.emit != "rir" && o.emit != "cir" && o.emit != "kir" && o.emit != "cuda" && o.emit != "llvm")
        return usageError(err, "--emit expects ast, rir, cir, kir, cuda or llvm; got '" + o.emit + "'");
    } else if ((m = value(a, "--dtype", o.dtype))) {
      if (m < 0) return false;
      if (o.dtype != "bf16" && o.dtype != "fp16" && o.dtype != "fp32")
        return usageError(err, "--dtype expects bf16, fp16 or fp32; got '" + o.dtype + "'");
    } else if ((m = value(a, "--strategy", o.strategy))) {
      if (m < 0) return false;
      if (o.strategy != "auto" && o.strategy != "fused" && o.strategy != "split" && o.strategy != "recurrent")
        return usageError(err, "--strategy expects auto, fused, split or recurrent; got '" + o.strategy + "'");
    } else if ((m = value(a, "--kernels", o.kernels))) {
      if (m < 0) return false;
      if (o.kernels != "auto" && o.kernels != "register" && o.kernels != "simt")
        return usageError(err, "--kernels expects auto, register or simt; got '" + o.kernels + "'");
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
    } else if ((m = value(a, "--warps", v))) {
      if (m < 0) return false;
      auto n = parseIntList(v);
      if (!n || n->size() != 1 || (*n)[0] < 1 || (*n)[0] > 32)
        return usageError(err, "--warps expects 1 to 32 warps per CTA; got '" + v + "'");
      o.warps = static_cast<int>((*n)[0]);
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
      o.shapeGiven = true;
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
    } else if (a == "--report") {
      o.report = true;
    } else if ((m = value(a, "--reps", v)) || (m = value(a, "--jobs", v))) {
      if (m < 0) return false;
      const bool reps = a.rfind("--reps", 0) == 0;
      auto n = parseIntList(v);
      if (!n || n->size() != 1 || (*n)[0] < 1 || (*n)[0] > 10000)
        return usageError(err, std::string(reps ? "--reps" : "--jobs") + " expects an integer from 1 to 10000; got '" + v + "'");
      (reps ? o.reps : o.jobs) = static_cast<int>((*n)[0]);
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
  if (!o.printAfter.empty() && o.printAfter != "all" && !findStage(o.printAfter))
    return usageError(err, "--print-after: unknown stage '" + o.printAfter + "'; use a name from --list-passes or all");
  if (!o.shape.cuSeqlens.empty()) {
    if (o.shape.batch != 1) return usageError(err, "--varlen needs B = 1 in --shape (sequences are packed)");
    o.shape.time = o.shape.cuSeqlens.back();
  }
  return true;
}

std::map<std::string, int64_t> dimsFor(const rir::Recurrence& rec, const Options& o, int64_t fallback) {
  std::map<std::string, int64_t> dims;
  for (const std::string& d : rec.dims) dims[d] = o.shape.dims.count(d) ? o.shape.dims.at(d) : fallback;
  return dims;
}

std::string targetArch(const Options& o) {
  if (!o.arch.empty()) return o.arch;
  return cuda::available() ? cuda::deviceInfo(0).arch : "sm_90a";
}

}  // namespace lina::linac
