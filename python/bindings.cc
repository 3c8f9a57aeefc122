// lina._lina: the C++ library for Python. Programs (compile, IR and CUDA text), the CPU
// reference (forward and exact backward, on numpy arrays in double precision) and the GPU
// forward/backward on raw device pointers (what lina.ops passes from torch tensors: no copies,
// the caller's stream, no host synchronization). lina::Error becomes lina.LinaError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <sstream>

#include "runtime/versions.h"
#if LINA_HAVE_LLVM
#include "runtime/cpu/llvm_backend.h"
#endif
#include "compiler/reference/backward.h"
#include "compiler/reference/interpreter.h"
#include "compiler/rir/printer.h"
#include "library/library.h"
#include "python/dlpack.h"
#include "runtime/cuda_driver.h"
#include "support/error.h"
#include "runtime/nvrtc_compiler.h"
#include "runtime/program.h"

namespace py = pybind11;
using namespace lina;

namespace {

using Array = py::array_t<double, py::array::c_style | py::array::forcecast>;

reference::Tensor toTensor(const Array& a) {
  std::vector<int64_t> shape(a.shape(), a.shape() + a.ndim());
  reference::Tensor t(shape);
  std::copy(a.data(), a.data() + a.size(), t.data.begin());
  return t;
}

Array toArray(const reference::Tensor& t) {
  Array a(std::vector<py::ssize_t>(t.shape.begin(), t.shape.end()));
  std::copy(t.data.begin(), t.data.end(), a.mutable_data());
  return a;
}

std::map<std::string, Array> toArrays(const std::map<std::string, reference::Tensor>& m) {
  std::map<std::string, Array> out;
  for (const auto& [name, t] : m) out.emplace(name, toArray(t));
  return out;
}

py::list decls(const std::vector<rir::Decl>& ds) {
  py::list out;
  for (const rir::Decl& d : ds) {
    py::dict e;
    e["name"] = d.name;
    e["shape"] = d.shape;
    e["is_gate"] = d.isGate;
    out.append(e);
  }
  return out;
}

std::string printed(const rir::Recurrence& r) {
  std::ostringstream os;
  rir::print(os, r);
  return os.str();
}

#if LINA_HAVE_LLVM
// The CPU backend's kernel for a call: `auto` takes the recurrent kernel, the fastest on CPUs
// (bench/cpu_forward_llvm.py: the chunked form's intra-chunk exps cost more than they save
// without tensor cores), unless a chunk is asked for.
cir::Kernel cpuKernel(const Program& p, const std::string& strategy, int chunk) {
  if (strategy != "auto" && strategy != "fused" && strategy != "recurrent")
    throw Error("strategy: the CPU backend runs 'auto', 'fused' or 'recurrent' kernels; got '" + strategy + "'");
  const bool recurrent = strategy == "recurrent" || (strategy == "auto" && chunk <= 0);
  return p.kernel(recurrent ? cir::Strategy::Recurrent : cir::Strategy::Fused, recurrent ? 1 : (chunk > 0 ? chunk : 16));
}
#endif

reference::Problem problemFrom(const Program& p, int64_t batch, int64_t time, int64_t heads,
                               const std::map<std::string, int64_t>& dims, const std::map<std::string, Array>& inputs,
                               const std::map<std::string, Array>& initialStates,
                               const std::map<std::string, double>& scalarParams,
                               const std::map<std::string, Array>& vectorParams, const std::vector<int64_t>& cuSeqlens) {
  reference::Problem problem;
  problem.batch = batch;
  problem.time = time;
  problem.heads = heads;
  problem.dims = dims;
  problem.cuSeqlens = cuSeqlens;
  for (const std::string& d : p.recurrence().dims)
    if (!dims.count(d)) throw Error("dims: '" + d + "' needs a size; pass dims={'" + d + "': N, ...}");
  for (const auto& [name, a] : inputs) problem.inputs[name] = toTensor(a);
  for (const auto& [name, a] : initialStates) problem.initialStates[name] = toTensor(a);
  for (const auto& [name, a] : vectorParams) problem.vectorParams[name] = toTensor(a);
  problem.scalarParams = scalarParams;
  return problem;
}

template <typename T>
T* pointer(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

ForwardArgs forwardArgs(const std::string& dtype, int64_t batch, int64_t time, int64_t heads,
                        const std::map<std::string, int64_t>& dims, const std::map<std::string, uintptr_t>& inputs,
                        const std::map<std::string, uintptr_t>& initialStates,
                        const std::map<std::string, double>& scalarParams,
                        const std::map<std::string, uintptr_t>& vectorParams, uintptr_t cuSeqlens, bool cuSeqlens64,
                        int64_t numSequences, uintptr_t stream, const std::string& strategy, int chunk) {
  ForwardArgs a;
  a.dtype = dtype;
  a.batch = batch;
  a.time = time;
  a.heads = heads;
  a.dims = dims;
  for (const auto& [n, p] : inputs) a.inputs[n] = pointer<const void>(p);
  for (const auto& [n, p] : initialStates) a.initialStates[n] = pointer<const float>(p);
  a.scalarParams = scalarParams;
  for (const auto& [n, p] : vectorParams) a.vectorParams[n] = pointer<const float>(p);
  a.cuSeqlens = pointer<const void>(cuSeqlens);
  a.cuSeqlens64 = cuSeqlens64;
  a.numSequences = numSequences;
  a.stream = reinterpret_cast<CUstream>(stream);
  a.strategy = strategy;
  a.chunk = chunk;
  // LINA_KERNELS=auto|register|simt: which kernel level lina.ops uses (side-by-side benchmarks
  // and accuracy comparisons of one level; the same choice as linac/lina-bench --kernels).
  if (const char* k = std::getenv("LINA_KERNELS"); k && *k) {
    const std::string level = k;
    if (level != "auto" && level != "register" && level != "simt")
      throw lina::Error("LINA_KERNELS: expected auto, register or simt; got '" + level + "' (unset it for auto)");
    a.kernels = level;
  }
  return a;
}

}  // namespace

#if LINA_HAVE_MODEL
namespace lina::python {
void bindModels(py::module_& m);  // model_bindings.cc
}
#endif
#if LINA_HAVE_TUNING
namespace lina::python {
void bindTuning(py::module_& m);  // tuning_bindings.cc
}
#endif

PYBIND11_MODULE(_lina, m) {
  m.doc() = "lina: a JIT compiler for linear-attention recurrences (C++ core)";
  static py::exception<Error> linaError(m, "LinaError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(linaError.ptr(), e.what());
    }
  });

  dlpack::bind(m);
