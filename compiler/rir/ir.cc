#include "compiler/rir/ir.h"

#include <cmath>
#include <cstdlib>

namespace lina::rir {

const char* opName(Op op) {
  switch (op) {
    case Op::Const: return "const";
    case Op::Dim: return "dim";
    case Op::Head: return "head";
    case Op::Param: return "param";
    case Op::Input: return "input";
    case Op::Neg: return "neg";
    case Op::Add: return "add";
    case Op::Sub: return "sub";
    case Op::Mul: return "mul";
    case Op::Div: return "div";
    case Op::Pow: return "pow";
    case Op::Exp: return "exp";
    case Op::Log: return "log";
    case Op::Sum: return "sum";
    case Op::Softmax: return "softmax";
    case Op::Dot: return "dot";
    case Op::Read: return "read";
    case Op::RunningSum: return "running_sum";
    case Op::Update: return "update";
    case Op::Output: return "output";
  }
  return "?";
}

bool isElementwise(Op op) {
  switch (op) {
    case Op::Neg: case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
    case Op::Exp: case Op::Log:
      return true;
    default:
      return false;
  }
}

double evaluateElementwise(Op op, double a, double b) {
  switch (op) {
    case Op::Neg: return -a;
    case Op::Add: return a + b;
    case Op::Sub: return a - b;
    case Op::Mul: return a * b;
    case Op::Div: return a / b;
    case Op::Pow: return std::pow(a, b);
    case Op::Exp: return std::exp(a);
    case Op::Log: return std::log(a);
    default: return 0;  // not elementwise
  }
}

bool hasResult(Op op) { return op != Op::Update && op != Op::Output; }

const Decl* Recurrence::findDecl(const std::vector<Decl>& decls, const std::string& n) const {
  for (const Decl& d : decls)
    if (d.name == n) return &d;
  return nullptr;
}

const Inst* Recurrence::definition(const std::string& n) const {
  for (const Inst& inst : body)
    if (inst.result == n) return &inst;
  return nullptr;
}

std::string Recurrence::freshName() const {
  long next = 0;
  for (const Inst& inst : body) {
    const std::string& r = inst.result;
    if (r.empty() || r.find_first_not_of("0123456789") != std::string::npos) continue;
    next = std::max(next, std::strtol(r.c_str(), nullptr, 10) + 1);
  }
  return std::to_string(next);
}

std::set<std::string> uniformValues(const Recurrence& rec) {
  std::set<std::string> uniform;
  for (const Inst& inst : rec.body) {
    if (!hasResult(inst.op)) continue;
    bool u = false;
    switch (inst.op) {
      case Op::Const: case Op::Dim: case Op::Head: case Op::Param: u = true; break;
      case Op::Input: case Op::Read: case Op::RunningSum: u = false; break;
      default:
        u = true;
        for (const std::string& o : inst.operands) u = u && uniform.count(o);
    }
    if (u) uniform.insert(inst.result);
  }
  return uniform;
}

std::set<std::string> valuesReading(const Recurrence& rec, const std::string& state) {
  std::set<std::string> reading;
  for (const Inst& inst : rec.body) {
    if (!hasResult(inst.op)) continue;
    bool r = inst.op == Op::Read && inst.symbol == state;
    for (const std::string& o : inst.operands) r = r || reading.count(o);
    if (r) reading.insert(inst.result);
  }
  return reading;
}

}  // namespace lina::rir
