#include "compiler/passes/passes.h"

namespace lina::passes {

namespace {

// Rewrites one Linear gate of the update at `index`; may insert a `log` before it.
bool canonicalize(rir::Recurrence& rec, size_t& index, rir::Gate rir::Inst::*side,
                  const std::set<std::string>& uniform, DiagnosticEngine& diags) {
  rir::Gate& gate = rec.body[index].*side;
  if (!gate.present() || gate.space == rir::GateSpace::Log) return true;
  const rir::Inst* def = rec.definition(gate.value);
  if (def && def->op == rir::Op::Exp) {
    gate = rir::Gate{def->operands[0], rir::GateSpace::Log};
    return true;
  }
  if (uniform.count(gate.value)) {
    rir::Inst log;
    log.op = rir::Op::Log;
    log.result = rec.freshName();
    log.operands = {gate.value};
    log.shape = def ? def->shape : rir::Shape{};
    log.loc = def ? def->loc : rec.body[index].loc;
    gate = rir::Gate{log.result, rir::GateSpace::Log};
    rec.body.insert(rec.body.begin() + static_cast<std::ptrdiff_t>(index), std::move(log));
    ++index;
    return true;
  }
  diags.error(rec.body[index].loc, "the decay %" + gate.value + " of state '" + rec.body[index].symbol +
                                       "' varies per step but is not exp(...); write it as exp(g) with g a gate input");
  return false;
}

}  // namespace

bool canonicalizeGates(rir::Module& module, DiagnosticEngine& diags) {
  bool ok = true;
  for (rir::Recurrence& rec : module.recurrences) {
    std::set<std::string> uniform = rir::uniformValues(rec);
    for (size_t i = 0; i < rec.body.size(); ++i) {
      if (rec.body[i].op != rir::Op::Update) continue;
      ok = canonicalize(rec, i, &rir::Inst::rows, uniform, diags) && ok;
      ok = canonicalize(rec, i, &rir::Inst::cols, uniform, diags) && ok;
    }
  }
  return ok;
}

}  // namespace lina::passes
