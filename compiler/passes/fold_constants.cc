#include <map>
#include <optional>

#include "compiler/passes/passes.h"

namespace lina::passes {

namespace {

// For `x op c` / `c op x` identities: returns the operand that the whole op equals, if any.
std::optional<std::string> identity(const rir::Inst& inst, const std::map<std::string, double>& constant,
                                    const std::map<std::string, rir::Inst>& def,
                                    const std::map<std::string, rir::Shape>& shape) {
  auto isConst = [&](size_t i, double v) {
    auto it = constant.find(inst.operands[i]);
    return it != constant.end() && it->second == v;
  };
  // The replacement must have the result's shape (1 * x with a scalar 1 and a vector x is fine;
  // x * 1 with a scalar x and a vector 1 is not).
  auto same = [&](size_t i) -> std::optional<std::string> {
    auto it = shape.find(inst.operands[i]);
    if (it != shape.end() && it->second == inst.shape) return inst.operands[i];
    return std::nullopt;
  };
  switch (inst.op) {
    case rir::Op::Mul:
      if (isConst(1, 1)) return same(0);
      if (isConst(0, 1)) return same(1);
      break;
    case rir::Op::Add:
      if (isConst(1, 0)) return same(0);
      if (isConst(0, 0)) return same(1);
      break;
    case rir::Op::Sub:
      if (isConst(1, 0)) return same(0);
      break;
    case rir::Op::Div:
    case rir::Op::Pow:
      if (isConst(1, 1)) return same(0);
      break;
    case rir::Op::Log:
    case rir::Op::Neg: {
      auto it = def.find(inst.operands[0]);
      rir::Op inverse = inst.op == rir::Op::Log ? rir::Op::Exp : rir::Op::Neg;
      if (it != def.end() && it->second.op == inverse) return it->second.operands[0];
      break;
    }
    default:
      break;
  }
  return std::nullopt;
}

}  // namespace

bool foldConstants(rir::Module& module, DiagnosticEngine&) {
  for (rir::Recurrence& rec : module.recurrences) {
    std::map<std::string, double> constant;       // scalar constants by name
    std::map<std::string, std::string> alias;     // removed result -> the value that replaces it
    // Kept definitions with their operands already resolved, for log(exp(x)) and neg(neg(x)).
    std::map<std::string, rir::Inst> def;
    std::map<std::string, rir::Shape> shape;
    auto resolve = [&](std::string& name) {
      auto it = alias.find(name);
      if (it != alias.end()) name = it->second;
    };
    std::vector<rir::Inst> out;
    out.reserve(rec.body.size());
    for (rir::Inst inst : rec.body) {
      for (std::string& o : inst.operands) resolve(o);
      if (inst.rows.present()) resolve(inst.rows.value);
      if (inst.cols.present()) resolve(inst.cols.value);
      if (rir::isElementwise(inst.op)) {
        std::vector<double> values;
        for (const std::string& o : inst.operands) {
          auto it = constant.find(o);
          if (it == constant.end()) break;
          values.push_back(it->second);
        }
        if (values.size() == inst.operands.size()) {
          inst.number = rir::evaluateElementwise(inst.op, values[0], values.size() > 1 ? values[1] : 0.0);
          inst.op = rir::Op::Const;
          inst.operands.clear();
        } else if (auto replacement = identity(inst, constant, def, shape)) {
          alias[inst.result] = *replacement;
          continue;
        }
      }
      if (inst.op == rir::Op::Const && inst.shape.empty()) constant[inst.result] = inst.number;
      if (rir::hasResult(inst.op)) {
        shape[inst.result] = inst.shape;
        def[inst.result] = inst;
      }
      out.push_back(std::move(inst));
    }
    rec.body = std::move(out);
  }
  return true;
}

}  // namespace lina::passes