#if LINA_HAVE_MODEL
  python::bindModels(m);
#endif
#if LINA_HAVE_TUNING
  python::bindTuning(m);
#endif

  m.def("library_programs", [] {
    std::vector<std::string> names;
    for (const library::Program& p : library::programs()) names.emplace_back(p.name);
    return names;
  });
  m.attr("__version__") = runtime::linaVersion();
  m.def("versions", [] {
    const runtime::Versions v = runtime::versions();
    py::dict d;
    d["lina"] = v.lina;
    d["nvrtc"] = v.nvrtc;
    d["cuda_driver"] = v.driver;
    return d;
  });
  m.def("llvm_available", [] { return LINA_HAVE_LLVM != 0; });
  m.def("cuda_available", [] {
    std::string why;
    bool ok = cuda::available(&why);
    return py::make_tuple(ok, why);
  });

  py::class_<Program>(m, "Program")
      .def_static("from_source", &Program::fromSource, py::arg("name"), py::arg("source"))
      .def_static("from_file", &Program::fromFile, py::arg("path"))
      .def_static("from_library", &Program::fromLibrary, py::arg("name"))
      .def_property_readonly("name", [](const Program& p) { return p.recurrence().name; })
      .def_property_readonly("dims", [](const Program& p) { return p.recurrence().dims; })
      .def_property_readonly("inputs", [](const Program& p) { return decls(p.recurrence().inputs); })
      .def_property_readonly("outputs", [](const Program& p) { return decls(p.recurrence().outputs); })
      .def_property_readonly("states", [](const Program& p) { return decls(p.recurrence().states); })
      .def_property_readonly("params", [](const Program& p) { return decls(p.recurrence().params); })
      .def_property_readonly("ir", [](const Program& p) { return printed(p.recurrence()); })
      .def_property_readonly("backward_ir", [](const Program& p) {
        return printed(p.backwardPassA().recurrence()) + printed(p.backwardPassB().recurrence());
      })
      .def(
          "cuda_source",
          [](const Program& p, const std::map<std::string, int64_t>& dims, const std::string& dtype,
             const std::string& strategy, int chunk, int64_t time, const std::string& pass) {
            if (pass != "forward" && pass != "backward_a" && pass != "backward_b")
              throw Error("pass_: expected 'forward', 'backward_a' or 'backward_b'; got '" + pass + "'");
            ForwardArgs a;
            a.dtype = dtype;
            a.dims = dims;
            a.time = time;
            a.strategy = strategy;
            a.chunk = chunk;
            // The runtime's own path (Program::kernelsFor / backwardKernelsFor), as linac prints it.
            const int64_t smem = runtime::sharedMemoryLimitForArch("sm_90a");
            std::vector<codegen::EmittedKernel> kernels;
            if (pass == "forward") {
              kernels = p.kernelsFor(a, smem);
            } else {
              BackwardArgs b;
              b.forward = a;
              auto [passA, passB] = p.backwardKernelsFor(b, smem);
              kernels = pass == "backward_a" ? passA : passB;
            }
            std::string source;
            for (const codegen::EmittedKernel& k : kernels) source += k.source;
            return source;
          },
          py::arg("dims"), py::arg("dtype") = "bf16", py::arg("strategy") = "auto", py::arg("chunk") = 0,
          py::arg("time") = 4096, py::arg("pass_") = "forward",
          "The CUDA C++ of the kernel the runtime would launch (sm_90a shared memory limits).")
      .def(
          "run_reference",
          [](const Program& p, int64_t batch, int64_t time, int64_t heads, const std::map<std::string, int64_t>& dims,
             const std::map<std::string, Array>& inputs, const std::map<std::string, Array>& initialStates,
             const std::map<std::string, double>& scalarParams, const std::map<std::string, Array>& vectorParams,
             const std::vector<int64_t>& cuSeqlens) {
            reference::Problem problem =
                problemFrom(p, batch, time, heads, dims, inputs, initialStates, scalarParams, vectorParams, cuSeqlens);
            std::string error;
            std::optional<reference::Result> r = reference::run(p.recurrence(), problem, error);
            if (!r) throw Error("@" + p.recurrence().name + " reference: " + error);
            return py::make_tuple(toArrays(r->outputs), toArrays(r->finalStates));
          },
          py::arg("batch"), py::arg("time"), py::arg("heads"), py::arg("dims"), py::arg("inputs"),
          py::arg("initial_states") = std::map<std::string, Array>{},
          py::arg("scalar_params") = std::map<std::string, double>{},
          py::arg("vector_params") = std::map<std::string, Array>{}, py::arg("cu_seqlens") = std::vector<int64_t>{})
