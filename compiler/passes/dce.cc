#include "compiler/passes/passes.h"

namespace lina::passes {

bool eliminateDeadCode(rir::Module& module, DiagnosticEngine&) {
  for (rir::Recurrence& rec : module.recurrences) {
    std::set<std::string> live;
    // Walk backwards: effects are roots; a value is live if a later live inst uses it.
    for (size_t i = rec.body.size(); i-- > 0;) {
      const rir::Inst& inst = rec.body[i];
      if (rir::hasResult(inst.op) && !live.count(inst.result)) continue;
      for (const std::string& o : inst.operands) live.insert(o);
      if (inst.rows.present()) live.insert(inst.rows.value);
      if (inst.cols.present()) live.insert(inst.cols.value);
    }
    std::erase_if(rec.body, [&](const rir::Inst& inst) {
      return rir::hasResult(inst.op) && !live.count(inst.result);
    });
  }
  return true;
}

}  // namespace lina::passes
