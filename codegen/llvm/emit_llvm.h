// CIR -> LLVM IR: the CPU code generator (the GPU one is codegen/cuda). A CIR kernel of the
// fused or recurrent strategy, specialised to its dims, becomes one LLVM function that runs the
// chunked algorithm in fp32 for a range of (sequence, head) items: the same per-chunk ops, in the
// same order, with the same semantics as the CIR interpreter (compiler/cir/interpreter.cc, the
// oracle in double precision), every buffer at a constant offset of a per-thread workspace.
//
// The function is `void NAME(void** args)`; args holds, in order (LlvmKernelLayout):
//   [0] const int64_t* shape   {B, T, H, item_begin, item_end}; items are seq * H + head
//   [1] const int64_t* cu_seqlens (nullptr: fixed length, N = B sequences)
//   [2] float* workspace        workspaceFloats() floats, one per thread
//   then each input (const float*, [B, T, H, E]), each output (float*, [B, T, H, E]),
//   each state's initial value (const float*, [N, H, R, C], or nullptr for zeros) and final value
//   (float*), each vector param (const float*, [H, E]), and last the scalar params: a
//   const float* of values and a const uint8_t* of "given" flags, one per scalar param in the
//   kernel's param order (not given: the param's default expression).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/cir/ir.h"

namespace llvm {
class LLVMContext;
class Module;
}  // namespace llvm

namespace lina::codegen {

struct LlvmKernelLayout {
  std::string function;  // the symbol
  int inputs = 0, outputs = 0, states = 0, vectorParams = 0, scalarParams = 0;
  std::vector<std::string> inputNames, outputNames, stateNames, vectorParamNames, scalarParamNames;
  std::vector<int64_t> inputWidths, outputWidths;       // E per step (1 for a scalar)
  std::vector<int64_t> stateRows, stateCols, vectorParamWidths;
  int64_t workspaceFloats = 0;
};

// Builds the kernel's module in `context`. Throws lina::Error for a kernel it cannot emit (the
// split strategy's phases, a dim with no size).
std::unique_ptr<llvm::Module> emitLlvmKernel(const cir::Kernel& kernel, const std::map<std::string, int64_t>& dims,
                                             llvm::LLVMContext& context, LlvmKernelLayout& layout);

}  // namespace lina::codegen
