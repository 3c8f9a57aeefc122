#include "compiler/kir/adjoint.h"

#include "compiler/kir/internal.h"
#include "support/error.h"

namespace lina::kir {

namespace {

struct Attempt {
  AdjointPlan plan;
  std::string why;
};

// The scalar param that the forward's output is scaled by, directly (o = param * (q @ S)).
std::string scaleParamOf(const rir::Recurrence& rec, const std::string& output) {
  for (const rir::Inst& inst : rec.body) {
    if (inst.op != rir::Op::Output || inst.symbol != output) continue;
    const rir::Inst* mul = rec.definition(inst.operands.at(0));
    if (!mul || mul->op != rir::Op::Mul) return "";
    for (const std::string& operand : mul->operands) {
      const rir::Inst* d = rec.definition(operand);
      if (d && d->op == rir::Op::Param) return d->symbol;
    }
  }
  return "";
}

// A walk of the plan with the adjoint's KernelParams roles: inputs {query, key, value, gate}.
RegisterTileKernel role(const RegisterTileKernel& f, const std::string& q, const std::string& k,
                        const std::string& v, const std::string& o, int K, int V) {
  RegisterTileKernel w = f;
  w.q = q, w.k = k, w.v = v, w.o = o;
  w.slotQ = 0, w.slotK = 1, w.slotV = 2, w.slotG = f.slotG < 0 ? -1 : 3, w.slotO = 0,
  w.slotState = 0;
  w.inputs = {q, k, v, f.g.empty() ? "(no gate)" : f.g};
  w.outputs = {o};
  w.states = {f.state};
  w.K = K, w.V = V, w.BV = 64;
  w.phase = -1;
  w.intermediate.clear();
  w.intermediateWidth = 0;
  w.shared.clear();
  w.columnGate = false;
  w.epilogue = Epilogue::None;
  return w;
}

RegisterTileKernel finish(RegisterTileKernel w, bool columnGated, const std::string& suffix) {
  w = columnGated ? detail::planColumnGated(w, -1) : detail::planKernel(w, Part::Whole);
  w.name = w.program + "_kir_bwd_" + suffix + (columnGated ? "_colgate" : "") + "_c64_bv64";
  for (char& ch : w.name)
    if (ch == '-') ch = '_';
  return w;
}

Attempt attempt(const rir::Recurrence& rec, const cir::Specialization& spec) {
  Attempt a;
  if (rec.states.size() != 1) {
    a.why = std::to_string(rec.states.size()) +
            " states (the register-tile backward: one row-gated state)";
    return a;
  }
  cir::Specialization s = spec;
  s.tile = 0;
  s.stages = 2;
  s.layout = {};
  if (std::string why = registerTilesUnsupported(rec, cir::Strategy::Fused, 64, s); !why.empty()) {
    a.why = why;
    return a;
  }
  const RegisterTileKernel f = lowerToRegisterTiles(rec, cir::Strategy::Fused, 64, s).front();
  if (f.columnGate) {
    a.why = "a column-gated state (the register-tile backward: row-gated states)";
    return a;
  }
  if (f.V != 64 && f.V != 128) {
    a.why = f.colDim + " = " + std::to_string(f.V) +
            " (the register-tile backward walks the transposed state: 64 or 128)";
    return a;
  }
  AdjointPlan& p = a.plan;
  p.forward = f;
  const bool vector = f.gate == GateKind::Vector;
  p.gateGradient = vector || f.gate == GateKind::Scalar;
  p.scaleParam = scaleParamOf(rec, f.o);
  const std::string dout = "d" + f.o;
  // dq: the transposed state, forward time; its final state is S_T (transposed back).
  RegisterTileKernel dq = role(f, dout, f.v, f.k, "d" + f.q, f.V, f.K);
  dq.stateTransposed = true;
  if (vector) dq.columnGate = true;
  p.dq = finish(dq, vector, "dq");
  // dv: the adjoint state D, reversed and gated by the next step; its final state is D_0.
  RegisterTileKernel dv = role(f, f.k, f.q, dout, "d" + f.v, f.K, f.V);
  dv.reverse = dv.gateShift = dv.initDivScale = true;
  p.dv = finish(dv, false, "dv");
  // dk: D^T, reversed, column-gated under a vector gate.
  RegisterTileKernel dk = role(f, f.v, dout, f.q, "d" + f.k, f.V, f.K);
  dk.reverse = dk.gateShift = dk.stateTransposed = dk.initDivScale = true;
  if (vector) dk.columnGate = true;
  p.dk = finish(dk, vector, "dk");
  p.glueName = f.program + "_kir_bwd_glue";
  for (char& ch : p.glueName)
    if (ch == '-') ch = '_';
  return a;
}

}  // namespace

std::string adjointUnsupported(const rir::Recurrence& rec, const cir::Specialization& spec) {
  return attempt(rec, spec).why;
}

AdjointPlan planAdjoint(const rir::Recurrence& rec, const cir::Specialization& spec) {
  Attempt a = attempt(rec, spec);
  if (!a.why.empty()) throw Error("@" + rec.name + ": no register-tile backward: " + a.why);
  return a.plan;
}

void print(std::ostream& os, const AdjointPlan& p) {
  const RegisterTileKernel& f = p.forward;
  os << "// register-tile backward of @" << f.program << ": " << gateKindName(f.gate) << " gate, "
     << f.rowDim << " = " << f.K << ", " << f.colDim << " = " << f.V << ", output scale "
     << f.scaleText << "\n";
  auto walk = [&](const char* what, const RegisterTileKernel& k) {
    os << "walk " << k.name << ": " << what << "\n  "
       << (k.columnGate ? "column-gated" : "row-gated") << " state [" << k.K << ", " << k.V << "]"
       << (k.stateTransposed ? " (stored transposed)" : "") << ", "
       << (k.reverse ? "reversed time, the next step's gate" : "forward time") << "; query " << k.q
       << ", key " << k.k << ", value " << k.v << " -> " << k.o << (k.outF32 ? " (fp32)" : "")
       << "; " << k.threads() << " threads, " << k.sharedBytes << " B shared\n";
  };
  walk("dq = c S_t do_t (the forward's state, transposed; final state S_T)", p.dq);
  walk("dv = k_t^T D_t (the adjoint state, from dS_T / c; final state D_0 / c)", p.dv);
  walk("dk = D_t v_t (the adjoint state, transposed)", p.dk);
  os << "glue " << p.glueName << ": ";
  if (p.gateGradient)
    os << "d" << f.g << " = reversed cumsum of (" << f.q << " * d" << f.q << " - " << f.k << " * d"
       << f.k << ") + rowsum(S_T * dS_T)"
       << (f.gate == GateKind::Scalar ? ", summed over " + f.rowDim : "") << "; ";
  if (!p.scaleParam.empty())
    os << "d" << p.scaleParam << " = sum(" << f.q << " * d" << f.q << ") / c; ";
  os << "d(initial " << f.state << ") = c a_0 (.)rows (D_0 / c)\n";
}

}  // namespace lina::kir
