#include "compiler/passes/derive_backward.h"

#include "compiler/passes/passes.h"

#include <algorithm>
#include <map>
#include <set>

namespace lina::passes {

namespace {

class PassABuilder {
 public:
  PassABuilder(const rir::Recurrence& f, DiagnosticEngine& diags) : f_(f), diags_(diags) {}

  std::optional<rir::Recurrence> run() {
    a_.name = f_.name + "_bwd_a";
    a_.dims = f_.dims;
    a_.inputs = f_.inputs;
    a_.states = f_.states;
    a_.params = f_.params;
    a_.chunkSizes = f_.chunkSizes;
    a_.chunkTuned = f_.chunkTuned;
    a_.loc = f_.loc;
    for (const rir::Decl& o : f_.outputs) {
      rir::Decl d = o;
      d.name = "d_" + o.name;
      d.isGate = false;
      a_.inputs.push_back(d);
    }
    for (const rir::Inst& inst : f_.body) {
      if (inst.op == rir::Op::Output) continue;  // A has its own outputs
      if (inst.op == rir::Op::Read) readIndex_[inst.result] = static_cast<int>(readIndex_.size());
      forward_.push_back(inst);
      if (rir::hasResult(inst.op)) shapes_[inst.result] = inst.shape;
    }
    // Reverse sweep over F's step: seeds from the output cotangents.
    for (size_t i = f_.body.size(); i-- > 0;) {
      const rir::Inst& inst = f_.body[i];
      if (inst.op == rir::Op::Output) {
        std::string d = emitInput("d_" + inst.symbol, shapeOf(inst.operands[0]));
        accumulate(inst.operands[0], d);
        continue;
      }
      if (!rir::hasResult(inst.op)) continue;  // updates: their operands' gradients are pass B's
      auto it = adj_.find(inst.result);
      if (it == adj_.end()) continue;  // nothing downstream needs this value
      backward(inst, it->second);
    }
    for (const auto& [name, d] : inputAdj_) addOutput("dA_" + name, materialize(d, name));
    for (const auto& [name, d] : paramAdj_) addOutput("dA_" + name, materialize(d, name));
    if (!schedule()) return std::nullopt;
    return a_;
  }

 private:
  const rir::Shape& shapeOf(const std::string& v) { return shapes_.at(v); }

  std::string fresh() { return "d." + std::to_string(next_++); }  // "." cannot clash with source names

  std::string emit(rir::Op op, std::vector<std::string> operands, rir::Shape shape, std::string dim = "") {
    rir::Inst inst;
    inst.op = op;
    inst.result = fresh();
    inst.operands = std::move(operands);
    inst.shape = std::move(shape);
    inst.dim = std::move(dim);
    shapes_[inst.result] = inst.shape;
    adjoint_.push_back(inst);
    return inst.result;
  }
  std::string emitInput(const std::string& name, const rir::Shape& shape) {
    rir::Inst inst;
    inst.op = rir::Op::Input;
    inst.symbol = name;
    inst.result = name;
    inst.shape = shape;
    shapes_[name] = shape;
    adjoint_.push_back(inst);
    return name;
  }
  std::string constant(double x) {
    rir::Inst inst;
    inst.op = rir::Op::Const;
    inst.number = x;
    inst.result = fresh();
    shapes_[inst.result] = {};
    adjoint_.push_back(inst);
    return inst.result;
  }
  void addOutput(const std::string& name, const std::string& value) {
    rir::Decl d;
    d.name = name;
    d.shape = shapeOf(value);
    a_.outputs.push_back(d);
    rir::Inst out;
    out.op = rir::Op::Output;
    out.symbol = name;
    out.operands = {value};
    adjoint_.push_back(out);
  }
  // adj[v] += g, reducing g to v's shape when v is a scalar broadcast over a vector. A vector's
  // adjoint may stay a scalar (the same value in every entry) until a vector is needed.
  void accumulate(const std::string& v, std::string g) {
    if (shapeOf(v).empty() && !shapeOf(g).empty()) g = emit(rir::Op::Sum, {g}, {}, shapeOf(g)[0]);
    auto it = adj_.find(v);
    if (it == adj_.end()) adj_[v] = g;
    else it->second = emit(rir::Op::Add, {it->second, g}, shapeOf(it->second).empty() ? shapeOf(g) : shapeOf(it->second));
  }
  // g as a vector shaped like `like` (g itself when it already is one): (like - like) + g.
  std::string materialize(const std::string& g, const std::string& like) {
    if (!shapeOf(g).empty() || shapeOf(like).empty()) return g;
    std::string zero = emit(rir::Op::Sub, {like, like}, shapeOf(like));
    return emit(rir::Op::Add, {zero, g}, shapeOf(like));
  }
  rir::Shape broadcast(const std::string& a, const std::string& b) {
    return shapeOf(a).empty() ? shapeOf(b) : shapeOf(a);
  }

