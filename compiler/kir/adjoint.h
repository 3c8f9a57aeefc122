// The derived backward of the single-state register-tile family as register-tile kernels.
//
// For S_t = a_t (.)rows S_{t-1} + k_t v_t^T, o_t = c q_t^T S_t (register_tiles.h), the adjoint is
// itself a set of recurrences of the same family, so the backward runs on the forward's fast
// kernels instead of the generic derived passes:
//   dq_t = c S_t do_t:    the transposed state A = S^T, A_t = A_{t-1} (.)cols a_t + v_t k_t^T,
//                         read with do_t over V (forward time);
//   D_t  = a_{t+1} (.)rows D_{t+1} + c q_t do_t^T (the adjoint state, reversed time, gated by the
//                         step after it; D starts from d(final state)):
//   dv_t = k_t^T D_t      (D read with k over K),
//   dk_t = D_t v_t        (D^T, column-gated, read with v over V),
//   dh0  = a_0 (.)rows D_0,
//   dg_t = sum_{s >= t} (q_s (.) dq_s - k_s (.) dk_s) + rowsum(S_T (.) dS_T)
//          (the cumulative-gate identity: every (write r, read s) pair with r < t <= s; summed
//          over the rows for a scalar gate), and dc = sum q (.) dq / c for an output scale that
//          is a param.
// With a vector gate the two transposed walks gate their columns (the column-gated kernel);
// with a scalar or uniform gate, rows and columns are gated alike and every walk is row-gated.
// dq and dk go to fp32 intermediates when a gate gradient follows (the glue kernel forms dg and
// writes dq, dk in the dtype), else straight to the gradients.
#pragma once

#include <ostream>
#include <string>

#include "compiler/kir/register_tiles.h"

namespace lina::kir {

struct AdjointPlan {
  RegisterTileKernel forward;  // the forward's matched kernel: names, dims, gate, scale
  // Their KernelParams: inputs {query, key, value, gate} = slots 0..3, output 0, state 0.
  RegisterTileKernel dq, dv, dk;
  bool gateGradient = false;  // a vector or scalar gate input: dg (and the fp32 dq, dk)
  std::string scaleParam;     // the scalar param that is the output scale c, if any
  std::string glueName;       // the gate-gradient / initial-state glue kernels' prefix
};

// Why `rec` with these dims has no adjoint plan (empty: it has one).
std::string adjointUnsupported(const rir::Recurrence& rec, const cir::Specialization& spec);
// Throws lina::Error with the reason.
AdjointPlan planAdjoint(const rir::Recurrence& rec, const cir::Specialization& spec);
// `linac --emit=kir --backward`: the three walks and what the glue computes.
void print(std::ostream& os, const AdjointPlan& plan);

}  // namespace lina::kir
