#include "compiler/cir/lower.h"

#include "compiler/cir/split.h"
#include "compiler/cir/verify.h"

#include <algorithm>
#include <map>
#include <set>

namespace lina::cir {

const char* strategyName(Strategy s) {
  switch (s) {
    case Strategy::Fused: return "fused";
    case Strategy::Recurrent: return "recurrent";
    case Strategy::Split: return "split";
  }
  return "?";
}

const char* phaseName(Phase p) {
  switch (p) {
    case Phase::Whole: return "whole";
    case Phase::States: return "states";
    case Phase::Outputs: return "outputs";
  }
  return "?";
}

const char* gateKindName(GateKind k) {
  switch (k) {
    case GateKind::None: return "none";
    case GateKind::Scalar: return "scalar";
    case GateKind::Vector: return "vector";
  }
  return "?";
}

const char* opKindName(OpKind k) {
  switch (k) {
    case OpKind::Uniform: return "uniform";
    case OpKind::Load: return "load";
    case OpKind::Elementwise: return "ew";
    case OpKind::Reduce: return "reduce";
    case OpKind::GateCumsum: return "gate_cumsum";
    case OpKind::Attend: return "attend";
    case OpKind::Carry: return "carry";
    case OpKind::Store: return "store";
    case OpKind::RunningSum: return "running_sum";
  }
  return "?";
}

std::string tileableDim(const rir::Recurrence& rec) {
  std::set<std::string> reduced;
  for (const rir::Inst& inst : rec.body)
    if (!inst.dim.empty()) reduced.insert(inst.dim);
  // Prefer the value dims of the library (V), then declaration order.
  std::vector<std::string> order = rec.dims;
  std::stable_partition(order.begin(), order.end(), [](const std::string& d) { return d == "V"; });
  for (const std::string& d : order) {
    if (reduced.count(d)) continue;
    for (const rir::Decl& o : rec.outputs)
      if (!o.shape.empty() && o.shape[0] == d) return d;
  }
  return "";
}

namespace {

struct UpdateInfo {
  const rir::Inst* inst = nullptr;
  std::vector<std::string> operands;  // u, w and the gate values: what reads and the carry need
  std::vector<const rir::Inst*> reads;
};

GateRef gateRef(const rir::Gate& g, const rir::Recurrence& rec, const std::set<std::string>& needsExclusive) {
  GateRef ref;
  if (!g.present()) return ref;
  const rir::Inst* def = rec.definition(g.value);
  ref.kind = def && !def->shape.empty() ? GateKind::Vector : GateKind::Scalar;
  if (def && !def->shape.empty()) ref.dim = def->shape[0];
  ref.inclusive = "G." + g.value;
  if (needsExclusive.count(g.value)) ref.exclusive = "Gx." + g.value;
  return ref;
}

}  // namespace

std::optional<Kernel> lowerRirToCir(const rir::Recurrence& rec, Strategy strategy, int chunk, DiagnosticEngine& diags,
                                    Phase phase) {
  if ((strategy == Strategy::Split) != (phase != Phase::Whole)) {
    diags.error(rec.loc, std::string("internal: the ") + strategyName(strategy) + " strategy has no phase " + phaseName(phase));
    return std::nullopt;
  }
  if (strategy == Strategy::Split) {
    // Both kernels of the split strategy are parts of the fused kernel.
    std::optional<Kernel> whole = lowerRirToCir(rec, Strategy::Fused, chunk, diags);
    if (!whole) return std::nullopt;
    return splitPhase(*whole, phase, diags);
  }
  Kernel k;
  k.program = rec.name;
  k.strategy = strategy;
  k.chunk = strategy == Strategy::Recurrent ? 1 : chunk;
  k.name = rec.name + "_fwd_" + strategyName(strategy) + (strategy == Strategy::Fused ? "_c" + std::to_string(chunk) : "");
  k.tiledDim = tileableDim(rec);
  k.dims = rec.dims;
  k.inputs = rec.inputs;
  k.states = rec.states;
  k.outputs = rec.outputs;
  k.params = rec.params;

  std::set<std::string> uniform = rir::uniformValues(rec);
  std::map<std::string, UpdateInfo> updates;
  for (const rir::Inst& inst : rec.body) {
    if (inst.op == rir::Op::Update) {
      UpdateInfo& u = updates[inst.symbol];
      u.inst = &inst;
      u.operands = inst.operands;
      if (inst.rows.present()) u.operands.push_back(inst.rows.value);
      if (inst.cols.present()) u.operands.push_back(inst.cols.value);
    }
  }
  std::set<std::string> needsExclusive;
  for (const rir::Inst& inst : rec.body) {
    if (inst.op != rir::Op::Read) continue;
    updates[inst.symbol].reads.push_back(&inst);
    if (!inst.afterUpdate) {
      const rir::Inst* u = updates[inst.symbol].inst;
      if (u && u->rows.present()) needsExclusive.insert(u->rows.value);
      if (u && u->cols.present()) needsExclusive.insert(u->cols.value);
    }
  }

  // Per-head values first, in program order: they are computed once per CTA.
  std::set<std::string> done;
  for (const rir::Inst& inst : rec.body) {
    if (!rir::hasResult(inst.op) || !uniform.count(inst.result)) continue;
    Op op;
    op.kind = OpKind::Uniform;
    op.rop = inst.op;
    op.result = inst.result;
    op.operands = inst.operands;
    op.symbol = inst.symbol;
    op.dim = inst.dim;
    op.number = inst.number;
    op.shape = inst.shape;
    op.uniform = true;
    op.loc = inst.loc;
    k.ops.push_back(std::move(op));
    done.insert(inst.result);
  }

  // The per-step work, scheduled by dependence: a read needs its operand and its state's update
  // operands (u, w, gates), since the intra-chunk part uses every step's write; a carry needs
  // those and comes after every read of its state in the chunk.
  std::vector<const rir::Inst*> pending;
  for (const rir::Inst& inst : rec.body)
    if (!(rir::hasResult(inst.op) && uniform.count(inst.result))) pending.push_back(&inst);
  std::set<std::string> cumsums, carried;
  std::set<const rir::Inst*> emittedReads;
  auto ready = [&](const std::vector<std::string>& names) {
    return std::all_of(names.begin(), names.end(), [&](const std::string& n) { return done.count(n) > 0; });
  };
  auto emitCumsums = [&](const rir::Inst& update) {
    for (const rir::Gate* g : {&update.rows, &update.cols}) {
      if (!g->present() || cumsums.count(g->value)) continue;
      cumsums.insert(g->value);
      const rir::Inst* def = rec.definition(g->value);
      Op op;
      op.kind = OpKind::GateCumsum;
      op.result = "G." + g->value;
      op.exclusive = needsExclusive.count(g->value) ? "Gx." + g->value : "";
      op.operands = {g->value};
      op.shape = def ? def->shape : rir::Shape{};
      op.uniform = uniform.count(g->value) > 0;  // the operand is per head; the cumsum is per step
      op.loc = update.loc;
      k.ops.push_back(std::move(op));
    }
  };
  while (!pending.empty()) {
    bool progress = false;
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      const rir::Inst& inst = **it;
      std::vector<std::string> deps = inst.operands;
      const UpdateInfo* update = nullptr;
      if (inst.op == rir::Op::Read || inst.op == rir::Op::Update) {
        update = &updates[inst.symbol];
        deps.insert(deps.end(), update->operands.begin(), update->operands.end());
      }
      if (!ready(deps)) continue;
      if (inst.op == rir::Op::Update &&
          !std::all_of(update->reads.begin(), update->reads.end(), [&](const rir::Inst* r) { return emittedReads.count(r) > 0; }))
        continue;
      Op op;
      op.result = inst.result;
      op.operands = inst.operands;
      op.rop = inst.op;
      op.symbol = inst.symbol;
      op.dim = inst.dim;
      op.shape = inst.shape;
      op.loc = inst.loc;
      switch (inst.op) {
        case rir::Op::Input: op.kind = OpKind::Load; break;
        case rir::Op::Sum: case rir::Op::Softmax: case rir::Op::Dot: op.kind = OpKind::Reduce; break;
        case rir::Op::Output: op.kind = OpKind::Store; break;
        case rir::Op::RunningSum: op.kind = OpKind::RunningSum; break;
        case rir::Op::Read:
        case rir::Op::Update: {
          emitCumsums(*update->inst);
          op.kind = inst.op == rir::Op::Read ? OpKind::Attend : OpKind::Carry;
          op.afterUpdate = inst.afterUpdate;
          op.rows = gateRef(update->inst->rows, rec, needsExclusive);
          op.cols = gateRef(update->inst->cols, rec, needsExclusive);
          op.u = update->inst->operands[0];
          op.w = update->inst->operands[1];
          if (inst.op == rir::Op::Update) op.operands.clear();
          if (inst.op == rir::Op::Read) emittedReads.insert(&inst);
          break;
        }
        default: op.kind = OpKind::Elementwise; break;
      }
      k.ops.push_back(std::move(op));
      if (rir::hasResult(inst.op)) done.insert(inst.result);
      pending.erase(it);
      progress = true;
      break;
    }
    if (!progress) {
      std::string states;
      for (const rir::Inst* p : pending)
        if (p->op == rir::Op::Update) states += (states.empty() ? "'" : ", '") + p->symbol + "'";
      diags.error(rec.loc, "@" + rec.name + " cannot be chunked: the updates of states " + states +
                               " depend on each other's reads within a step; run it with the recurrent strategy");
      return std::nullopt;
    }
  }
  if (!verify(k, diags)) return std::nullopt;  // an internal error: the lowering broke an invariant
  return k;
}

}  // namespace lina::cir
