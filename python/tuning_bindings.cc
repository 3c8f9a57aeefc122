// lina.tune (the tuner from Python) and LINA_TUNE=1 in Python processes: binds
// runtime/tuning/tuner.h where the tuning database is built.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>

#include "runtime/program.h"
#include "runtime/tuning/tuner.h"
#include "support/error.h"

namespace py = pybind11;

namespace lina::python {

void bindTuning(py::module_& m) {
  tuning::installTuneOnMiss();
  m.def(
      "tune",
      [](const Program& program, const std::map<std::string, int64_t>& dims,
         const std::vector<int64_t>& shape, const std::string& dtype,
         const std::vector<int64_t>& cuSeqlens, int reps, bool record,
         const std::string& databasePath) {
        if (shape.size() != 3)
          throw Error("shape: expected (B, T, H); got " + std::to_string(shape.size()) + " values");
        for (int64_t v : shape)
          if (v < 1) throw Error("shape: B, T and H must be at least 1; got " + std::to_string(v));
        if (reps < 1 || reps > 10000)
          throw Error("reps: expected 1..10000; got " + std::to_string(reps));
        tuning::TuneOptions t;
        t.shape.dtype = dtype;
        t.shape.batch = shape[0];
        t.shape.time = shape[1];
        t.shape.heads = shape[2];
        t.shape.dims = dims;
        t.cuSeqlens = cuSeqlens;
        t.reps = reps;
        t.record = record;
        t.databasePath = databasePath;
        t.progress = [](const std::string&) {};
        tuning::TuneResult r;
        {
          py::gil_scoped_release release;
          r = tuning::tune(program, t);
        }
        py::list candidates;
        for (size_t i = 0; i < r.candidates.size(); ++i) {
          const tuning::CandidateResult& c = r.candidates[i];
          py::dict d;
          d["label"] = c.candidate.label;
          d["kernels"] = c.kernels;
          d["ms"] = std::isfinite(c.ms) ? py::object(py::float_(c.ms)) : py::object(py::none());
          d["check_ratio"] =
              c.checked ? py::object(py::float_(c.checkRatio)) : py::object(py::none());
          d["status"] = r.best && *r.best == i ? std::string("best")
                        : c.rejected.empty()   ? std::string("timed")
                                               : c.rejected;
          candidates.append(d);
        }
        py::dict out;
        out["bucket"] = r.key.bucket.text();
        out["candidates"] = candidates;
        out["best"] = r.best ? py::object(py::str(r.candidates[*r.best].candidate.label))
                             : py::object(py::none());
        out["best_ms"] =
            r.best ? py::object(py::float_(r.candidates[*r.best].ms)) : py::object(py::none());
        out["heuristic"] = r.heuristicKernels;
        out["heuristic_ms"] = std::isfinite(r.heuristicMs) ? py::object(py::float_(r.heuristicMs))
                                                           : py::object(py::none());
        out["database"] = r.databasePath;
        out["report"] = tuning::reportTable(r);
        return out;
      },
      py::arg("program"), py::arg("dims"), py::arg("shape"), py::arg("dtype") = "bf16",
      py::arg("cu_seqlens") = std::vector<int64_t>{}, py::arg("reps") = 20,
      py::arg("record") = true, py::arg("database") = "");
}

}  // namespace lina::python
