#include <map>

#include "compiler/passes/passes.h"

namespace lina::passes {

namespace {

using ast::Expr;
using ast::Item;
using ast::RefKind;

class Lowering {
 public:
  explicit Lowering(const sema::RecurrenceInfo& info) : info_(info) {}

  rir::Recurrence run() {
    const ast::Recurrence& src = *info_.ast;
    rec_.name = src.name.name;
    rec_.loc = src.name.range;
    rec_.chunkSizes = info_.chunkSizes;
    rec_.chunkTuned = info_.chunkTuned;
    for (const Item& item : src.items) declare(item);
    // Param defaults first: they may be used anywhere in the step.
    for (const Item& item : src.items) {
      if (item.kind != Item::Kind::Param) continue;
      const ast::Decl& d = item.decls[0];
      rir::Inst p;
      p.op = rir::Op::Param;
      p.symbol = d.id.name;
      p.result = d.id.name;
      for (const ast::Ident& dim : d.shape) p.shape.push_back(dim.name);
      p.loc = item.range;
      if (item.value) p.operands.push_back(lower(*item.value));
      emit(std::move(p));
      named_[d.id.name] = d.id.name;
    }
    for (const Item& item : src.items) {
      if (item.kind == Item::Kind::Const) {
        named_[item.target.name] = lowerNamed(*item.value, item.target.name);
      } else if (item.kind == Item::Kind::Assign) {
        statement(item);
      }
    }
    return std::move(rec_);
  }

 private:
  void declare(const Item& item) {
    auto decls = [&](std::vector<rir::Decl>& list) {
      for (const ast::Decl& d : item.decls) {
        rir::Decl out;
        out.name = d.id.name;
        out.isGate = d.isGate;
        out.loc = d.id.range;
        out.shapeKnown = d.hasShape || item.kind != Item::Kind::States;
        for (const ast::Ident& dim : d.shape) out.shape.push_back(dim.name);
        list.push_back(std::move(out));
      }
    };
    switch (item.kind) {
      case Item::Kind::Dims:
        for (const ast::Ident& d : item.dims) rec_.dims.push_back(d.name);
        break;
      case Item::Kind::Inputs: decls(rec_.inputs); break;
      case Item::Kind::States: decls(rec_.states); break;
      case Item::Kind::Outputs: decls(rec_.outputs); break;
      case Item::Kind::Param: decls(rec_.params); break;
      default: break;
    }
  }

  void statement(const Item& item) {
    const std::string& target = item.target.name;
    auto update = info_.updates.find(&item);
    if (update != info_.updates.end()) {
      const sema::StateUpdate& su = update->second;
      rir::Inst u;
      u.op = rir::Op::Update;
      u.symbol = target;
      u.loc = item.range;
      if (su.rowDecay) u.rows = rir::Gate{lower(*su.rowDecay), rir::GateSpace::Linear};
      if (su.colDecay) u.cols = rir::Gate{lower(*su.colDecay), rir::GateSpace::Linear};
      u.operands = {lower(*su.u), lower(*su.w)};
      emit(std::move(u));
      updated_.insert(target);
      return;
    }
    for (const rir::Decl& o : rec_.outputs) {
      if (o.name != target) continue;
      std::string v = lower(*item.value);
      rir::Inst out;
      out.op = rir::Op::Output;
      out.symbol = target;
      out.operands = {v};
      out.loc = item.range;
      emit(std::move(out));
      named_[target] = v;
      // Outputs declared without a shape take the shape of their value.
      for (rir::Decl& d : rec_.outputs)
        if (d.name == target) d.shape = item.value->shape;
      return;
    }
    named_[target] = lowerNamed(*item.value, target);
  }

  // Lowers `e` and, when it produced a fresh temporary, renames it to `name` so the printed RIR
  // keeps the user's names (%gamma, %p).
  std::string lowerNamed(const Expr& e, const std::string& name) {
    size_t before = rec_.body.size();
    std::string v = lower(e);
    if (rec_.body.size() > before && rec_.body.back().result == v && isTemporary(v)) {
      rec_.body.back().result = name;
      return name;
    }
    return v;
  }
  static bool isTemporary(const std::string& v) {
    return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos;
  }

  std::string emit(rir::Inst inst) {
    if (rir::hasResult(inst.op) && inst.result.empty()) inst.result = std::to_string(next_++);
    std::string r = inst.result;
    rec_.body.push_back(std::move(inst));
    return r;
  }

