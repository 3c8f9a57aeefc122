#include "compiler/cir/split.h"

#include <map>

#include "compiler/cir/verify.h"

namespace lina::cir {

std::optional<Kernel> splitPhase(const Kernel& whole, Phase phase, DiagnosticEngine& diags) {
  if (whole.strategy != Strategy::Fused || phase == Phase::Whole) {
    diags.error(SourceRange(), "internal: splitPhase takes a fused kernel and the states or outputs phase");
    return std::nullopt;
  }
  for (const Op& op : whole.ops)
    if (op.kind == OpKind::RunningSum) {
      diags.error(op.loc, "@" + whole.program + " cannot use the split strategy: running_sum %" + op.result +
                              " is carried across chunks but is not a state, so no snapshot holds it; use the fused "
                              "strategy");
      return std::nullopt;
    }
  // The roots of each phase; then every op some kept op reads, walking backwards.
  OpKind root = phase == Phase::States ? OpKind::Carry : OpKind::Store;
  std::map<std::string, size_t> definedBy;
  for (size_t i = 0; i < whole.ops.size(); ++i) {
    if (!whole.ops[i].result.empty()) definedBy[whole.ops[i].result] = i;
    if (!whole.ops[i].exclusive.empty()) definedBy[whole.ops[i].exclusive] = i;
  }
  std::vector<bool> keep(whole.ops.size(), false);
  for (size_t i = whole.ops.size(); i-- > 0;) {
    const Op& op = whole.ops[i];
    if (op.kind == root) keep[i] = true;
    if (!keep[i]) continue;
    for (const std::string& name : valuesRead(op)) {
      auto it = definedBy.find(name);
      if (it != definedBy.end()) keep[it->second] = true;
    }
  }
  Kernel k = whole;
  k.strategy = Strategy::Split;
  k.phase = phase;
  k.name = whole.program + "_fwd_split_" + phaseName(phase) + "_c" + std::to_string(whole.chunk);
  k.ops.clear();
  for (size_t i = 0; i < whole.ops.size(); ++i)
    if (keep[i]) k.ops.push_back(whole.ops[i]);
  if (!verify(k, diags)) return std::nullopt;  // an internal error: the split broke an invariant
  return k;
}

}  // namespace lina::cir
