#include "compiler/rir/parser.h"

#include <cstdlib>
#include <map>

#include "compiler/ir_lexer.h"

namespace lina::rir {

namespace {

using ir::Lexer;
using ir::Token;

class Parser {
 public:
  Parser(std::string_view text, uint32_t file, DiagnosticEngine& diags) : lexer_(text, file), diags_(diags) {
    tok_ = lexer_.next();
  }

  std::optional<Module> parseModule() {
    Module m;
    while (tok_.kind != Token::End) {
      Recurrence rec;
      if (!parseRecurrence(rec)) return std::nullopt;
      m.recurrences.push_back(std::move(rec));
    }
    if (m.recurrences.empty()) {
      fail("expected `recurrence @name {`; the file holds no recurrence");
      return std::nullopt;
    }
    return m;
  }

 private:
  bool fail(const std::string& message) {
    if (!failed_) diags_.error(tok_.range, message + (tok_.kind == Token::End ? " (found end of file)" :
                                                      " (found '" + spelled(tok_) + "')"));
    failed_ = true;
    return false;
  }
  static std::string spelled(const Token& t) {
    switch (t.kind) {
      case Token::Value: return "%" + t.text;
      case Token::Symbol: return "@" + t.text;
      default: return t.text;
    }
  }
  void bump() { tok_ = lexer_.next(); }
  bool isPunct(char c) const { return tok_.kind == Token::Punct && tok_.text[0] == c; }
  bool isWord(const char* w) const { return tok_.kind == Token::Word && tok_.text == w; }
  bool expectPunct(char c) {
    if (!isPunct(c)) return fail(std::string("expected '") + c + "'");
    bump();
    return true;
  }
  bool expectWord(const char* w) {
    if (!isWord(w)) return fail(std::string("expected `") + w + "`");
    bump();
    return true;
  }
  bool name(std::string& out) {
    if (tok_.kind != Token::Word) return fail("expected a name");
    out = tok_.text;
    bump();
    return true;
  }
  bool value(std::string& out) {
    if (tok_.kind != Token::Value || tok_.text.empty()) return fail("expected a value such as %0 or %q");
    out = tok_.text;
    bump();
    return true;
  }
  bool number(double& out) {
    std::string text = tok_.text;
    if (tok_.kind == Token::Word && (text == "inf" || text == "nan")) {
      out = std::strtod(text.c_str(), nullptr);
      bump();
      return true;
    }
    char* end = nullptr;
    if (tok_.kind == Token::Number) out = std::strtod(text.c_str(), &end);
    if (tok_.kind != Token::Number || end != text.c_str() + text.size()) return fail("expected a number");
    bump();
    return true;
  }
  bool shape(Shape& out, bool& known) {
    known = true;
    if (isPunct('?')) {
      known = false;
      bump();
      return true;
    }
    if (!expectPunct('[')) return false;
    while (!isPunct(']')) {
      std::string d;
      if (!name(d)) return false;
      out.push_back(d);
      if (!isPunct(']') && !expectPunct(',')) return false;
    }
    bump();
    return true;
  }
  bool gate(Gate& g) {
    if (isWord("none")) {
      bump();
      return true;
    }
    if (isWord("linear")) g.space = GateSpace::Linear;
    else if (isWord("log")) g.space = GateSpace::Log;
    else return fail("expected a gate: none, linear(%x) or log(%x)");
    bump();
    return expectPunct('(') && value(g.value) && expectPunct(')');
  }