  void backward(const rir::Inst& inst, const std::string& g) {
    const std::vector<std::string>& x = inst.operands;
    switch (inst.op) {
      case rir::Op::Const: case rir::Op::Dim: case rir::Op::Head:
        return;
      case rir::Op::Input:
        inputAdj_[inst.symbol] = inputAdj_.count(inst.symbol)
                                     ? emit(rir::Op::Add, {inputAdj_[inst.symbol], g}, inst.shape)
                                     : g;
        return;
      case rir::Op::Param:
        if (!inst.shape.empty())
          paramAdj_[inst.symbol] = paramAdj_.count(inst.symbol)
                                       ? emit(rir::Op::Add, {paramAdj_[inst.symbol], g}, inst.shape)
                                       : g;
        return;  // scalar params: gradient not derived yet (the reference backward has it)
      case rir::Op::Neg:
        accumulate(x[0], emit(rir::Op::Neg, {g}, shapeOf(g)));
        return;
      case rir::Op::Add:
        accumulate(x[0], g);
        accumulate(x[1], g);
        return;
      case rir::Op::Sub:
        accumulate(x[0], g);
        accumulate(x[1], emit(rir::Op::Neg, {g}, shapeOf(g)));
        return;
      case rir::Op::Mul:
        accumulate(x[0], emit(rir::Op::Mul, {g, x[1]}, broadcast(g, x[1])));
        accumulate(x[1], emit(rir::Op::Mul, {g, x[0]}, broadcast(g, x[0])));
        return;
      case rir::Op::Div: {
        accumulate(x[0], emit(rir::Op::Div, {g, x[1]}, broadcast(g, x[1])));
        std::string q = emit(rir::Op::Div, {inst.result, x[1]}, inst.shape);  // a / b^2 = out / b
        accumulate(x[1], emit(rir::Op::Neg, {emit(rir::Op::Mul, {g, q}, inst.shape)}, inst.shape));
        return;
      }
      case rir::Op::Pow: {
        // d/da = b a^(b-1) = b out / a;  d/db = out log(a)
        std::string da = emit(rir::Op::Div, {emit(rir::Op::Mul, {x[1], inst.result}, inst.shape), x[0]}, inst.shape);
        accumulate(x[0], emit(rir::Op::Mul, {g, da}, inst.shape));
        std::string db = emit(rir::Op::Mul, {inst.result, emit(rir::Op::Log, {x[0]}, shapeOf(x[0]))}, inst.shape);
        accumulate(x[1], emit(rir::Op::Mul, {g, db}, inst.shape));
        return;
      }
      case rir::Op::Exp:
        accumulate(x[0], emit(rir::Op::Mul, {g, inst.result}, inst.shape));
        return;
      case rir::Op::Log:
        accumulate(x[0], emit(rir::Op::Div, {g, x[0]}, inst.shape));
        return;
      case rir::Op::Sum:
        accumulate(x[0], g);  // a scalar adjoint of a vector means the same value in every entry
        return;
      case rir::Op::Dot:
        accumulate(x[0], emit(rir::Op::Mul, {g, x[1]}, shapeOf(x[1])));
        accumulate(x[1], emit(rir::Op::Mul, {g, x[0]}, shapeOf(x[0])));
        return;
      case rir::Op::Softmax: {
        // d = p (g - sum(p g))
        std::string gv = materialize(g, inst.result);
        std::string s = emit(rir::Op::Dot, {inst.result, gv}, {}, inst.dim);
        accumulate(x[0], emit(rir::Op::Mul, {inst.result, emit(rir::Op::Sub, {g, s}, inst.shape)}, inst.shape));
        return;
      }
      case rir::Op::Read: {
        const rir::Decl* s = f_.state(inst.symbol);
        int i = readIndex_.at(inst.result);
        std::string other = inst.dim == s->shape[0] ? s->shape[1] : s->shape[0];
        rir::Inst dx;
        dx.op = rir::Op::Read;
        dx.symbol = inst.symbol;
        dx.result = fresh();
        dx.operands = {materialize(g, inst.result)};
        dx.dim = other;
        dx.afterUpdate = inst.afterUpdate;
        dx.shape = shapeOf(x[0]);
        shapes_[dx.result] = dx.shape;
        adjoint_.push_back(dx);
        accumulate(x[0], dx.result);
        std::string tag = std::to_string(i);
        addOutput("x_" + tag, x[0]);
        addOutput("dr_" + tag, dx.operands[0]);
        addOutput("ic_" + tag, emit(rir::Op::Mul, {x[0], dx.result}, shapeOf(x[0])));
        addOutput("io_" + tag, emit(rir::Op::Mul, {inst.result, dx.operands[0]}, inst.shape));
        return;
      }
      default:
        return;
    }
  }

