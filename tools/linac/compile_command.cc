// linac compile FILE: NVRTC-compiles every kernel the tuner may pick (no GPU needed).
#include <cstdio>

#include "compiler/pipeline/pipeline.h"
#include "runtime/kernel_cache.h"
#include "runtime/nvrtc_compiler.h"
#include "runtime/program.h"
#include "support/error.h"
#include "tools/linac/commands.h"

namespace lina::linac {

// linac compile: NVRTC-compiles every kernel the tuner may pick for these dims and dtype.
int compileCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  const std::string arch = targetArch(o);
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

}  // namespace lina::linac