  std::string make(rir::Op op, std::vector<std::string> operands, const Expr& e, std::string dim = "") {
    rir::Inst inst;
    inst.op = op;
    inst.operands = std::move(operands);
    inst.shape = e.shape;
    inst.dim = std::move(dim);
    inst.loc = e.range;
    return emit(std::move(inst));
  }

  std::string lower(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Number: {
        rir::Inst c;
        c.op = rir::Op::Const;
        c.number = e.number;
        c.loc = e.range;
        return emit(std::move(c));
      }
      case Expr::Kind::Name: return lowerName(e);
      case Expr::Kind::Neg: return make(rir::Op::Neg, {lower(*e.operands[0])}, e);
      case Expr::Kind::Binary: {
        if (e.op == ast::BinaryOp::Contract) return lowerContract(e);
        static const std::map<ast::BinaryOp, rir::Op> ops = {
            {ast::BinaryOp::Add, rir::Op::Add}, {ast::BinaryOp::Sub, rir::Op::Sub},
            {ast::BinaryOp::Mul, rir::Op::Mul}, {ast::BinaryOp::Div, rir::Op::Div},
            {ast::BinaryOp::Pow, rir::Op::Pow}};
        std::string a = lower(*e.operands[0]);
        std::string b = lower(*e.operands[1]);
        return make(ops.at(e.op), {a, b}, e);
      }
      case Expr::Kind::Call: {
        std::vector<std::string> args;
        for (const auto& a : e.operands) args.push_back(lower(*a));
        const std::string& f = e.text;
        if (f == "exp") return make(rir::Op::Exp, args, e);
        if (f == "log") return make(rir::Op::Log, args, e);
        const std::string& dim = e.operands[0]->shape[0];
        if (f == "softmax") return make(rir::Op::Softmax, args, e, dim);
        if (f == "sum") return make(rir::Op::Sum, args, e, dim);
        return make(rir::Op::Dot, args, e, dim);  // sema admits no other function here
      }
    }
    return "";
  }

  std::string lowerName(const Expr& e) {
    switch (e.ref) {
      case RefKind::Dim: {
        auto it = dimValues_.find(e.text);
        if (it != dimValues_.end()) return it->second;
        rir::Inst d;
        d.op = rir::Op::Dim;
        d.symbol = e.text;
        d.loc = e.range;
        return dimValues_[e.text] = emit(std::move(d));
      }
      case RefKind::Head: {
        if (!headValue_.empty()) return headValue_;
        rir::Inst h;
        h.op = rir::Op::Head;
        h.loc = e.range;
        return headValue_ = emit(std::move(h));
      }
      case RefKind::Input: {
        auto it = named_.find(e.text);
        if (it != named_.end()) return it->second;
        rir::Inst in;
        in.op = rir::Op::Input;
        in.symbol = e.text;
        in.result = e.text;
        in.shape = e.shape;
        in.loc = e.range;
        return named_[e.text] = emit(std::move(in));
      }
      default:
        return named_.at(e.text);  // params, consts, locals, outputs: lowered at their definition
    }
  }

  std::string lowerContract(const Expr& e) {
    const Expr* lhs = e.operands[0].get();
    const Expr* rhs = e.operands[1].get();
    const Expr* state = rhs->ref == RefKind::State ? rhs : lhs;
    const Expr* vec = state == rhs ? lhs : rhs;
    rir::Inst r;
    r.op = rir::Op::Read;
    r.symbol = state->text;
    r.operands = {lower(*vec)};
    r.dim = vec->shape[0];
    r.afterUpdate = updated_.count(state->text) > 0;
    r.shape = e.shape;
    r.loc = e.range;
    return emit(std::move(r));
  }

  const sema::RecurrenceInfo& info_;
  rir::Recurrence rec_;
  std::map<std::string, std::string> named_;     // source name -> SSA value
  std::map<std::string, std::string> dimValues_;
  std::string headValue_;
  std::set<std::string> updated_;
  int next_ = 0;
};

}  // namespace

rir::Module lowerAstToRir(const std::vector<sema::RecurrenceInfo>& infos) {
  rir::Module module;
  for (const sema::RecurrenceInfo& info : infos) module.recurrences.push_back(Lowering(info).run());
  return module;
}

}  // namespace lina::passes
