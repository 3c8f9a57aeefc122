// lina's CPU backend: CIR kernels compiled through LLVM (codegen/llvm/emit_llvm.h), optimised for
// the host CPU (O3 with its target machine: vectorised for its features) and JIT-compiled with
// ORC LLJIT, then run over (sequence, head) items on a pool of threads, each with its own
// workspace. Compiled kernels are kept per (kernel text, dims, host CPU) for the process.
// The reference interpreter stays the oracle; tests/unit/llvm_backend_test.cc holds every
// library program and variant, forward and both passes of the derived backward, to it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "compiler/cir/ir.h"
#include "compiler/reference/backward.h"
#include "compiler/reference/interpreter.h"

namespace lina::cpu {

// Whether this build has the LLVM backend (LINA_HAVE_LLVM), and the host CPU it targets.
bool llvmAvailable();
std::string hostCpu();

// The kernel's LLVM module as text: as emitted, or after the O3 pipeline for the host.
std::string llvmModuleText(const cir::Kernel& kernel, const std::map<std::string, int64_t>& dims, bool optimised);

// Runs `kernel` (fused or recurrent, fp32 math) on `problem` (the reference's tensors, converted
// to fp32 and back). `threads` 0: the hardware's. Throws lina::Error on bad input.
reference::Result runKernel(const cir::Kernel& kernel, const reference::Problem& problem, int threads = 0);

// The same on fp32 buffers in place (no copies): per-step tensors [B, T, H, E], states
// [N, H, R, C] (an absent initial state is zeros), vector params [H, E], by name; every output and
// final state must be given. The path lina.ops takes for CPU tensors.
struct Fp32Problem {
  int64_t batch = 1, time = 1, heads = 1;
  std::map<std::string, int64_t> dims;
  std::vector<int64_t> cuSeqlens;
  std::map<std::string, const float*> inputs, initialStates, vectorParams;
  std::map<std::string, float*> outputs, finalStates;
  std::map<std::string, double> scalarParams;
};
void runKernelFp32(const cir::Kernel& kernel, const Fp32Problem& problem, int threads = 0);

// A recurrence lowered to CIR (fused at `chunk`, or recurrent when chunk is 1) and run as above;
// nullopt with `error` set on bad input. The runner of reference::runDerivedBackward.
std::optional<reference::Result> runRecurrence(const rir::Recurrence& recurrence, const reference::Problem& problem,
                                               std::string& error, int chunk = 16, int threads = 0);

// The derived backward (passes A and B) on the LLVM backend: gradients as reference::runBackward
// returns them.
std::optional<reference::Gradients> runDerivedBackward(const rir::Recurrence& recurrence, const reference::Problem& problem,
                                                       const reference::Cotangents& cotangents, std::string& error,
                                                       int chunk = 16, int threads = 0);

}  // namespace lina::cpu
