// The register-tile backward (compiler/kir/adjoint.h) on the GPU: three walks of the forward's
// register-tile kernels (dq in forward time; dv and dk over the adjoint state in reversed time)
// and the glue (gate and scale gradients, dq/dk to the dtype, the initial-state gradient).
// Program::backward takes it for a bf16 launch of the single-state row-gated family with K, V in
// {64, 128} that leaves the kernel level to lina (kernels auto or register, strategy auto or
// fused, chunk 0 or 64) and asks for no param gradient but the output scale's; the derived
// passes run everything else.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "codegen/cuda/emit_cuda.h"
#include "compiler/kir/adjoint.h"
#include "runtime/launch_args.h"

namespace lina {
class Program;
}

namespace lina::runtime {

// Why `args` does not take the register-tile backward (empty: it does).
std::string kirBackwardUnsupported(const Program& program, const BackwardArgs& args);
// The scratch memory it needs (fp32 dq, dk, the segment totals, S_T), 0 when it does not apply.
size_t kirBackwardWorkspaceBytes(const Program& program, const BackwardArgs& args);
// The kernel names it launches, " + "-joined (for reports).
std::string kirBackwardKernels(const Program& program, const BackwardArgs& args);
// Its plan, and every kernel it would launch for `args` (the walks as launched, then the glue):
// linac --emit=kir|cuda --backward and the NVRTC test. nullopt / empty when it does not apply.
std::optional<kir::AdjointPlan> kirBackwardPlan(const Program& program, const BackwardArgs& args);
std::vector<codegen::EmittedKernel> kirBackwardEmitted(const Program& program,
                                                       const BackwardArgs& args);
// Runs it on args.forward.stream; the caller has validated `args`.
void kirBackward(const Program& program, const BackwardArgs& args, int device);

}  // namespace lina::runtime