#if LINA_HAVE_LLVM
      .def(
          "run_llvm_fp32",
          [](const Program& p, int64_t batch, int64_t time, int64_t heads, const std::map<std::string, int64_t>& dims,
             const std::map<std::string, uintptr_t>& inputs, const std::map<std::string, uintptr_t>& outputs,
             const std::map<std::string, uintptr_t>& initialStates, const std::map<std::string, uintptr_t>& finalStates,
             const std::map<std::string, uintptr_t>& vectorParams, const std::map<std::string, double>& scalarParams,
             const std::vector<int64_t>& cuSeqlens, const std::string& strategy, int chunk, int threads) {
            const cir::Kernel kernel = cpuKernel(p, strategy, chunk);
            cpu::Fp32Problem f;
            f.batch = batch, f.time = time, f.heads = heads, f.dims = dims, f.cuSeqlens = cuSeqlens, f.scalarParams = scalarParams;
            for (const auto& [n, a] : inputs) f.inputs[n] = reinterpret_cast<const float*>(a);
            for (const auto& [n, a] : initialStates) f.initialStates[n] = reinterpret_cast<const float*>(a);
            for (const auto& [n, a] : vectorParams) f.vectorParams[n] = reinterpret_cast<const float*>(a);
            for (const auto& [n, a] : outputs) f.outputs[n] = reinterpret_cast<float*>(a);
            for (const auto& [n, a] : finalStates) f.finalStates[n] = reinterpret_cast<float*>(a);
            py::gil_scoped_release release;
            cpu::runKernelFp32(kernel, f, threads);
          },
          py::arg("batch"), py::arg("time"), py::arg("heads"), py::arg("dims"), py::arg("inputs"), py::arg("outputs"),
          py::arg("initial_states"), py::arg("final_states"), py::arg("vector_params"), py::arg("scalar_params"),
          py::arg("cu_seqlens"), py::arg("strategy") = "auto", py::arg("chunk") = 0, py::arg("threads") = 0)
