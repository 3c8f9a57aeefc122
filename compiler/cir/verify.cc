#include "compiler/cir/verify.h"

#include <algorithm>
#include <map>
#include <set>

namespace lina::cir {

namespace {

std::string shapeText(const rir::Shape& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + s[i];
  return t + "]";
}

class Verifier {
 public:
  Verifier(const Kernel& k, DiagnosticEngine& diags) : k_(k), diags_(diags) {}

  bool run() {
    if (k_.chunk < 1) fail(SourceRange(), "chunk must be >= 1, got " + std::to_string(k_.chunk));
    if (k_.strategy == Strategy::Recurrent && k_.chunk != 1) fail(SourceRange(), "the recurrent strategy has chunk 1");
    if ((k_.strategy == Strategy::Split) != (k_.phase != Phase::Whole))
      fail(SourceRange(), std::string("a ") + strategyName(k_.strategy) + " kernel cannot have phase " + phaseName(k_.phase) +
                              "; split kernels have phase states or outputs, the others whole");
    if (k_.warps < 1 || k_.warps > 32) fail(SourceRange(), "warps must be in [1, 32]");
    if (!k_.tiledDim.empty() && !isDim(k_.tiledDim)) fail(SourceRange(), "tile dim '" + k_.tiledDim + "' is not a dim");
    for (const rir::Decl& s : k_.states)
      if (s.shape.size() != 2) fail(s.loc, "state '" + s.name + "' needs two dims");
    for (size_t i = 0; i < k_.ops.size(); ++i) check(k_.ops[i]);
    // The states phase carries every state and stores nothing; the outputs phase stores every
    // output and carries nothing (its states come from the snapshots).
    if (k_.phase != Phase::Outputs)
      for (const rir::Decl& s : k_.states)
        if (!carried_.count(s.name)) fail(s.loc, "state '" + s.name + "' has no carry");
    if (k_.phase != Phase::States)
      for (const rir::Decl& o : k_.outputs)
        if (!stored_.count(o.name)) fail(o.loc, "output '" + o.name + "' is never stored");
    if (k_.phase == Phase::Outputs && !carried_.empty()) fail(SourceRange(), "the outputs phase carries a state");
    if (k_.phase == Phase::States && !stored_.empty()) fail(SourceRange(), "the states phase stores an output");
    if (k_.phase != Phase::Whole)
      for (const Op& op : k_.ops)
        if (op.kind == OpKind::RunningSum) fail(op.loc, "a split kernel cannot hold a running_sum");
    return ok_;
  }

 private:
  void fail(SourceRange at, const std::string& message) {
    diags_.error(at, "invalid CIR in @" + k_.name + ": " + message);
    ok_ = false;
  }
  bool isDim(const std::string& d) const { return std::find(k_.dims.begin(), k_.dims.end(), d) != k_.dims.end(); }
  const rir::Decl* find(const std::vector<rir::Decl>& list, const std::string& name) const {
    for (const rir::Decl& d : list)
      if (d.name == name) return &d;
    return nullptr;
  }
  // The shape of a defined value, or nullptr (and an error) when it is not defined yet.
  const rir::Shape* use(const Op& op, const std::string& name, bool mustBeUniform = false) {
    auto it = values_.find(name);
    if (it == values_.end()) {
      fail(op.loc, "%" + name + " is used before it is defined");
      return nullptr;
    }
    if (mustBeUniform && !uniform_.count(name)) fail(op.loc, "per-head op uses the per-step value %" + name);
    return &it->second;
  }
  void checkGate(const Op& op, const GateRef& g, const std::string& dim, const char* side) {
    if (g.kind == GateKind::None) return;
    for (const std::string* name : {&g.inclusive, &g.exclusive}) {
      if (name->empty()) continue;
      if (!cumsums_.count(*name)) fail(op.loc, std::string(side) + " gate %" + *name + " is not a gate_cumsum result");
      const rir::Shape* s = use(op, *name);
      if (!s) continue;
      rir::Shape expect = g.kind == GateKind::Vector ? rir::Shape{dim} : rir::Shape{};
      if (*s != expect) fail(op.loc, std::string(side) + " gate %" + *name + " has shape " + shapeText(*s) + ", expected " + shapeText(expect));
    }
    if (!op.afterUpdate && g.exclusive.empty() && op.kind == OpKind::Attend)
      fail(op.loc, "a read before the update needs the exclusive cumsum of its " + std::string(side) + " gate");
  }
  void define(const Op& op) {
    if (op.result.empty()) return fail(op.loc, "the op needs a result");
    if (!values_.emplace(op.result, op.shape).second) fail(op.loc, "%" + op.result + " is defined twice");
    if (op.kind == OpKind::Uniform) uniform_.insert(op.result);
    for (const std::string& d : op.shape)
      if (!isDim(d)) fail(op.loc, "%" + op.result + " uses undeclared dim '" + d + "'");
  }

