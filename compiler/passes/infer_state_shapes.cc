#include "compiler/passes/passes.h"

namespace lina::passes {

bool inferStateShapes(rir::Module& module, DiagnosticEngine& diags) {
  bool ok = true;
  for (rir::Recurrence& rec : module.recurrences) {
    for (rir::Decl& state : rec.states) {
      if (state.shapeKnown) continue;
      for (const rir::Inst& inst : rec.body) {
        if (inst.op != rir::Op::Update || inst.symbol != state.name) continue;
        const rir::Inst* u = rec.definition(inst.operands[0]);
        const rir::Inst* w = rec.definition(inst.operands[1]);
        if (!u || !w || u->shape.size() != 1 || w->shape.size() != 1 || u->shape == w->shape) {
          diags.error(inst.loc, "cannot infer the shape of state '" + state.name +
                                    "': its outer(u, w) needs two vectors over distinct dims");
          ok = false;
          break;
        }
        state.shape = {u->shape[0], w->shape[0]};
        state.shapeKnown = true;
      }
    }
  }
  return ok;
}

}  // namespace lina::passes
