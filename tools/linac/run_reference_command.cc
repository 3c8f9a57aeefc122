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
    // The reference holds every tensor in double precision: refuse what it cannot hold before
    // allocating (a --shape of 1e11 tokens used to end in std::bad_alloc).
    {
      auto dimSize = [&](const std::string& d) {
        auto it = o.shape.dims.find(d);
        return static_cast<double>(it == o.shape.dims.end() ? 16 : it->second);
      };
      auto product = [&](const rir::Shape& shape) {
        double p = 1;
        for (const std::string& d : shape) p *= dimSize(d);
        return p;
      };
      const double tokens = o.shape.cuSeqlens.empty() ? static_cast<double>(o.shape.batch) * static_cast<double>(o.shape.time)
                                                      : static_cast<double>(o.shape.cuSeqlens.back());
      const double sequences = o.shape.cuSeqlens.empty() ? static_cast<double>(o.shape.batch)
                                                         : static_cast<double>(o.shape.cuSeqlens.size() - 1);
      const double heads = static_cast<double>(o.shape.heads);
      double elements = 0;
      for (const rir::Decl& d : rec.inputs) elements += tokens * heads * product(d.shape);
      for (const rir::Decl& d : rec.outputs) elements += tokens * heads * product(d.shape);
      for (const rir::Decl& d : rec.states)
        if (d.shapeKnown) elements += 2 * sequences * heads * product(d.shape);
      constexpr double kLimitBytes = 8.0 * (1ull << 30);
      if (elements * 8 * (o.backward ? 3 : 1) > kLimitBytes) {
        char gb[32];
        std::snprintf(gb, sizeof gb, "%.1f", elements * 8 * (o.backward ? 3 : 1) / (1ull << 30));
        err << "linac: error: --shape: the reference would hold " << gb << " GB of double-precision tensors for @" << rec.name
            << " (B*T = " << static_cast<long long>(tokens) << " tokens, H = " << o.shape.heads
            << "); the limit is 8 GB: pick a smaller --shape or --dims\n";
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
