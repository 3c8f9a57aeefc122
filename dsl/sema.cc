#include "dsl/sema.h"

#include <cmath>
#include <optional>
#include <set>
#include <sstream>

namespace lina::sema {

namespace {

using ast::Expr;
using ast::Item;
using ast::RefKind;

const char* const kBuiltinFunctions[] = {"exp", "log", "softmax", "sum", "dot", "outer"};

std::string shapeText(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + shape[i];
  return s + "]";
}

// The expression as the user would write it: fully parenthesized inside, without outer parentheses.
std::string exprText(const Expr& e) {
  std::ostringstream os;
  ast::print(os, e);
  std::string text = os.str();
  if (text.size() >= 2 && text.front() == '(' && text.back() == ')') {
    int depth = 0;
    for (size_t i = 0; i < text.size(); ++i) {
      depth += text[i] == '(' ? 1 : text[i] == ')' ? -1 : 0;
      if (depth == 0 && i + 1 < text.size()) return text;  // the first '(' closes early: keep all
    }
    return text.substr(1, text.size() - 2);
  }
  return text;
}

// The value of an expression made of numbers only (nullopt otherwise), to reject constant decays
// that are not positive before they become log gates.
std::optional<double> literalValue(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::Number: return e.number;
    case Expr::Kind::Neg: {
      auto a = literalValue(*e.operands[0]);
      return a ? std::optional<double>(-*a) : std::nullopt;
    }
    case Expr::Kind::Binary: {
      auto a = literalValue(*e.operands[0]);
      auto b = literalValue(*e.operands[1]);
      if (!a || !b) return std::nullopt;
      switch (e.op) {
        case ast::BinaryOp::Add: return *a + *b;
        case ast::BinaryOp::Sub: return *a - *b;
        case ast::BinaryOp::Mul: return *a * *b;
        case ast::BinaryOp::Div: return *a / *b;
        case ast::BinaryOp::Pow: return std::pow(*a, *b);
        default: return std::nullopt;
      }
    }
    case Expr::Kind::Call: {
      if (e.operands.size() != 1) return std::nullopt;
      auto a = literalValue(*e.operands[0]);
      if (!a) return std::nullopt;
      if (e.text == "exp") return std::exp(*a);
      if (e.text == "log") return std::log(*a);
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

const char* kindName(RefKind kind) {
  switch (kind) {
    case RefKind::Dim: return "dim";
    case RefKind::Head: return "builtin";
    case RefKind::Input: return "input";
    case RefKind::State: return "state";
    case RefKind::Output: return "output";
    case RefKind::Param: return "param";
    case RefKind::Const: return "const";
    case RefKind::Local: return "local";
    case RefKind::Unresolved: break;
  }
  return "name";
}

std::string withArticle(RefKind kind) {
  std::string k = kindName(kind);
  return (k[0] == 'i' || k[0] == 'o' ? "an " : "a ") + k;
}

struct Symbol {
  RefKind kind = RefKind::Unresolved;
  Shape shape;
  bool shapeKnown = true;
  bool isGate = false;
  bool defined = true;  // params, consts, locals and outputs become defined in order
  bool isUniform = false;
  std::set<std::string> reads;  // states whose reads this value depends on (locals, outputs)
  SourceRange declRange;
};

class RecurrenceChecker {
 public:
  RecurrenceChecker(const ast::Recurrence& rec, DiagnosticEngine& diags) : rec_(rec), diags_(diags) {
    info_.ast = &rec;
  }

  bool run();
  RecurrenceInfo take() { return std::move(info_); }

 private:
  bool error(SourceRange range, std::string message) {
    diags_.error(range, std::move(message));
    return false;
  }
  bool declare(const ast::Ident& id, Symbol symbol);
  bool checkShapeDims(const ast::Decl& decl, size_t maxDims, const char* what);
  bool collectDeclarations();
  bool checkParamDefault(const Item& item);
  bool checkStatement(const Item& item);
  bool checkUpdate(const Item& item, const std::string& stateName);
  bool checkChunk(const Item& item);

  // Type-checks an expression. `updating` names the state whose update is being checked (its
  // reads are non-linear and rejected). A bare state name is only legal as an operand of `@`.
  bool check(Expr& e, const std::string& updating = "");
  bool checkNode(Expr& e, const std::string& updating);
  bool checkName(Expr& e);
  bool checkContract(Expr& e, const std::string& updating);
  bool checkCall(Expr& e, const std::string& updating);
  bool elementwise(Expr& e, const Expr& a, const Expr& b);

  const ast::Recurrence& rec_;
  DiagnosticEngine& diags_;
  RecurrenceInfo info_;
  std::map<std::string, Symbol> symbols_;
  std::set<std::string> dims_;
  std::set<std::string> updatedStates_;
  bool sawChunk_ = false;
  bool hasState_ = false;
  bool inParamDefault_ = false;
  std::string currentParam_;
};

bool RecurrenceChecker::declare(const ast::Ident& id, Symbol symbol) {
  if (id.name == "head")
    return error(id.range, "'head' is the builtin head index and cannot be declared; pick another name");
  if (isBuiltinFunction(id.name))
    return error(id.range, "'" + id.name + "' is a builtin function and cannot be declared; pick another name");
  auto [it, inserted] = symbols_.emplace(id.name, symbol);
  if (!inserted) {
    error(id.range, "'" + id.name + "' is already declared as " + withArticle(it->second.kind) +
                        "; every name in a recurrence is declared once");
    diags_.note(it->second.declRange, "previous declaration is here");
    return false;
  }
  return true;
}

bool RecurrenceChecker::checkShapeDims(const ast::Decl& decl, size_t maxDims, const char* what) {
  for (const ast::Ident& dim : decl.shape) {
    if (!dims_.count(dim.name))
      return error(dim.range, "unknown dim '" + dim.name + "' in the shape of '" + decl.id.name +
                                  "'; declare it with `dims " + dim.name + "`");
  }
  if (decl.shape.size() > maxDims)
    return error(decl.id.range, std::string(what) + " '" + decl.id.name + "' has " +
                                    std::to_string(decl.shape.size()) + " dims; expected at most " +
                                    std::to_string(maxDims) +
                                    (maxDims == 2 ? " (a state is a matrix [rows, cols])"
                                                  : " (per step and per head, values are scalars or vectors)"));
  if (decl.shape.size() == 2 && decl.shape[0].name == decl.shape[1].name)
    return error(decl.id.range, "state '" + decl.id.name + "' has the dim '" + decl.shape[0].name +
                                    "' twice; rows and columns need distinct dims, e.g. [K, V]");
  return true;
}

bool RecurrenceChecker::collectDeclarations() {
  bool ok = true;
  for (const Item& item : rec_.items) {
    if (item.kind != Item::Kind::Dims) continue;
    for (const ast::Ident& dim : item.dims) {
      if (!dims_.insert(dim.name).second) {
        ok = error(dim.range, "dim '" + dim.name + "' is declared twice");
        diags_.note(symbols_[dim.name].declRange, "previous declaration is here");
        continue;
      }
      Symbol s;
      s.kind = RefKind::Dim;
      s.declRange = dim.range;
      ok = declare(dim, s) && ok;
    }
  }
  for (const Item& item : rec_.items) {
    switch (item.kind) {
      case Item::Kind::Inputs:
      case Item::Kind::States:
      case Item::Kind::Outputs:
      case Item::Kind::Param:
        for (const ast::Decl& decl : item.decls) {
          Symbol s;
          s.declRange = decl.id.range;
          s.isGate = decl.isGate;
          s.shapeKnown = decl.hasShape;
          for (const ast::Ident& d : decl.shape) s.shape.push_back(d.name);
          if (decl.isGate && item.kind != Item::Kind::Inputs) {
            ok = error(decl.gateRange, "`: gate` marks a per-step input as a log-space decay; '" +
                                           decl.id.name + "' is not an input");
            continue;
          }
          if (item.kind == Item::Kind::Inputs) {
            s.kind = RefKind::Input;
            s.shapeKnown = true;
            if (!checkShapeDims(decl, 1, "input")) { ok = false; continue; }
          } else if (item.kind == Item::Kind::States) {
            s.kind = RefKind::State;
            if (!checkShapeDims(decl, 2, "state")) { ok = false; continue; }
            if (decl.hasShape && decl.shape.size() != 2) {
              ok = error(decl.id.range, "state '" + decl.id.name + "' has shape " + shapeText(s.shape) +
                                            "; a state is a matrix with two dims, e.g. [K, V]");
              continue;
            }
            if (decl.hasShape) info_.stateShapes[decl.id.name] = s.shape;
          } else if (item.kind == Item::Kind::Outputs) {
            s.kind = RefKind::Output;
            s.defined = false;
            if (!checkShapeDims(decl, 1, "output")) { ok = false; continue; }
          } else {
            s.kind = RefKind::Param;
            s.shapeKnown = true;
            s.defined = false;  // a default may only use params declared before it
            s.isUniform = true;
            if (!checkShapeDims(decl, 1, "param")) { ok = false; continue; }
            if (!s.shape.empty() && item.value) {
              ok = error(item.value->range, "vector param '" + decl.id.name +
                                                "' cannot have a default; it is passed per head as [H, " +
                                                s.shape[0] + "]");
              continue;
            }
          }
          ok = declare(decl.id, s) && ok;
        }
        break;
      case Item::Kind::Chunk:
        ok = checkChunk(item) && ok;
        break;
      default:
        break;
    }
  }
  if (!sawChunk_) info_.chunkSizes = {64};
  return ok;
}

bool RecurrenceChecker::checkChunk(const Item& item) {
  if (sawChunk_) return error(item.range, "`chunk` is given twice; give it once (use tune(...) for several sizes)");
  sawChunk_ = true;
  info_.chunkTuned = item.chunkIsTuned;
  for (size_t i = 0; i < item.chunkSizes.size(); ++i) {
    double c = item.chunkSizes[i];
    bool pow2 = c >= 16 && c <= 256 && std::floor(c) == c && (static_cast<int64_t>(c) & (static_cast<int64_t>(c) - 1)) == 0;
    if (!pow2) {
      std::ostringstream os;
      os << "chunk size " << c << " is not supported; expected a power of two from 16 to 256";
      return error(item.chunkRanges[i], os.str());
    }
    for (int64_t earlier : info_.chunkSizes)
      if (earlier == static_cast<int64_t>(c))
        return error(item.chunkRanges[i], "chunk size " + std::to_string(earlier) + " is listed twice in tune(...)");
    info_.chunkSizes.push_back(static_cast<int64_t>(c));
  }
  return true;
}

bool RecurrenceChecker::checkParamDefault(const Item& item) {
  if (!item.value) return true;
  inParamDefault_ = true;
  currentParam_ = item.decls[0].id.name;
  bool ok = check(*item.value);
  inParamDefault_ = false;
  currentParam_.clear();
  if (!ok) return false;
  if (!item.value->shape.empty())
    return error(item.value->range, "param default has shape " + shapeText(item.value->shape) +
                                        "; a scalar param's default must be a scalar");
  return true;
}

bool RecurrenceChecker::run() {
  bool ok = collectDeclarations();
  if (!ok) return false;
  for (const Item& item : rec_.items) {
    if (item.kind != Item::Kind::Param) continue;
    ok = checkParamDefault(item) && ok;
    auto it = symbols_.find(item.decls[0].id.name);
    if (it != symbols_.end() && it->second.kind == RefKind::Param) it->second.defined = true;
  }
  for (const Item& item : rec_.items)
    if (item.kind == Item::Kind::States) hasState_ = true;
  if (!hasState_) ok = error(rec_.name.range, "recurrence '" + rec_.name.name + "' has no state; declare one with "
                                                  "`state S[K, V]` and update it with `S = ... + outer(u, w)`");
  if (!ok) return false;
  for (const Item& item : rec_.items) {
    if (item.kind == Item::Kind::Const || item.kind == Item::Kind::Assign) {
      if (!checkStatement(item)) return false;  // later statements would cascade
    }
  }
  for (const auto& [name, symbol] : symbols_) {
    if (symbol.kind == RefKind::State && !updatedStates_.count(name))
      ok = error(symbol.declRange, "state '" + name + "' is never updated; add `" + name +
                                       " = ... + outer(u, w)` to the step");
    if (symbol.kind == RefKind::Output && !symbol.defined)
      ok = error(symbol.declRange, "output '" + name + "' is never assigned; add `" + name + " = ...`");
  }
  return ok;
}

bool RecurrenceChecker::checkStatement(const Item& item) {
  const std::string& name = item.target.name;
  auto it = symbols_.find(name);
  if (item.kind == Item::Kind::Const) {
    if (it != symbols_.end()) return declare(item.target, Symbol{});  // reports the duplicate
    if (!check(*item.value)) return false;
    if (!item.value->isUniform)
      return error(item.value->range, "const '" + name + "' depends on per-step values; a const may use "
                                          "numbers, dims, params, other consts and `head` only");
    Symbol s;
    s.kind = RefKind::Const;
    s.isUniform = true;
    s.shape = item.value->shape;
    s.declRange = item.target.range;
    return declare(item.target, s);
  }
  if (it == symbols_.end()) {
    if (!check(*item.value)) return false;
    Symbol s;
    s.kind = RefKind::Local;
    s.isUniform = item.value->isUniform;
    s.reads = item.value->reads;
    s.shape = item.value->shape;
    s.declRange = item.target.range;
    return declare(item.target, s);
  }
  Symbol& symbol = it->second;
  switch (symbol.kind) {
    case RefKind::State:
      return checkUpdate(item, name);
    case RefKind::Output: {
      if (symbol.defined)
        return error(item.target.range, "output '" + name + "' is assigned twice; assign each output once per step");
      if (!check(*item.value)) return false;
      if (symbol.shapeKnown && symbol.shape != item.value->shape)
        return error(item.value->range, "output '" + name + "' is declared " + shapeText(symbol.shape) +
                                            " but assigned a value of shape " + shapeText(item.value->shape));
      symbol.shape = item.value->shape;
      symbol.shapeKnown = true;
      symbol.defined = true;
      symbol.reads = item.value->reads;
      return true;
    }
    case RefKind::Local:
      error(item.target.range, "'" + name + "' is assigned twice; each name is assigned once per step");
      diags_.note(symbol.declRange, "first assigned here");
      return false;
    default:
      return error(item.target.range, std::string("cannot assign to ") + kindName(symbol.kind) + " '" + name +
                                          "'; only states, outputs and new local names can be assigned");
  }
}

// Flattens a chain of `*` into its factors.
void flattenProduct(Expr& e, std::vector<Expr*>& factors) {
  if (e.kind == Expr::Kind::Binary && e.op == ast::BinaryOp::Mul) {
    flattenProduct(*e.operands[0], factors);
    flattenProduct(*e.operands[1], factors);
  } else {
    factors.push_back(&e);
  }
}

bool RecurrenceChecker::checkUpdate(const Item& item, const std::string& stateName) {
  Symbol& state = symbols_[stateName];
  const char* form = "a * S * b + outer(u, w)";
  if (updatedStates_.count(stateName))
    return error(item.target.range, "state '" + stateName + "' is updated twice; a state is updated once per "
                                        "step in the form " + form);
  Expr& rhs = *item.value;
  Expr* decayTerm = nullptr;
  Expr* outerTerm = nullptr;
  if (rhs.kind == Expr::Kind::Binary && rhs.op == ast::BinaryOp::Add) {
    for (int i = 0; i < 2; ++i) {
      Expr* term = rhs.operands[i].get();
      if (term->kind == Expr::Kind::Call && term->text == "outer" && !outerTerm) outerTerm = term;
      else if (!decayTerm) decayTerm = term;
    }
  }
  if (!outerTerm || !decayTerm)
    return error(rhs.range, "state update of '" + stateName + "' must have the form " + form +
                                " (one decayed copy of the state plus one outer() write); found " + exprText(rhs));
  std::vector<Expr*> factors;
  flattenProduct(*decayTerm, factors);
  Expr* stateRef = nullptr;
  std::vector<Expr*> decays;
  for (Expr* f : factors) {
    if (f->kind == Expr::Kind::Name && f->text == stateName) {
      if (stateRef)
        return error(f->range, "'" + stateName + "' appears twice in its own update, which is not linear; "
                                   "expected the form " + form);
      stateRef = f;
    } else {
      decays.push_back(f);
    }
  }
  if (!stateRef)
    return error(decayTerm->range, "the decay term of the update of '" + stateName + "' must be a product of " +
                                       "decay factors and '" + stateName + "' itself (" + form + "); found " +
                                       exprText(*decayTerm));
  stateRef->ref = RefKind::State;

  // The write term first: it fixes the state's shape when the declaration omitted it.
  if (outerTerm->operands.size() != 2)
    return error(outerTerm->range, "outer() takes 2 arguments (u over the rows, w over the columns), found " +
                                       std::to_string(outerTerm->operands.size()));
  Expr& u = *outerTerm->operands[0];
  Expr& w = *outerTerm->operands[1];
  if (!check(u, stateName) || !check(w, stateName)) return false;
  auto readsItself = [&](const Expr& x) {
    if (!x.reads.count(stateName)) return true;
    // Built with += : GCC 12's -Wrestrict misfires on `"'" + std::string&&` here.
    std::string message = "'";
    message += exprText(x);
    message += "' depends on a read of '" + stateName + "' earlier in this step, so the update of '" + stateName +
               "' would not be a linear recurrence; compute it from inputs and other states only";
    return error(x.range, message);
  };
  if (!readsItself(u) || !readsItself(w)) return false;
  if (u.shape.size() != 1 || w.shape.size() != 1)
    return error(outerTerm->range, "outer(u, w) needs two vectors; found shapes " + shapeText(u.shape) + " and " +
                                       shapeText(w.shape));
  Shape written = {u.shape[0], w.shape[0]};
  if (!state.shapeKnown) {
    if (written[0] == written[1])
      return error(outerTerm->range, "outer(u, w) writes " + shapeText(written) +
                                         "; a state needs two distinct dims");
    state.shape = written;
    state.shapeKnown = true;
    info_.stateShapes[stateName] = written;
  } else if (written != state.shape) {
    if (written[0] == state.shape[1] && written[1] == state.shape[0])
      return error(outerTerm->range, "outer(u, w) writes " + shapeText(written) + " but '" + stateName + "' is " +
                                         shapeText(state.shape) + "; swap the arguments: outer(<" +
                                         state.shape[0] + " vector>, <" + state.shape[1] + " vector>)");
    return error(outerTerm->range, "outer(u, w) writes " + shapeText(written) + " but '" + stateName + "' is " +
                                       shapeText(state.shape));
  }
  outerTerm->shape = state.shape;

  StateUpdate update;
  update.u = &u;
  update.w = &w;
  std::vector<std::pair<Expr*, bool>> scalars;  // (factor, written left of the state)
  for (Expr* d : decays) {
    if (!check(*d, stateName) || !readsItself(*d)) return false;
    if (!d->isUniform) {
      bool isExp = d->kind == Expr::Kind::Call && d->text == "exp" && d->operands.size() == 1;
      if (!isExp)
        return error(d->range, "a per-step decay factor must be written exp(g) with g an input declared "
                               "`: gate` (a log-space decay <= 0); found " + exprText(*d));
      const Expr& arg = *d->operands[0];
      bool gateArg = arg.kind == Expr::Kind::Name && arg.ref == RefKind::Input && symbols_[arg.text].isGate;
      std::string gateShape = d->shape.empty() ? "" : "[" + d->shape[0] + "]";
      if (!gateArg)
        return error(arg.range, "the decay exp(" + exprText(arg) + ") needs its argument to be an input "
                                "declared `: gate` (e.g. `in g" + gateShape + " : gate`)");
    }
    if (auto value = literalValue(*d); value && !(*value > 0 && std::isfinite(*value))) {
      std::ostringstream os;
      os << "the decay factor " << exprText(*d) << " of '" << stateName << "' is " << *value
         << "; a decay multiplies the state and must be positive (typically in (0, 1])";
      return error(d->range, os.str());
    }
    if (d->shape.empty()) {
      const SourceLoc& a = d->range.begin;
      const SourceLoc& b = stateRef->range.begin;
      bool left = a.line < b.line || (a.line == b.line && a.col < b.col);
      scalars.emplace_back(d, left);
      continue;
    }
    const Expr** side = d->shape[0] == state.shape[0]   ? &update.rowDecay
                        : d->shape[0] == state.shape[1] ? &update.colDecay
                                                        : nullptr;
    if (!side)
      return error(d->range, "decay over dim " + d->shape[0] + " does not match a dim of '" + stateName + "' " +
                                 shapeText(state.shape));
    if (*side)
      return error(d->range, "a second decay factor on the " + std::string(side == &update.rowDecay ? "rows" : "columns") +
                                 " (" + d->shape[0] + ") of '" + stateName + "'; combine them into one gate");
    *side = d;
  }
  // A scalar factor written left of the state scales the rows (a * S), right of it the columns
  // (S * b); either side takes it when the other is taken by a vector gate.
  for (auto [s, left] : scalars) {
    const Expr** preferred = left ? &update.rowDecay : &update.colDecay;
    const Expr** other = left ? &update.colDecay : &update.rowDecay;
    if (!*preferred) *preferred = s;
    else if (!*other) *other = s;
    else
      return error(s->range, "too many decay factors for '" + stateName + "': at most one on the rows and one "
                                 "on the columns");
  }
  info_.updates[&item] = update;
  updatedStates_.insert(stateName);
  return true;
}

bool RecurrenceChecker::check(Expr& e, const std::string& updating) {
  if (!checkNode(e, updating)) return false;
  for (const auto& operand : e.operands) e.reads.insert(operand->reads.begin(), operand->reads.end());
  return true;
}

bool RecurrenceChecker::checkNode(Expr& e, const std::string& updating) {
  switch (e.kind) {
    case Expr::Kind::Number:
      e.shape.clear();
      e.isUniform = true;
      return true;
    case Expr::Kind::Name:
      if (!checkName(e)) return false;
      if (e.ref == RefKind::State)
        return error(e.range, "state '" + e.text + "' can only be read by contraction (x @ " + e.text +
                                  ") or decayed in its own update");
      return true;
    case Expr::Kind::Neg:
      if (!check(*e.operands[0], updating)) return false;
      e.shape = e.operands[0]->shape;
      e.isUniform = e.operands[0]->isUniform;
      return true;
    case Expr::Kind::Binary:
      if (e.op == ast::BinaryOp::Contract) return checkContract(e, updating);
      if (!check(*e.operands[0], updating) || !check(*e.operands[1], updating)) return false;
      return elementwise(e, *e.operands[0], *e.operands[1]);
    case Expr::Kind::Call:
      return checkCall(e, updating);
  }
  return false;
}

bool RecurrenceChecker::checkName(Expr& e) {
  if (e.text == "head") {
    if (inParamDefault_) return error(e.range, "a param default cannot use `head`; use a const for per-head values");
    e.ref = RefKind::Head;
    e.isUniform = true;
    e.shape.clear();
    return true;
  }
  auto it = symbols_.find(e.text);
  if (it == symbols_.end()) {
    if (isBuiltinFunction(e.text))
      return error(e.range, "'" + e.text + "' is a function; call it as " + e.text + "(...)");
    return error(e.range, "unknown name '" + e.text + "'; declare it with `in`, `state`, `param` or `const`, "
                                                      "or assign it before this use");
  }
  const Symbol& s = it->second;
  if (inParamDefault_ && s.kind != RefKind::Dim && s.kind != RefKind::Param)
    return error(e.range, "a param default may use numbers, dims and earlier params only; '" + e.text + "' is " +
                              withArticle(s.kind));
  if (!s.defined && s.kind == RefKind::Param && e.text == currentParam_)
    return error(e.range, "param '" + e.text + "' is used in its own default; a default may use params declared "
                                              "above it only");
  if (!s.defined && s.kind == RefKind::Param)
    return error(e.range, "param '" + e.text + "' is used before its declaration; a param default may use params "
                                              "declared above it only");
  if (!s.defined)
    return error(e.range, "'" + e.text + "' is used before it is assigned; statements run in order, so move the "
                                          "assignment above this use");
  e.ref = s.kind;
  e.shape = s.shape;
  e.isUniform = s.kind == RefKind::Dim || s.isUniform;
  e.reads = s.reads;
  if (s.kind == RefKind::Dim) e.shape.clear();
  return true;
}

bool RecurrenceChecker::elementwise(Expr& e, const Expr& a, const Expr& b) {
  e.isUniform = a.isUniform && b.isUniform;
  if (a.shape.empty()) e.shape = b.shape;
  else if (b.shape.empty() || a.shape == b.shape) e.shape = a.shape;
  else
    return error(e.range, "cannot combine " + shapeText(a.shape) + " and " + shapeText(b.shape) + " with `" +
                              ast::spelling(e.op) + "`: dims broadcast by name and these differ; use outer(a, b) "
                              "inside a state update or dot(a, b) for a scalar");
  return true;
}

bool RecurrenceChecker::checkContract(Expr& e, const std::string& updating) {
  Expr* lhs = e.operands[0].get();
  Expr* rhs = e.operands[1].get();
  auto isState = [&](Expr* x) {
    if (x->kind != Expr::Kind::Name) return false;
    auto it = symbols_.find(x->text);
    return it != symbols_.end() && it->second.kind == RefKind::State;
  };
  Expr* stateExpr = isState(rhs) ? rhs : isState(lhs) ? lhs : nullptr;
  if (!stateExpr || (isState(lhs) && isState(rhs)))
    return error(e.range, "`@` contracts a vector with a state (x @ S); found " + exprText(e) +
                              " (use dot(a, b) for two vectors)");
  Expr* vec = stateExpr == rhs ? lhs : rhs;
  const std::string& stateName = stateExpr->text;
  if (stateName == updating)
    return error(e.range, "the update of '" + stateName + "' reads '" + stateName + "' itself, which is not a linear "
                              "recurrence; only other states may be read here");
  Symbol& state = symbols_[stateName];
  if (!state.shapeKnown)
    return error(stateExpr->range, "state '" + stateName + "' has no declared shape and is read before its update; "
                                       "declare it with its dims, e.g. `state " + stateName + "[K, V]`");
  stateExpr->ref = RefKind::State;
  stateExpr->shape = state.shape;
  if (!check(*vec, updating)) return false;
  if (vec->shape.size() != 1)
    return error(vec->range, "`@` needs a vector over one dim of '" + stateName + "' " + shapeText(state.shape) +
                                 "; found a value of shape " + shapeText(vec->shape));
  const std::string& d = vec->shape[0];
  if (d != state.shape[0] && d != state.shape[1])
    return error(e.range, "no shared dim: " + shapeText(vec->shape) + " @ '" + stateName + "' " +
                              shapeText(state.shape) + "; the vector must run over " + state.shape[0] + " or " +
                              state.shape[1]);
  e.shape = {d == state.shape[0] ? state.shape[1] : state.shape[0]};
  e.isUniform = false;
  e.reads.insert(stateName);
  return true;
}

bool RecurrenceChecker::checkCall(Expr& e, const std::string& updating) {
  const std::string& f = e.text;
  auto arity = [&](size_t n) {
    if (e.operands.size() == n) return true;
    return error(e.range, f + "() takes " + std::to_string(n) + " argument" + (n == 1 ? "" : "s") + ", found " +
                              std::to_string(e.operands.size()));
  };
  if (!isBuiltinFunction(f))
    return error(e.calleeRange, "unknown function '" + f + "'; the builtins are exp, log, softmax, sum, dot "
                                                          "and outer");
  if (f == "outer")
    return error(e.range, "outer() may only appear as the write term of a state update (S = a * S + outer(u, w))");
  size_t n = f == "dot" ? 2 : 1;
  if (!arity(n)) return false;
  for (auto& arg : e.operands)
    if (!check(*arg, updating)) return false;
  const Expr& a = *e.operands[0];
  e.isUniform = a.isUniform;
  if (f == "exp" || f == "log") {
    e.shape = a.shape;
    return true;
  }
  if (a.shape.size() != 1)
    return error(a.range, f + "() reduces over the one dim of a vector; found a value of shape " + shapeText(a.shape));
  if (f == "softmax") {
    e.shape = a.shape;
    return true;
  }
  if (f == "sum") {
    e.shape.clear();
    return true;
  }
  const Expr& b = *e.operands[1];  // dot
  if (b.shape != a.shape)
    return error(e.range, "dot(a, b) needs two vectors over the same dim; found " + shapeText(a.shape) + " and " +
                              shapeText(b.shape));
  e.shape.clear();
  e.isUniform = a.isUniform && b.isUniform;
  return true;
}

}  // namespace

bool isBuiltinFunction(const std::string& name) {
  for (const char* f : kBuiltinFunctions)
    if (name == f) return true;
  return false;
}

std::vector<RecurrenceInfo> analyze(const ast::File& file, DiagnosticEngine& diags) {
  std::vector<RecurrenceInfo> infos;
  std::map<std::string, SourceRange> names;
  bool ok = true;
  for (const ast::Recurrence& rec : file.recurrences) {
    auto [it, inserted] = names.emplace(rec.name.name, rec.name.range);
    if (!inserted) {
      diags.error(rec.name.range, "recurrence '" + rec.name.name + "' is defined twice in this file");
      diags.note(it->second, "previous definition is here");
      ok = false;
      continue;
    }
    RecurrenceChecker checker(rec, diags);
    if (checker.run()) infos.push_back(checker.take());
    else ok = false;
  }
  if (!ok) infos.clear();
  return infos;
}

}  // namespace lina::sema