  // Orders F's step and the adjoint instructions: operands first; a read before the update of
  // its state precedes that update and a read after it follows it (dx reads keep their phase).
  bool schedule() {
    std::vector<rir::Inst> pending = forward_;
    pending.insert(pending.end(), adjoint_.begin(), adjoint_.end());
    std::set<std::string> done;
    std::set<std::string> updated;
    std::map<std::string, int> beforeReadsLeft;
    for (const rir::Inst& inst : pending)
      if (inst.op == rir::Op::Read && !inst.afterUpdate) ++beforeReadsLeft[inst.symbol];
    auto ready = [&](const rir::Inst& inst) {
      for (const std::string& o : inst.operands)
        if (!done.count(o)) return false;
      for (const rir::Gate* g : {&inst.rows, &inst.cols})
        if (g->present() && !done.count(g->value)) return false;
      if (inst.op == rir::Op::Read) return inst.afterUpdate == (updated.count(inst.symbol) > 0);
      if (inst.op == rir::Op::Update) return beforeReadsLeft[inst.symbol] == 0;
      return true;
    };
    while (!pending.empty()) {
      auto it = std::find_if(pending.begin(), pending.end(), ready);
      if (it == pending.end()) {
        diags_.error(f_.loc, "@" + f_.name + ": cannot derive the backward's forward pass: a read before an update "
                                             "needs values that only exist after it (not supported yet)");
        return false;
      }
      if (rir::hasResult(it->op)) done.insert(it->result);
      if (it->op == rir::Op::Update) updated.insert(it->symbol);
      if (it->op == rir::Op::Read && !it->afterUpdate) --beforeReadsLeft[it->symbol];
      a_.body.push_back(*it);
      pending.erase(it);
    }
    return true;
  }

  const rir::Recurrence& f_;
  DiagnosticEngine& diags_;
  rir::Recurrence a_;
  std::vector<rir::Inst> forward_, adjoint_;
  std::map<std::string, rir::Shape> shapes_;
  std::map<std::string, std::string> adj_, inputAdj_, paramAdj_;
  std::map<std::string, int> readIndex_;
  int next_ = 0;
};

}  // namespace

std::optional<rir::Recurrence> deriveBackwardPassA(const rir::Recurrence& forward, DiagnosticEngine& diags) {
  std::optional<rir::Recurrence> a = PassABuilder(forward, diags).run();
  if (!a) return std::nullopt;
  rir::Module m{{std::move(*a)}};
  eliminateDeadCode(m, diags);  // adjoints nothing reads (e.g. of scalar params) and dead forward values
  return std::move(m.recurrences.front());
}

}  // namespace lina::passes