#endif
      .def(
          "reference_backward",
          [](const Program& p, int64_t batch, int64_t time, int64_t heads, const std::map<std::string, int64_t>& dims,
             const std::map<std::string, Array>& inputs, const std::map<std::string, Array>& initialStates,
             const std::map<std::string, double>& scalarParams, const std::map<std::string, Array>& vectorParams,
             const std::vector<int64_t>& cuSeqlens, const std::map<std::string, Array>& outputGrads,
             const std::map<std::string, Array>& finalStateGrads, const std::string& engine, int chunk) {
            reference::Problem problem =
                problemFrom(p, batch, time, heads, dims, inputs, initialStates, scalarParams, vectorParams, cuSeqlens);
            reference::Cotangents ct;
            for (const auto& [n, a] : outputGrads) ct.outputs[n] = toTensor(a);
            for (const auto& [n, a] : finalStateGrads) ct.finalStates[n] = toTensor(a);
            std::string error;
            std::optional<reference::Gradients> g;
            if (engine == "reference") {
              g = reference::runBackward(p.recurrence(), problem, ct, error);
            } else if (engine == "llvm") {
#if LINA_HAVE_LLVM
              py::gil_scoped_release release;
              g = cpu::runDerivedBackward(p.recurrence(), problem, ct, error, chunk > 0 ? chunk : 1);
#else
              throw Error("engine 'llvm': this build has no LLVM backend (install llvm-14-dev and rebuild)");
#endif
            } else {
              throw Error("engine: expected 'reference' (exact reverse mode) or 'llvm' (the derived backward's passes "
                          "compiled for the CPU); got '" + engine + "'");
            }
            if (!g) throw Error("@" + p.recurrence().name + " " + engine + " backward: " + error);
            return py::make_tuple(toArrays(g->inputs), toArrays(g->initialStates), toArrays(g->vectorParams),
                                  g->scalarParams);
          },
          py::arg("batch"), py::arg("time"), py::arg("heads"), py::arg("dims"), py::arg("inputs"),
          py::arg("initial_states") = std::map<std::string, Array>{},
          py::arg("scalar_params") = std::map<std::string, double>{},
          py::arg("vector_params") = std::map<std::string, Array>{}, py::arg("cu_seqlens") = std::vector<int64_t>{},
          py::arg("output_grads") = std::map<std::string, Array>{},
          py::arg("final_state_grads") = std::map<std::string, Array>{}, py::arg("engine") = "reference",
          py::arg("chunk") = 0)
      .def(
          "forward",
          [](const Program& p, const std::string& dtype, int64_t batch, int64_t time, int64_t heads,
             const std::map<std::string, int64_t>& dims, const std::map<std::string, uintptr_t>& inputs,
             const std::map<std::string, uintptr_t>& outputs, const std::map<std::string, uintptr_t>& initialStates,
             const std::map<std::string, uintptr_t>& finalStates, const std::map<std::string, double>& scalarParams,
             const std::map<std::string, uintptr_t>& vectorParams, uintptr_t cuSeqlens, bool cuSeqlens64,
             int64_t numSequences, uintptr_t stream, const std::string& strategy, int chunk, int device, uintptr_t workspace,
             size_t workspaceBytes) {
            ForwardArgs a = forwardArgs(dtype, batch, time, heads, dims, inputs, initialStates, scalarParams, vectorParams,
                                        cuSeqlens, cuSeqlens64, numSequences, stream, strategy, chunk);
            for (const auto& [n, ptr] : outputs) a.outputs[n] = pointer<void>(ptr);
            for (const auto& [n, ptr] : finalStates) a.finalStates[n] = pointer<float>(ptr);
            a.workspace = pointer<void>(workspace);
            a.workspaceBytes = workspaceBytes;
            py::gil_scoped_release release;
            p.forward(a, device);
          },
          py::arg("dtype"), py::arg("batch"), py::arg("time"), py::arg("heads"), py::arg("dims"), py::arg("inputs"),
          py::arg("outputs"), py::arg("initial_states"), py::arg("final_states"), py::arg("scalar_params"),
          py::arg("vector_params"), py::arg("cu_seqlens"), py::arg("cu_seqlens64"), py::arg("num_sequences"),
          py::arg("stream"), py::arg("strategy") = "auto", py::arg("chunk") = 0, py::arg("device") = 0,
          py::arg("workspace") = 0, py::arg("workspace_bytes") = 0)
      .def(
          "forward_workspace_bytes",
          [](const Program& p, const std::string& dtype, int64_t batch, int64_t time, int64_t heads,
             const std::map<std::string, int64_t>& dims, const std::map<std::string, uintptr_t>& inputs,
             const std::map<std::string, uintptr_t>& initialStates, const std::map<std::string, double>& scalarParams,
             const std::map<std::string, uintptr_t>& vectorParams, uintptr_t cuSeqlens, bool cuSeqlens64,
             int64_t numSequences, uintptr_t stream, const std::string& strategy, int chunk, int device) {
            // The scratch memory forward() needs (the split strategies' states; 0 for the fused walk),
            // so that the caller can allocate it where its allocator caches and counts it.
            return p.forwardWorkspaceBytes(forwardArgs(dtype, batch, time, heads, dims, inputs, initialStates, scalarParams,
                                                       vectorParams, cuSeqlens, cuSeqlens64, numSequences, stream, strategy, chunk),
                                           device);
          },
          py::arg("dtype"), py::arg("batch"), py::arg("time"), py::arg("heads"), py::arg("dims"), py::arg("inputs"),
          py::arg("initial_states"), py::arg("scalar_params"), py::arg("vector_params"), py::arg("cu_seqlens"),
          py::arg("cu_seqlens64"), py::arg("num_sequences"), py::arg("stream"), py::arg("strategy") = "auto", py::arg("chunk") = 0,
          py::arg("device") = 0)
      .def(
          "backward_workspace_bytes",
          [](const Program& p, const std::string& dtype, int64_t batch, int64_t time, int64_t heads,
             const std::map<std::string, int64_t>& dims, const std::map<std::string, uintptr_t>& inputs,
             const std::map<std::string, uintptr_t>& initialStates, const std::map<std::string, double>& scalarParams,
             const std::map<std::string, uintptr_t>& vectorParams, uintptr_t cuSeqlens, bool cuSeqlens64,
             int64_t numSequences, uintptr_t stream, const std::map<std::string, uintptr_t>& outputGrads,
             const std::map<std::string, uintptr_t>& finalStateGrads, const std::map<std::string, uintptr_t>& finalStates,
             const std::map<std::string, uintptr_t>& inputGrads, const std::map<std::string, uintptr_t>& initialStateGrads,
             const std::map<std::string, uintptr_t>& paramGrads, const std::string& strategy, int chunk) {
            // The scratch memory backward() needs for these arguments, so that the caller can
            // allocate it (torch's allocator, where its peak-memory statistics see it).
            BackwardArgs b;
            b.forward = forwardArgs(dtype, batch, time, heads, dims, inputs, initialStates, scalarParams, vectorParams,
                                    cuSeqlens, cuSeqlens64, numSequences, stream, strategy, chunk);
            for (const auto& [n, ptr] : outputGrads) b.outputGrads[n] = pointer<const void>(ptr);
            for (const auto& [n, ptr] : finalStateGrads) b.finalStateGrads[n] = pointer<const float>(ptr);
            for (const auto& [n, ptr] : finalStates) b.finalStates[n] = pointer<const float>(ptr);
            for (const auto& [n, ptr] : inputGrads) b.inputGrads[n] = pointer<void>(ptr);
            for (const auto& [n, ptr] : initialStateGrads) b.initialStateGrads[n] = pointer<float>(ptr);
            for (const auto& [n, ptr] : paramGrads) b.paramGrads[n] = pointer<float>(ptr);
            return p.backwardWorkspaceBytes(b);
          },
          py::arg("dtype"), py::arg("batch"), py::arg("time"), py::arg("heads"), py::arg("dims"), py::arg("inputs"),
          py::arg("initial_states"), py::arg("scalar_params"), py::arg("vector_params"), py::arg("cu_seqlens"),
          py::arg("cu_seqlens64"), py::arg("num_sequences"), py::arg("stream"), py::arg("output_grads"),
          py::arg("final_state_grads"), py::arg("final_states"), py::arg("input_grads"), py::arg("initial_state_grads"),
          py::arg("param_grads"), py::arg("strategy") = "auto", py::arg("chunk") = 0)
      .def(
          "backward",
          [](const Program& p, const std::string& dtype, int64_t batch, int64_t time, int64_t heads,
             const std::map<std::string, int64_t>& dims, const std::map<std::string, uintptr_t>& inputs,
             const std::map<std::string, uintptr_t>& initialStates, const std::map<std::string, double>& scalarParams,
             const std::map<std::string, uintptr_t>& vectorParams, uintptr_t cuSeqlens, bool cuSeqlens64,
             int64_t numSequences, uintptr_t stream, const std::map<std::string, uintptr_t>& outputGrads,
             const std::map<std::string, uintptr_t>& finalStateGrads, const std::map<std::string, uintptr_t>& finalStates,
             const std::map<std::string, uintptr_t>& inputGrads, const std::map<std::string, uintptr_t>& initialStateGrads,
             const std::map<std::string, uintptr_t>& paramGrads, uintptr_t workspace, size_t workspaceBytes,
             const std::string& strategy, int chunk, int device) {
            BackwardArgs b;
            b.forward = forwardArgs(dtype, batch, time, heads, dims, inputs, initialStates, scalarParams, vectorParams,
                                    cuSeqlens, cuSeqlens64, numSequences, stream, strategy, chunk);
            for (const auto& [n, ptr] : outputGrads) b.outputGrads[n] = pointer<const void>(ptr);
            for (const auto& [n, ptr] : finalStateGrads) b.finalStateGrads[n] = pointer<const float>(ptr);
            for (const auto& [n, ptr] : finalStates) b.finalStates[n] = pointer<const float>(ptr);
            for (const auto& [n, ptr] : inputGrads) b.inputGrads[n] = pointer<void>(ptr);
            for (const auto& [n, ptr] : initialStateGrads) b.initialStateGrads[n] = pointer<float>(ptr);
            for (const auto& [n, ptr] : paramGrads) b.paramGrads[n] = pointer<float>(ptr);
            b.workspace = pointer<void>(workspace);
            b.workspaceBytes = workspaceBytes;
            py::gil_scoped_release release;
            p.backward(b, device);
          },
          py::arg("dtype"), py::arg("batch"), py::arg("time"), py::arg("heads"), py::arg("dims"), py::arg("inputs"),
          py::arg("initial_states"), py::arg("scalar_params"), py::arg("vector_params"), py::arg("cu_seqlens"),
          py::arg("cu_seqlens64"), py::arg("num_sequences"), py::arg("stream"), py::arg("output_grads"),
          py::arg("final_state_grads"), py::arg("final_states"), py::arg("input_grads"), py::arg("initial_state_grads"),
          py::arg("param_grads"), py::arg("workspace") = 0, py::arg("workspace_bytes") = 0,
          py::arg("strategy") = "auto", py::arg("chunk") = 0, py::arg("device") = 0);
}
