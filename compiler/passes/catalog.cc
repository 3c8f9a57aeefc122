#include "compiler/passes/passes.h"

namespace lina::passes {

const std::vector<PassInfo>& catalog() {
  static const std::vector<PassInfo> passes = {
      {"infer-state-shapes", "give shape-less states the shape of their outer() write", inferStateShapes},
      {"canonicalize-gates", "turn every state decay into a log-space gate", canonicalizeGates},
      {"fold-constants", "evaluate constant ops and simplify identities", foldConstants},
      {"dce", "remove values nothing uses", eliminateDeadCode},
  };
  return passes;
}

const PassInfo* findPass(const std::string& name) {
  for (const PassInfo& p : catalog())
    if (name == p.name) return &p;
  return nullptr;
}

}  // namespace lina::passes
