// CIR, the chunk IR: one kernel's work on one chunk of C time steps of one (sequence, head,
// tile), with the schedule attributes the tuner varies. Lowered from canonical RIR by
// lower_rir_to_cir.cc; printed by printer.cc; emitted as CUDA by codegen/cuda.
//
// Per-step SSA values become chunk buffers: [C] (scalar per step), [C, d] (vector per step),
// or per-head uniform values ([] or [d]) computed once per CTA. Reads of a state become
// `attend` (inter-chunk through the carried state + intra-chunk gated attention) and each
// update becomes `gate_cumsum`s plus one `carry` after the state's last read in the chunk.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "compiler/rir/ir.h"

namespace lina::cir {

enum class Strategy {
  Fused,      // one CTA per (sequence, head, tile) walks the chunks with the states on chip
  Recurrent,  // the same walk one step at a time (C = 1): decode and short sequences
  Split,      // two kernels: the walk carries the states and stores each chunk's starting state;
              // then one CTA per (chunk, head, tile) computes that chunk's outputs in parallel
};
const char* strategyName(Strategy s);

// Which part of a strategy's work one kernel does. Fused and recurrent kernels do everything;
// the split strategy's two kernels each do one part.
enum class Phase {
  Whole,    // carries, reads and stores
  States,   // the walk: carries only, storing the state at the start of every chunk (snapshot)
  Outputs,  // per chunk: the state from its snapshot, reads and stores, no carry
};
const char* phaseName(Phase p);

enum class GateKind { None, Scalar, Vector };
const char* gateKindName(GateKind k);

// A gate operand of attend/carry: the chunk-local cumulative log2 decay.
struct GateRef {
  GateKind kind = GateKind::None;
  std::string inclusive;  // buffer of inclusive cumsums
  std::string exclusive;  // buffer of exclusive cumsums (reads before the update); may be empty
  std::string dim;        // Vector: the dim it runs over
};

enum class OpKind {
  Uniform,     // a per-head value: any RIR op over uniform operands (rop, operands as in RIR)
  Load,        // per-step input `symbol` into a chunk buffer
  Elementwise, // rop over chunk buffers and uniforms, broadcasting scalars
  Reduce,      // rop = Sum | Softmax | Dot over `dim`, per step
  GateCumsum,  // chunk-local cumsum * log2(e) of operand 0 (inclusive; `exclusive` also made)
  Attend,      // read of `symbol` contracting operand x over `dim` (see AttendOp)
  Carry,       // state `symbol` advances by one chunk
  RunningSum,  // operand 0 summed over the steps so far, carried across chunks
  Store,       // output `symbol` = operand 0
};
const char* opKindName(OpKind k);

struct Op {
  OpKind kind;
  std::string result;                 // empty for Carry and Store
  std::vector<std::string> operands;
  rir::Op rop = rir::Op::Const;       // Uniform, Elementwise, Reduce
  std::string symbol;                 // Load input, Attend/Carry state, Store output, Uniform param/dim
  std::string dim;                    // Reduce, Attend (contracted dim)
  double number = 0;                  // Uniform const
  bool afterUpdate = true;            // Attend
  std::string exclusive;              // GateCumsum: the exclusive buffer's name (empty: none)
  GateRef rows, cols;                 // Attend, Carry: gates of the state's rows and columns
  std::string u, w;                   // Attend, Carry: the update's outer(u, w) buffers
  rir::Shape shape;                   // result shape (without the chunk axis)
  bool uniform = false;               // result is per head, not per step
  SourceRange loc;
};

// The values an op reads: its operands, and for attend and carry the outer() factors and the
// gate cumsums.
inline std::vector<std::string> valuesRead(const Op& op) {
  std::vector<std::string> names = op.operands;
  if (op.kind == OpKind::Attend || op.kind == OpKind::Carry) {
    names.push_back(op.u);
    names.push_back(op.w);
    for (const GateRef* g : {&op.rows, &op.cols}) {
      if (g->kind == GateKind::None) continue;
      names.push_back(g->inclusive);
      if (!g->exclusive.empty()) names.push_back(g->exclusive);
    }
  }
  return names;
}

struct Kernel {
  std::string name;          // e.g. gla_fwd_fused_c64
  std::string program;       // the recurrence
  Strategy strategy = Strategy::Fused;
  Phase phase = Phase::Whole;  // States or Outputs exactly when strategy is Split
  int chunk = 64;            // C (1 for Recurrent)
  std::string tiledDim;      // empty: no tiling; else blocks split this dim
  int warps = 16;            // 512 threads: measured 2-4x faster than 4 warps on H100 (bench/results)
  std::vector<Op> ops;
  // Copied from the recurrence for the emitter.
  std::vector<std::string> dims;
  std::vector<rir::Decl> inputs, states, outputs, params;
};

// How a kernel's per-step tensors are addressed and stored. A forward uses the defaults; the
// derived backward passes walk time backwards, keep their intermediates in fp32, read the
// per-sequence d(final state) sums and add their gradients to pass A's.
struct TensorLayout {
  bool reverseTime = false;                 // walk every sequence from its last token to its first
  std::set<std::string> fp32Tensors;        // inputs/outputs stored as fp32 whatever the dtype
  std::set<std::string> perSequenceInputs;  // inputs laid out [N, H, d]: one row per sequence
  std::set<std::string> accumulateOutputs;  // outputs added to what the buffer holds
  std::set<std::string> discardedOutputs;   // outputs not stored at all
  // Tensor-core products split every operand into bf16 hi + lo (near-fp32 products): the
  // backward passes, whose gate gradients are long sums in which bf16 product errors add up.
  bool preciseProducts = false;
  // The derived backward's anchors (lina::kAnchorSpacing, passes::GateSum). Pass A also stores
  // these states at every anchor step, before the step's write and decayed by its gates. Pass B
  // re-anchors these running sums (by result name) there: the side sum of the snapshot (.) the
  // sum of the adjoint states, without the step's second summand (the write term).
  std::set<std::string> anchorSnapshots;
  struct Anchor {
    std::string snapshot;                    // the forward state whose snapshots pair with...
    std::vector<std::string> adjointStates;  // ...the sum of these states of the kernel
    bool rows = true;                        // sum over the state's columns (else its rows)
  };
  std::map<std::string, Anchor> anchoredSums;
  // Each launch computes one tile of the tiled dim (KernelParams::tileBase), one after another
  // on the stream: outputs without the tiled dim may then accumulate over tiles (the derived
  // backward's blocked passes).
  bool oneTilePerLaunch = false;
  // The snapshot buffers in KernelParams::snapshots order: the named states, sorted.
  std::vector<std::string> snapshotNames() const {
    std::set<std::string> names = anchorSnapshots;
    for (const auto& [sum, a] : anchoredSums) names.insert(a.snapshot);
    return {names.begin(), names.end()};
  }
  // A text naming every field, for launch keys.
  std::string key() const {
    std::string k = std::string(reverseTime ? "reverse" : "forward") + (preciseProducts ? "/precise" : "");
    auto names = [&](const char* tag, const std::set<std::string>& s) {
      for (const std::string& n : s) k += std::string("/") + tag + ":" + n;
    };
    names("fp32", fp32Tensors);
    names("seq", perSequenceInputs);
    names("acc", accumulateOutputs);
    names("drop", discardedOutputs);
    names("snap", anchorSnapshots);
    if (oneTilePerLaunch) k += "/onetile";
    for (const auto& [sum, a] : anchoredSums) {
      k += "/anchor:" + sum + "=" + a.snapshot + (a.rows ? ".rows" : ".cols");
      for (const std::string& s : a.adjointStates) k += "+" + s;
    }
    return k;
  }
};

// Everything the emitter needs to specialize a kernel: dim sizes, dtype, tile size, layout.
struct Specialization {
  std::map<std::string, int64_t> dims;
  std::string dtype = "bf16";  // element type of per-step inputs and outputs: bf16 | fp16 | fp32
  int tile = 0;                // size of the tiled dim per CTA (0: the whole dim)
  TensorLayout layout;
  // 1: each chunk's inputs are loaded when the chunk starts. 2: the next chunk's per-step vector
  // inputs are copied (cp.async) into a second staging buffer while this chunk computes.
  int stages = 1;
};

}  // namespace lina::cir
