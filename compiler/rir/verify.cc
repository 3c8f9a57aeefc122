#include "compiler/rir/verify.h"

#include <map>

namespace lina::rir {

namespace {

std::string shapeText(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i];
  return s + "]";
}

class Verifier {
 public:
  Verifier(const Recurrence& rec, DiagnosticEngine& diags, VerifyOptions options)
      : rec_(rec), diags_(diags), options_(options) {}

  bool run() {
    uniform_ = uniformValues(rec_);
    checkDecls();
    for (size_t i = 0; i < rec_.body.size(); ++i) checkInst(rec_.body[i]);
    for (const Decl& s : rec_.states)
      if (!updated_.count(s.name)) fail(s.loc, "state '" + s.name + "' has no update");
    for (const Decl& o : rec_.outputs)
      if (!written_.count(o.name)) fail(o.loc, "output '" + o.name + "' is never written");
    return ok_;
  }

 private:
  void fail(SourceRange at, const std::string& message) {
    diags_.error(at.isValid() ? at : rec_.loc, "invalid RIR in @" + rec_.name + ": " + message);
    ok_ = false;
  }
  bool isDim(const std::string& d) const {
    for (const std::string& x : rec_.dims)
      if (x == d) return true;
    return false;
  }
  void checkShape(const Shape& shape, size_t maxDims, SourceRange at, const std::string& what) {
    if (shape.size() > maxDims) fail(at, what + " has " + std::to_string(shape.size()) + " dims, at most " +
                                             std::to_string(maxDims) + " allowed");
    for (const std::string& d : shape)
      if (!isDim(d)) fail(at, what + " uses undeclared dim '" + d + "'");
    if (shape.size() == 2 && shape[0] == shape[1]) fail(at, what + " repeats dim '" + shape[0] + "'");
  }
  void checkDecls() {
    std::map<std::string, int> seen;
    for (const std::string& d : rec_.dims)
      if (seen[d]++) fail(rec_.loc, "dim '" + d + "' declared twice");
    auto each = [&](const std::vector<Decl>& decls, size_t maxDims, const char* what) {
      for (const Decl& d : decls) {
        if (seen[d.name]++) fail(d.loc, "name '" + d.name + "' declared twice");
        if (d.shapeKnown) checkShape(d.shape, maxDims, d.loc, std::string(what) + " '" + d.name + "'");
        if (d.isGate && what != std::string("input")) fail(d.loc, "only inputs can be gates");
      }
    };
    each(rec_.inputs, 1, "input");
    each(rec_.states, 2, "state");
    each(rec_.outputs, 1, "output");
    each(rec_.params, 1, "param");
    for (const Decl& s : rec_.states) {
      if (s.shapeKnown && s.shape.size() != 2) fail(s.loc, "state '" + s.name + "' must have two dims");
      if (!s.shapeKnown && options_.requireKnownStateShapes)
        fail(s.loc, "state '" + s.name + "' has no shape (run infer-state-shapes)");
    }
    if (rec_.chunkSizes.empty()) fail(rec_.loc, "no chunk size");
    for (int64_t c : rec_.chunkSizes)
      if (c < 16 || c > 256 || (c & (c - 1)))
        fail(rec_.loc, "chunk size " + std::to_string(c) + " is not a power of two in [16, 256]");
  }

  const Shape* operandShape(const Inst& inst, const std::string& name) {
    auto it = shapes_.find(name);
    if (it == shapes_.end()) {
      fail(inst.loc, "%" + name + " is used before it is defined");
      return nullptr;
    }
    return &it->second;
  }

