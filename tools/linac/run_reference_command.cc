// linac run-reference FILE: the CPU reference interpreter on random inputs (and, with
// --backward, the exact reference gradients, optionally against finite differences).
#include <algorithm>
#include <cstdio>

#include "compiler/reference/backward.h"
#include "compiler/reference/interpreter.h"
#include "compiler/reference/random_problem.h"
#include "tools/linac/commands.h"

namespace lina::linac {

int runReferenceCommand(const Options& o, SourceManager& sources, uint32_t file, std::ostream& out, std::ostream& err) {
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

}  // namespace lina::linac
