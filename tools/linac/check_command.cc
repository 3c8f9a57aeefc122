// linac check FILE: the GPU kernels against the reference (forward or --backward).
#include <cstdio>

#include "runtime/check/backward_check.h"
#include "runtime/check/forward_check.h"
#include "runtime/kernel_cache.h"
#include "runtime/program.h"
#include "support/error.h"
#include "tools/linac/commands.h"

namespace lina::linac {

// linac check: GPU kernels against the reference interpreter, per output and final state.
int checkCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
  try {
    Program program = Program::fromSource(o.file, std::string(sources.text(file)));
    CheckOptions c;
    c.shape = o.shape;
    c.dtype = o.dtype;
    c.strategy = o.strategy;
    c.kernels = o.kernels;
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

}  // namespace lina::linac
