#include "compiler/rir/printer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace lina::rir {

std::string formatNumber(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  return buf;
}

namespace {

std::string shapeText(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i];
  return s + "]";
}

void printDecl(std::ostream& os, const char* keyword, const Decl& d) {
  os << "  " << keyword << ' ' << d.name << " : ";
  if (d.shapeKnown) os << shapeText(d.shape);
  else os << '?';
  if (d.isGate) os << " gate";
  os << '\n';
}

void printGate(std::ostream& os, const Gate& g) {
  if (!g.present()) {
    os << "none";
    return;
  }
  os << (g.space == GateSpace::Log ? "log(%" : "linear(%") << g.value << ')';
}

void printInst(std::ostream& os, const Inst& inst) {
  os << "    ";
  if (hasResult(inst.op)) os << '%' << inst.result << " = ";
  switch (inst.op) {
    case Op::Const: os << "const " << formatNumber(inst.number); break;
    case Op::Dim: os << "dim " << inst.symbol; break;
    case Op::Head: os << "head"; break;
    case Op::Param:
      os << "param " << inst.symbol;
      if (!inst.operands.empty()) os << " default %" << inst.operands[0];
      break;
    case Op::Input: os << "input " << inst.symbol; break;
    case Op::Sum:
    case Op::Softmax:
    case Op::Dot:
      os << opName(inst.op);
      for (size_t i = 0; i < inst.operands.size(); ++i) os << (i ? ", %" : " %") << inst.operands[i];
      os << " over " << inst.dim;
      break;
    case Op::Read:
      os << (inst.afterUpdate ? "read.after " : "read.before ") << inst.symbol << ", %" << inst.operands[0]
         << " over " << inst.dim;
      break;
    case Op::Update:
      os << "update " << inst.symbol << " rows ";
      printGate(os, inst.rows);
      os << " cols ";
      printGate(os, inst.cols);
      os << " outer(%" << inst.operands[0] << ", %" << inst.operands[1] << ')';
      break;
    case Op::Output: os << "output " << inst.symbol << " = %" << inst.operands[0]; break;
    default:
      os << opName(inst.op);
      for (size_t i = 0; i < inst.operands.size(); ++i) os << (i ? ", %" : " %") << inst.operands[i];
  }
  if (hasResult(inst.op)) os << " : " << shapeText(inst.shape);
  os << '\n';
}

}  // namespace

void print(std::ostream& os, const Recurrence& rec) {
  os << "recurrence @" << rec.name << " {\n";
  if (!rec.dims.empty()) {
    os << "  dims ";
    for (size_t i = 0; i < rec.dims.size(); ++i) os << (i ? ", " : "") << rec.dims[i];
    os << '\n';
  }
  for (const Decl& d : rec.inputs) printDecl(os, "in", d);
  for (const Decl& d : rec.states) printDecl(os, "state", d);
  for (const Decl& d : rec.outputs) printDecl(os, "out", d);
  for (const Decl& d : rec.params) printDecl(os, "param", d);
  os << "  chunk " << (rec.chunkTuned ? "tune(" : "");
  for (size_t i = 0; i < rec.chunkSizes.size(); ++i) os << (i ? ", " : "") << rec.chunkSizes[i];
  os << (rec.chunkTuned ? ")" : "") << '\n';
  os << "  step {\n";
  for (const Inst& inst : rec.body) printInst(os, inst);
  os << "  }\n}\n";
}

void print(std::ostream& os, const Module& module) {
  for (size_t i = 0; i < module.recurrences.size(); ++i) {
    if (i) os << '\n';
    print(os, module.recurrences[i]);
  }
}

std::string toString(const Module& module) {
  std::ostringstream os;
  print(os, module);
  return os.str();
}

}  // namespace lina::rir
