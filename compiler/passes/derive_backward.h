// derive-backward, pass A: from a canonical forward recurrence F, the forward-time program
// `<F>_bwd_a` that recomputes F and, per step, runs reverse-mode through everything downstream of
// the state reads: each read's cotangent dr, the read of the same state with dr over the other
// dim (dx = S dr: "a read of the forward"), and the input-gradient parts that flow through the
// read operands. It is itself canonical RIR, so the interpreter and the chunk lowering run it as
// they run F. Pass B (the adjoint states, du, dw, gate gradients) is docs/backward-design.md.
//
// Extra inputs: `d_<out>` per output. Outputs: `dA_<input>` per input that receives a gradient
// here, `dA_<param>` per param (per step; summed over steps by the caller), and per read i
// `x_<i>`, `dr_<i>` and the gate-identity terms `ic_<i>` = x (.) dx, `io_<i>` = r (.) dr.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compiler/rir/ir.h"
#include "dsl/diagnostics.h"

namespace lina::passes {

std::optional<rir::Recurrence> deriveBackwardPassA(const rir::Recurrence& forward, DiagnosticEngine& diags);

// Pass B, `<F>_bwd_b`, run on time-reversed sequences: one adjoint state `K_<S>_<read>` per read
// (K_t = D(a_t) (K_{t+1} + x_t dr_t^T) D(b_t) for a read after the update, so the current step's
// gates suffice), du and dw as reads of them before the update, the gate gradients by the
// cumulative-gate identity with a running sum, then reverse-mode through the producers of u, w and
// the gates. Inputs: F's inputs, pass A's per-read outputs, and per state `crow_<S>`/`ccol_<S>`
// (row/column sums of d(final state) * final state, the same at every step of a sequence).
// Outputs `dB_<input>`, `dB_<param>`; the final adjoint states summed per state are d(initial state).
//
// A gate gradient is `running_sum(read terms, crow_<S>, write terms)` on reversed time, the
// write terms being -u (.) du. Before a step e (forward time) the sum equals the side sum of
// S_e (.) F_e, F_e the sum of S's adjoint states there; with step e's write term added, that of
// P_e (.) F_e, P_e = S_e - u_e w_e^T = D(a_e) S_{e-1} D(b_e). The GPU kernels re-anchor the sum
// there every kAnchorSpacing steps (GateSum): from pass A's snapshots of P_e, leaving out step
// e's write term. Each sum then runs over at most that many steps, and no anchor holds the
// O(1) pair of a write and d(final state) that cancels exactly: with strong decays the gate
// gradient is O(decay), and an fp32 sum through O(1) values loses it.
struct GateSum {
  std::string runningSum;                  // the running_sum's result in pass B
  std::string state;                       // the forward state S
  bool rows = true;                        // a row gate (sum over S's columns) or a column gate
  std::vector<std::string> adjointStates;  // pass B's states K_<S>_*, whose sum pairs with P
};
// What a tensor of a derived pass is. The runtime, the reference and the printers consume these
// roles; a tensor's name (d_o, dA_q, crow_S, K_S_0, ...) is only a readable label.
enum class TensorRole {
  ForwardInput,      // an input of the forward, read again (of: the input)
  OutputCotangent,   // pass A's input d<out> (of: the forward output)
  InputGradient,     // a pass's part of d<input> (of: the forward input); the passes' parts add up
  ParamGradient,     // a pass's per-step part of d<param> (of: the param), summed over steps after
  ReadIntermediate,  // pass A output that pass B reads, fp32 (of: the read's index)
  StateRowSums,      // pass B input: row sums of d(final state) (.) final state (of: the state)
  StateColumnSums,   // pass B input: the column sums (of: the state)
  AdjointState,      // pass B state; the final ones summed are d(initial state) (of: the forward state)
};
const char* tensorRoleName(TensorRole role);
struct SignatureEntry {
  std::string tensor;  // the pass's input, output or state
  TensorRole role;
  std::string of;      // the forward input, output, param or state it belongs to (a read's index)
};
// The typed interface of the two derived passes: every input, output and state of each.
struct BackwardSignature {
  std::vector<SignatureEntry> passA, passB;
  static const SignatureEntry* find(const std::vector<SignatureEntry>& pass, const std::string& tensor);
  // The tensor of `pass` with this role for `of`; empty when there is none.
  static std::string tensorFor(const std::vector<SignatureEntry>& pass, TensorRole role, const std::string& of);
  std::vector<std::string> adjointStatesOf(const std::string& state) const;
};

struct DerivedPassB {
  rir::Recurrence program;
  std::map<std::string, std::string> initialHolder;  // forward state -> adjoint state seeded with dht
  std::vector<GateSum> gateSums;
  std::vector<SignatureEntry> signature;
};
std::optional<DerivedPassB> deriveBackwardPassB(const rir::Recurrence& forward, DiagnosticEngine& diags);

// derive-backward: both passes, verified, with their signature. The one entry point the
// pipeline, the runtime and the reference use.
struct DerivedBackward {
  rir::Recurrence passA, passB;
  BackwardSignature signature;
  std::map<std::string, std::string> initialHolder;  // forward state -> adjoint state seeded with dht
  std::vector<GateSum> gateSums;                     // pass B's running sums, anchored on the GPU
};
std::optional<DerivedBackward> deriveBackward(const rir::Recurrence& forward, DiagnosticEngine& diags);

}  // namespace lina::passes
