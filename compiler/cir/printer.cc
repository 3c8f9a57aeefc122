#include "compiler/cir/printer.h"

#include "compiler/rir/printer.h"

namespace lina::cir {

namespace {

std::string shapeText(const rir::Shape& shape, bool perStep) {
  std::string s = "[";
  if (perStep) s += "C";
  for (size_t i = 0; i < shape.size(); ++i) s += ((i || perStep) ? ", " : "") + shape[i];
  return s + "]";
}

std::string gateText(const GateRef& g) {
  if (g.kind == GateKind::None) return "none";
  std::string s = std::string(gateKindName(g.kind)) + "(%" + g.inclusive;
  if (!g.exclusive.empty()) s += ", %" + g.exclusive;
  return s + ")";
}

}  // namespace

void print(std::ostream& os, const Kernel& k) {
  os << "cir.kernel @" << k.name << " program=@" << k.program << " strategy=" << strategyName(k.strategy);
  if (k.phase != Phase::Whole) os << " phase=" << phaseName(k.phase);
  os      << " chunk=" << k.chunk << " tile=" << (k.tiledDim.empty() ? "none" : k.tiledDim) << " warps=" << k.warps
     << " {\n";
  // The declarations the kernel's loads, stores and states refer to, as in RIR.
  if (!k.dims.empty()) {
    os << "  dims ";
    for (size_t i = 0; i < k.dims.size(); ++i) os << (i ? ", " : "") << k.dims[i];
    os << '\n';
  }
  auto decls = [&](const char* keyword, const std::vector<rir::Decl>& list) {
    for (const rir::Decl& d : list) os << "  " << keyword << ' ' << d.name << " : " << shapeText(d.shape, false) << (d.isGate ? " gate" : "") << '\n';
  };
  decls("in", k.inputs);
  decls("state", k.states);
  decls("out", k.outputs);
  decls("param", k.params);
  for (const Op& op : k.ops) {
    os << "  ";
    if (!op.result.empty()) os << '%' << op.result << " = ";
    switch (op.kind) {
      case OpKind::Uniform:
        os << "uniform." << rir::opName(op.rop);
        if (op.rop == rir::Op::Const) os << ' ' << rir::formatNumber(op.number);
        if (!op.symbol.empty()) os << ' ' << op.symbol;
        for (size_t i = 0; i < op.operands.size(); ++i) os << (i ? ", %" : " %") << op.operands[i];
        if (!op.dim.empty()) os << " over " << op.dim;
        break;
      case OpKind::Load: os << "chunk.load " << op.symbol; break;
      case OpKind::Elementwise:
      case OpKind::Reduce:
        os << "chunk." << rir::opName(op.rop);
        for (size_t i = 0; i < op.operands.size(); ++i) os << (i ? ", %" : " %") << op.operands[i];
        if (!op.dim.empty()) os << " over " << op.dim;
        break;
      case OpKind::GateCumsum:
        os << "chunk.gate_cumsum %" << op.operands[0] << (op.uniform ? " per_head" : "") << " log2";
        if (!op.exclusive.empty()) os << " exclusive(%" << op.exclusive << ")";
        break;
      case OpKind::Attend:
        os << "chunk.attend." << (op.afterUpdate ? "after " : "before ") << op.symbol << ", %" << op.operands[0]
           << " over " << op.dim << " rows " << gateText(op.rows) << " cols " << gateText(op.cols) << " outer(%" << op.u
           << ", %" << op.w << ")";
        break;
      case OpKind::Carry:
        os << "chunk.carry " << op.symbol << " rows " << gateText(op.rows) << " cols " << gateText(op.cols)
           << " outer(%" << op.u << ", %" << op.w << ")";
        break;
      case OpKind::Store: os << "chunk.store " << op.symbol << " = %" << op.operands[0]; break;
      case OpKind::RunningSum:
        os << "chunk.running_sum %" << op.operands[0];
        for (size_t i = 1; i < op.operands.size(); ++i) os << ", %" << op.operands[i];
        break;
    }
    if (!op.result.empty()) os << " : " << shapeText(op.shape, op.kind != OpKind::Uniform);
    os << '\n';
  }
  os << "}\n";
}

}  // namespace lina::cir