  void check(const Op& op) {
    switch (op.kind) {
      case OpKind::Uniform:
        for (const std::string& o : op.operands) use(op, o, true);
        if (op.rop == rir::Op::Param && !find(k_.params, op.symbol)) fail(op.loc, "param '" + op.symbol + "' is not declared");
        if (op.rop == rir::Op::Dim && !isDim(op.symbol)) fail(op.loc, "dim '" + op.symbol + "' is not declared");
        break;
      case OpKind::Load: {
        const rir::Decl* in = find(k_.inputs, op.symbol);
        if (!in) fail(op.loc, "input '" + op.symbol + "' is not declared");
        else if (in->shape != op.shape) fail(op.loc, "load of '" + op.symbol + "' has shape " + shapeText(op.shape));
        break;
      }
      case OpKind::Elementwise:
        for (const std::string& o : op.operands) {
          const rir::Shape* s = use(op, o);
          if (s && !s->empty() && *s != op.shape) fail(op.loc, "operand %" + o + " " + shapeText(*s) + " does not broadcast to " + shapeText(op.shape));
        }
        break;
      case OpKind::Reduce:
        for (const std::string& o : op.operands) {
          const rir::Shape* s = use(op, o);
          if (s && *s != rir::Shape{op.dim}) fail(op.loc, "reduction over " + op.dim + " of %" + o + " " + shapeText(*s));
        }
        break;
      case OpKind::RunningSum: {
        const rir::Shape* s = op.operands.empty() ? nullptr : use(op, op.operands[0]);
        if (s && *s != op.shape) fail(op.loc, "running_sum of %" + op.operands[0] + " changes its shape");
        for (size_t i = 1; i < op.operands.size() && i < 3; ++i) {
          const rir::Shape* o = use(op, op.operands[i]);
          if (o && *o != op.shape)
            fail(op.loc, "running_sum's operand %" + op.operands[i] + " is " + shapeText(*o) + "; expected " + shapeText(op.shape));
        }
        if (op.operands.empty() || op.operands.size() > 3 || !op.dim.empty())
          fail(op.loc, "running_sum takes 1 to 3 operands (summand, initial value, second summand) and no 'over'; got " +
                           std::to_string(op.operands.size()) + " operands" + (op.dim.empty() ? "" : " over " + op.dim));
        break;
      }
      case OpKind::GateCumsum: {
        const rir::Shape* s = op.operands.empty() ? nullptr : use(op, op.operands[0]);
        if (s && *s != op.shape) fail(op.loc, "cumsum of %" + op.operands[0] + " changes its shape");
        cumsums_.insert(op.result);
        if (!op.exclusive.empty()) {
          cumsums_.insert(op.exclusive);
          if (!values_.emplace(op.exclusive, op.shape).second) fail(op.loc, "%" + op.exclusive + " is defined twice");
        }
        break;
      }
      case OpKind::Attend:
      case OpKind::Carry: {
        const rir::Decl* s = find(k_.states, op.symbol);
        if (!s || s->shape.size() != 2) return fail(op.loc, "state '" + op.symbol + "' is not declared");
        if (carried_.count(op.symbol)) fail(op.loc, "state '" + op.symbol + "' is used after its carry in the chunk");
        checkGate(op, op.rows, s->shape[0], "row");
        checkGate(op, op.cols, s->shape[1], "column");
        const rir::Shape* u = use(op, op.u);
        const rir::Shape* w = use(op, op.w);
        if (u && *u != rir::Shape{s->shape[0]}) fail(op.loc, "outer() u " + shapeText(*u) + " does not run over " + s->shape[0]);
        if (w && *w != rir::Shape{s->shape[1]}) fail(op.loc, "outer() w " + shapeText(*w) + " does not run over " + s->shape[1]);
        if (op.kind == OpKind::Carry) {
          carried_.insert(op.symbol);
          return;
        }
        const rir::Shape* x = use(op, op.operands.empty() ? "" : op.operands[0]);
        if (op.dim != s->shape[0] && op.dim != s->shape[1]) return fail(op.loc, "attend over " + op.dim + ", not a dim of '" + s->name + "'");
        if (x && *x != rir::Shape{op.dim}) fail(op.loc, "attend over " + op.dim + " of a value " + shapeText(*x));
        rir::Shape expect = {op.dim == s->shape[0] ? s->shape[1] : s->shape[0]};
        if (op.shape != expect) fail(op.loc, "attend gives " + shapeText(expect) + ", result says " + shapeText(op.shape));
        break;
      }
      case OpKind::Store: {
        const rir::Decl* o = find(k_.outputs, op.symbol);
        if (!o) return fail(op.loc, "output '" + op.symbol + "' is not declared");
        if (!stored_.insert(op.symbol).second) fail(op.loc, "output '" + op.symbol + "' is stored twice");
        const rir::Shape* s = use(op, op.operands.empty() ? "" : op.operands[0]);
        if (s && *s != o->shape) fail(op.loc, "store of " + shapeText(*s) + " into output '" + o->name + "' " + shapeText(o->shape));
        return;
      }
    }
    define(op);
  }

  const Kernel& k_;
  DiagnosticEngine& diags_;
  std::map<std::string, rir::Shape> values_;
  std::set<std::string> uniform_, cumsums_, carried_, stored_;
  bool ok_ = true;
};

}  // namespace

bool verify(const Kernel& kernel, DiagnosticEngine& diags) { return Verifier(kernel, diags).run(); }

}  // namespace lina::cir
