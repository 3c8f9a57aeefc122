// linac tune FILE: tunes the program's forward schedule for one shape on this GPU and records the
// fastest checked candidate in the device's tuning database (runtime/tuning/tuner.h).
#include <cstdio>

#include "runtime/program.h"
#include "support/error.h"
#include "tools/linac/commands.h"

#if LINA_HAVE_TUNING
#include "runtime/tuning/tuner.h"
#endif

namespace lina::linac {

int tuneCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
#if !LINA_HAVE_TUNING
  (void)o, (void)sources, (void)file, (void)out;
  err << "linac: error: tune: this build has no tuning database (nlohmann-json was not found at configure time; install "
         "nlohmann-json3-dev and reconfigure)\n";
  return 2;
#else
  try {
    Program program = Program::fromSource(o.file, std::string(sources.text(file)));
    const rir::Recurrence& rec = program.recurrence();
    tuning::TuneOptions t;
    t.shape.dtype = o.dtype;
    t.shape.batch = o.shape.batch;
    t.shape.time = o.shape.time;
    t.shape.heads = o.shape.heads;
    t.shape.dims = dimsFor(rec, o, 64);
    t.cuSeqlens = o.shape.cuSeqlens;
    t.reps = o.reps;
    t.jobs = o.jobs;
    const tuning::TuneResult r = tuning::tune(program, t);
    if (o.report) out << tuning::reportTable(r);
    char line[512];
    if (r.best) {
      const tuning::CandidateResult& b = r.candidates[*r.best];
      std::snprintf(line, sizeof line, "@%s %s %s: best %s %.4f ms, heuristic %s %.4f ms (%.2fx)\n", rec.name.c_str(), o.dtype.c_str(),
                    r.key.bucket.text().c_str(), b.candidate.label.c_str(), b.ms, r.heuristicKernels.c_str(), r.heuristicMs,
                    r.heuristicMs / b.ms);
      out << line;
    } else {
      out << "@" << rec.name << ": no candidate passed the check\n";
    }
    std::snprintf(line, sizeof line, "candidates %zu, compiled %d, rejected by the check %d, timed %d; tuning took %.1f s%s%s\n",
                  r.candidates.size(), r.compiled, r.rejectedByCheck, r.timed, r.wallMs / 1000,
                  r.databasePath.empty() ? "" : "; recorded in ", r.databasePath.c_str());
    out << line;
    return r.best ? 0 : 1;
  } catch (const Error& e) {
    err << "linac: error: " << e.what() << '\n';
    return 2;
  }
#endif
}

}  // namespace lina::linac
