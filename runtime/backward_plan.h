// The backward plan: every buffer, clear, glue kernel and pass launch Program::backward makes,
// built from the derived passes' typed signature (compiler/passes/derive_backward.h). Built
// twice per call: with no workspace (to size it) and with the real one.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "compiler/passes/derive_backward.h"
#include "runtime/program.h"

namespace lina {

struct Program::DerivedBackward {
  Program passA, passB;
  // The same passes cut into blocks of `blockDim` (a dim every forward state has and nothing in
  // the forward reduces over: each block is an independent problem whose gradients add up),
  // for states too large for one CTA. Empty blockDim: not available.
  std::string blockDim;
  Program blockedA, blockedB;
  passes::BackwardSignature signature;                // which tensor of each pass is which
  std::map<std::string, std::string> initialHolder;  // forward state -> pass-B adjoint state seeded with dht
  std::vector<passes::GateSum> gateSums;              // pass B's running sums, anchored on the GPU
};

namespace runtime {

// Byte offsets of the scratch buffers in one workspace (256-byte aligned).
struct Workspace {
  char* base = nullptr;
  size_t bytes = 0;
  void* take(size_t size) {
    bytes = (bytes + 255) / 256 * 256;
    void* at = base ? base + bytes : nullptr;
    bytes += size;
    return at;
  }
  float* takeFloats(int64_t count) { return static_cast<float*>(take(static_cast<size_t>(count) * sizeof(float))); }
};

// A device memset of `bytes` zero bytes on `stream` (skipped when there is nothing to clear).
struct Clear {
  void* pointer;
  size_t bytes;
};

// One launch of a glue kernel.
struct GlueLaunch {
  enum Kind { RowColSums, SumRows, Convert } kind = SumRows;
  const float *a = nullptr, *b = nullptr;
  float *out = nullptr, *out2 = nullptr;
  long long rows = 0, cols = 0;  // SumRows; RowColSums: rows = R, cols = C; Convert: rows = count
  void* converted = nullptr;     // Convert: a's `rows` floats written here as `dtypeCode`
  int dtypeCode = 0;             // 0 fp32, 1 bf16, 2 fp16 (lina_convert)
  int heads = 0, sequences = 0;
};

// Everything backward() launches, in order. Built twice: with no workspace (to size it) and
// with the real one.
struct BackwardPlan {
  Workspace workspace;
  int blocks = 1;  // > 1: the blocked passes, one launch per block of derived.blockDim
  const Program *programA = nullptr, *programB = nullptr;  // the passes launched (blocked or not)
  std::vector<Clear> clears;
  bool recompute = false;
  ForwardArgs recomputeArgs;
  std::vector<GlueLaunch> stateSums;  // crow/ccol (before pass B)
  ForwardArgs passA, passB;
  std::vector<GlueLaunch> reductions;   // after pass B
  std::vector<GlueLaunch> conversions;  // blocked: the fp32 accumulators into the caller's buffers
};

// Everything Program::backward(args) launches, placed in the workspace at `base` (null: only
// sized). Throws lina::Error for a forward tile that does not divide a blocked dim.
BackwardPlan planBackward(const rir::Recurrence& forward, const Program::DerivedBackward& derived,
                          const BackwardArgs& args, char* base);

}  // namespace runtime
}  // namespace lina