  bool parseRecurrence(Recurrence& rec) {
    rec.loc = tok_.range;
    if (!expectWord("recurrence")) return false;
    if (tok_.kind != Token::Symbol) return fail("expected the recurrence name, e.g. @gla");
    rec.name = tok_.text;
    bump();
    if (!expectPunct('{')) return false;
    while (!isWord("step")) {
      if (isWord("dims")) {
        bump();
        do {
          std::string d;
          if (!name(d)) return false;
          rec.dims.push_back(d);
        } while (isPunct(',') && (bump(), true));
      } else if (isWord("in") || isWord("state") || isWord("out") || isWord("param")) {
        std::string kw = tok_.text;
        bump();
        Decl d;
        d.loc = tok_.range;
        if (!name(d.name) || !expectPunct(':') || !shape(d.shape, d.shapeKnown)) return false;
        if (isWord("gate")) {
          d.isGate = true;
          bump();
        }
        auto& list = kw == "in" ? rec.inputs : kw == "state" ? rec.states : kw == "out" ? rec.outputs : rec.params;
        list.push_back(std::move(d));
      } else if (isWord("chunk")) {
        bump();
        rec.chunkSizes.clear();
        rec.chunkTuned = isWord("tune");
        if (rec.chunkTuned) {
          bump();
          if (!expectPunct('(')) return false;
        }
        do {
          double c;
          Token at = tok_;
          if (!number(c)) return false;
          // The range first: a double beyond int64's does not convert (found by fuzz_ir).
          if (!(c >= 1 && c <= 4096) || c != static_cast<double>(static_cast<int64_t>(c))) {
            tok_ = at;  // report at the number, not at what follows it
            return fail("a chunk size must be a whole number from 1 to 4096");
          }
          rec.chunkSizes.push_back(static_cast<int64_t>(c));
        } while (isPunct(',') && (bump(), true));
        if (rec.chunkTuned && !expectPunct(')')) return false;
      } else {
        return fail("expected a declaration (dims, in, state, out, param, chunk) or `step {`");
      }
    }
    bump();
    if (!expectPunct('{')) return false;
    while (!isPunct('}')) {
      Inst inst;
      if (!parseInst(inst)) return false;
      rec.body.push_back(std::move(inst));
    }
    bump();
    return expectPunct('}');
  }

  bool parseInst(Inst& inst) {
    inst.loc = tok_.range;
    if (isWord("update")) {
      inst.op = Op::Update;
      bump();
      std::string u, w;
      if (!name(inst.symbol) || !expectWord("rows") || !gate(inst.rows) || !expectWord("cols") ||
          !gate(inst.cols) || !expectWord("outer") || !expectPunct('(') || !value(u) || !expectPunct(',') ||
          !value(w) || !expectPunct(')'))
        return false;
      inst.operands = {u, w};
      return true;
    }
    if (isWord("output")) {
      inst.op = Op::Output;
      bump();
      std::string v;
      if (!name(inst.symbol) || !expectPunct('=') || !value(v)) return false;
      inst.operands = {v};
      return true;
    }
    if (!value(inst.result) || !expectPunct('=')) return false;
    if (tok_.kind != Token::Word) return fail("expected an op name");
    static const std::map<std::string, Op> ops = {
        {"const", Op::Const}, {"dim", Op::Dim}, {"head", Op::Head}, {"param", Op::Param},
        {"input", Op::Input}, {"neg", Op::Neg}, {"add", Op::Add}, {"sub", Op::Sub},
        {"mul", Op::Mul}, {"div", Op::Div}, {"pow", Op::Pow}, {"exp", Op::Exp},
        {"log", Op::Log}, {"sum", Op::Sum}, {"softmax", Op::Softmax}, {"dot", Op::Dot}, {"running_sum", Op::RunningSum},
        {"read.before", Op::Read}, {"read.after", Op::Read}};
    auto it = ops.find(tok_.text);
    if (it == ops.end()) return fail("unknown op");
    inst.op = it->second;
    inst.afterUpdate = tok_.text == "read.after";
    bump();
    switch (inst.op) {
      case Op::Const:
        if (!number(inst.number)) return false;
        break;
      case Op::Dim:
      case Op::Input:
        if (!name(inst.symbol)) return false;
        break;
      case Op::Head:
        break;
      case Op::Param:
        if (!name(inst.symbol)) return false;
        if (isWord("default")) {
          bump();
          std::string d;
          if (!value(d)) return false;
          inst.operands.push_back(d);
        }
        break;
      case Op::Read: {
        std::string x;
        if (!name(inst.symbol) || !expectPunct(',') || !value(x) || !expectWord("over") || !name(inst.dim))
          return false;
        inst.operands.push_back(x);
        break;
      }
      default: {
        do {
          std::string v;
          if (!value(v)) return false;
          inst.operands.push_back(v);
        } while (isPunct(',') && (bump(), true));
        if (inst.op == Op::Sum || inst.op == Op::Softmax || inst.op == Op::Dot) {
          if (!expectWord("over") || !name(inst.dim)) return false;
        }
      }
    }
    bool known = true;
    if (!expectPunct(':')) return false;
    if (isPunct('?')) return fail("an SSA value needs a known shape such as [] or [K]");
    return shape(inst.shape, known);
  }

  Lexer lexer_;
  DiagnosticEngine& diags_;
  Token tok_;
  bool failed_ = false;
};

}  // namespace

std::optional<Module> parse(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags) {
  Parser parser(sources.text(file), file, diags);
  return parser.parseModule();
}

}  // namespace lina::rir