  void checkInst(const Inst& inst) {
    std::string what = std::string("'") + opName(inst.op) + "'";
    // Record what the instruction declares before checking it, so that one bad instruction does
    // not make every later use of its result look undefined.
    if (hasResult(inst.op)) {
      if (inst.result.empty()) return fail(inst.loc, what + " needs a result name");
      if (shapes_.count(inst.result)) return fail(inst.loc, "%" + inst.result + " is defined twice");
    }
    struct Record {
      Verifier& v;
      const Inst& inst;
      ~Record() {
        if (hasResult(inst.op)) v.shapes_.emplace(inst.result, inst.shape);
        if (inst.op == Op::Update) v.updated_.insert(inst.symbol);
        if (inst.op == Op::Output) v.written_.insert(inst.symbol);
      }
    } record{*this, inst};
    std::vector<const Shape*> in;
    for (const std::string& o : inst.operands) {
      const Shape* s = operandShape(inst, o);
      if (!s) return;
      in.push_back(s);
    }
    auto arity = [&](size_t n) {
      if (in.size() == n) return true;
      fail(inst.loc, what + " takes " + std::to_string(n) + " operands, has " + std::to_string(in.size()));
      return false;
    };
    Shape expect;
    switch (inst.op) {
      case Op::Const:
      case Op::Head:
        if (!arity(0)) return;
        break;
      case Op::Dim:
        if (!arity(0)) return;
        if (!isDim(inst.symbol)) fail(inst.loc, "dim '" + inst.symbol + "' is not declared");
        break;
      case Op::Param: {
        const Decl* p = rec_.param(inst.symbol);
        if (!p) return fail(inst.loc, "param '" + inst.symbol + "' is not declared");
        expect = p->shape;
        if (in.size() > 1) return fail(inst.loc, "param takes at most one default");
        if (in.size() == 1) {
          if (!p->shape.empty()) fail(inst.loc, "vector param '" + p->name + "' cannot have a default");
          if (!in[0]->empty()) fail(inst.loc, "the default of '" + p->name + "' must be a scalar");
          if (!uniform_.count(inst.operands[0])) fail(inst.loc, "the default of '" + p->name + "' varies per step");
        }
        break;
      }
      case Op::Input: {
        if (!arity(0)) return;
        const Decl* d = rec_.input(inst.symbol);
        if (!d) return fail(inst.loc, "input '" + inst.symbol + "' is not declared");
        expect = d->shape;
        break;
      }
      case Op::Neg: case Op::Exp: case Op::Log:
        if (!arity(1)) return;
        expect = *in[0];
        break;
      // running_sum %x [, %init [, %y]]: init + the sum of x + y over the sequence's steps so far.
      // y is the part a kernel may leave out where it re-anchors the sum (GPU derived backward).
      case Op::RunningSum:
        if (in.size() > 3 || in.empty())
          return fail(inst.loc, what + " takes 1 to 3 operands (summand, initial value, second summand), has " +
                                    std::to_string(in.size()));
        for (size_t i = 1; i < in.size(); ++i)
          if (*in[i] != *in[0])
            return fail(inst.loc, what + ": operand " + std::to_string(i + 1) + " " + shapeText(*in[i]) +
                                      " must have the shape of the summand " + shapeText(*in[0]));
        expect = *in[0];
        break;
      case Op::Add: case Op::Sub: case Op::Mul: case Op::Div: case Op::Pow:
        if (!arity(2)) return;
        if (!in[0]->empty() && !in[1]->empty() && *in[0] != *in[1])
          return fail(inst.loc, what + " of " + shapeText(*in[0]) + " and " + shapeText(*in[1]) + ": dims differ");
        expect = in[0]->empty() ? *in[1] : *in[0];
        break;
      case Op::Sum: case Op::Softmax: case Op::Dot:
        if (!arity(inst.op == Op::Dot ? 2 : 1)) return;
        for (const Shape* s : in)
          if (*s != Shape{inst.dim}) return fail(inst.loc, what + " over " + inst.dim + " of a value of shape " + shapeText(*s));
        if (inst.op == Op::Softmax) expect = {inst.dim};
        break;
      case Op::Read: {
        if (!arity(1)) return;
        const Decl* s = rec_.state(inst.symbol);
        if (!s) return fail(inst.loc, "state '" + inst.symbol + "' is not declared");
        if (*in[0] != Shape{inst.dim}) return fail(inst.loc, "read over " + inst.dim + " of a value of shape " + shapeText(*in[0]));
        if (inst.afterUpdate != (updated_.count(inst.symbol) > 0))
          fail(inst.loc, std::string("read.") + (inst.afterUpdate ? "after" : "before") + " of '" + inst.symbol +
                             "' is placed " + (updated_.count(inst.symbol) ? "after" : "before") + " its update");
        if (s->shapeKnown && s->shape.size() == 2) {  // a malformed shape was reported with the decl
          if (inst.dim != s->shape[0] && inst.dim != s->shape[1])
            return fail(inst.loc, "read over " + inst.dim + " is not a dim of '" + s->name + "' " + shapeText(s->shape));
          expect = {inst.dim == s->shape[0] ? s->shape[1] : s->shape[0]};
        } else {
          expect = inst.shape;  // unknown until infer-state-shapes
        }
        break;
      }
      case Op::Update: {
        if (!arity(2)) return;
        const Decl* s = rec_.state(inst.symbol);
        if (!s) return fail(inst.loc, "state '" + inst.symbol + "' is not declared");
        if (updated_.count(inst.symbol)) fail(inst.loc, "state '" + inst.symbol + "' is updated twice");
        if (in[0]->size() != 1 || in[1]->size() != 1) return fail(inst.loc, "outer() needs two vectors");
        Shape written = {(*in[0])[0], (*in[1])[0]};
        bool matrix = s->shapeKnown && s->shape.size() == 2;
        if (matrix && written != s->shape)
          fail(inst.loc, "outer() writes " + shapeText(written) + " into '" + s->name + "' " + shapeText(s->shape));
        std::set<std::string> reading = valuesReading(rec_, inst.symbol);
        for (const std::string& o : inst.operands)
          if (reading.count(o)) fail(inst.loc, "the write term of '" + s->name + "' depends on a read of '" + s->name + "' (not linear)");
        Shape dims = matrix ? s->shape : written;
        for (int side = 0; side < 2; ++side) {
          const Gate& g = side == 0 ? inst.rows : inst.cols;
          if (!g.present()) continue;
          const Shape* gs = operandShape(inst, g.value);
          if (!gs) return;
          if (!gs->empty() && *gs != Shape{dims[side]})
            fail(inst.loc, std::string(side == 0 ? "row" : "column") + " gate of shape " + shapeText(*gs) +
                               " does not match dim " + dims[side]);
          if (reading.count(g.value)) fail(inst.loc, "the gate of '" + s->name + "' depends on a read of itself");
          if (options_.requireLogGates && g.space != GateSpace::Log)
            fail(inst.loc, "gate %" + g.value + " of '" + s->name + "' is not in log space (run canonicalize-gates)");
        }
        return;
      }
      case Op::Output: {
        if (!arity(1)) return;
        const Decl* o = rec_.output(inst.symbol);
        if (!o) return fail(inst.loc, "output '" + inst.symbol + "' is not declared");
        if (written_.count(inst.symbol)) fail(inst.loc, "output '" + inst.symbol + "' is written twice");
        if (*in[0] != o->shape)
          fail(inst.loc, "output '" + o->name + "' " + shapeText(o->shape) + " is given a value of shape " + shapeText(*in[0]));
        return;
      }
    }
    if (inst.shape != expect)
      fail(inst.loc, "%" + inst.result + " has type " + shapeText(inst.shape) + " but " + what + " gives " + shapeText(expect));
    checkShape(inst.shape, 1, inst.loc, "%" + inst.result);
  }

  const Recurrence& rec_;
  DiagnosticEngine& diags_;
  VerifyOptions options_;
  std::map<std::string, Shape> shapes_;
  std::set<std::string> uniform_, updated_, written_;
  bool ok_ = true;
};

}  // namespace

bool verify(const Recurrence& rec, DiagnosticEngine& diags, VerifyOptions options) {
  return Verifier(rec, diags, options).run();
}

bool verify(const Module& module, DiagnosticEngine& diags, VerifyOptions options) {
  bool ok = true;
  std::set<std::string> names;
  for (const Recurrence& rec : module.recurrences) {
    if (!names.insert(rec.name).second) {
      diags.error(rec.loc, "invalid RIR: recurrence @" + rec.name + " is defined twice");
      ok = false;
    }
    ok = verify(rec, diags, options) && ok;
  }
  return ok;
}

}  // namespace lina::rir
