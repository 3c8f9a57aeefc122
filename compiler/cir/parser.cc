#include "compiler/cir/parser.h"

#include <cstdlib>
#include <map>

#include "compiler/ir_lexer.h"

namespace lina::cir {

namespace {

using ir::Lexer;
using ir::Token;

class Parser {
 public:
  Parser(std::string_view text, uint32_t file, DiagnosticEngine& diags) : lexer_(text, file), diags_(diags) {
    tok_ = lexer_.next();
  }

  std::optional<Kernel> parseKernel() {
    Kernel k;
    if (!word("cir.kernel") || !symbol(k.name)) return std::nullopt;
    // Attributes: key=value pairs until '{'.
    while (!punct('{')) {
      std::string key;
      if (!name(key) || !expect('=')) return std::nullopt;
      if (key == "program") {
        if (!symbol(k.program)) return std::nullopt;
      } else if (key == "strategy") {
        std::string s;
        if (!name(s)) return std::nullopt;
        if (s != "fused" && s != "recurrent" && s != "split") return fail("expected strategy fused, recurrent or split");
        k.strategy = s == "fused" ? Strategy::Fused : s == "split" ? Strategy::Split : Strategy::Recurrent;
      } else if (key == "phase") {
        std::string s;
        if (!name(s)) return std::nullopt;
        if (s != "states" && s != "outputs") return fail("expected phase states or outputs");
        k.phase = s == "states" ? Phase::States : Phase::Outputs;
      } else if (key == "chunk" || key == "warps") {
        double v;
        if (!number(v)) return std::nullopt;
        // Checked before the cast: a double outside int's range does not convert (found by fuzz_ir).
        const double most = key == "chunk" ? 4096 : 32;
        if (!(v >= 1 && v <= most) || v != static_cast<double>(static_cast<int>(v)))
          return fail("expected " + key + " a whole number from 1 to " + std::to_string(static_cast<int>(most)));
        (key == "chunk" ? k.chunk : k.warps) = static_cast<int>(v);
      } else if (key == "tile") {
        if (!name(k.tiledDim)) return std::nullopt;
        if (k.tiledDim == "none") k.tiledDim.clear();
      } else {
        return fail("unknown kernel attribute '" + key + "'");
      }
    }
    bump();
    while (!punct('}')) {
      if (isWord("dims")) {
        bump();
        do {
          std::string d;
          if (!name(d)) return std::nullopt;
          k.dims.push_back(d);
        } while (punct(',') && (bump(), true));
      } else if (isWord("in") || isWord("state") || isWord("out") || isWord("param")) {
        std::string kw = tok_.text;
        bump();
        rir::Decl d;
        d.loc = tok_.range;
        if (!name(d.name) || !expect(':') || !shape(d.shape, false)) return std::nullopt;
        if (isWord("gate")) {
          d.isGate = true;
          bump();
        }
        (kw == "in" ? k.inputs : kw == "state" ? k.states : kw == "out" ? k.outputs : k.params).push_back(d);
      } else {
        Op op;
        if (!parseOp(op)) return std::nullopt;
        k.ops.push_back(std::move(op));
      }
    }
    bump();
    if (tok_.kind != Token::End) return fail("expected the end of the file after the kernel");
    return k;
  }

 private:
  std::nullopt_t fail(const std::string& message) {
    if (!failed_)
      diags_.error(tok_.range, message + (tok_.kind == Token::End ? " (found end of file)" : " (found '" + tok_.text + "')"));
    failed_ = true;
    return std::nullopt;
  }
  void bump() { tok_ = lexer_.next(); }
  bool punct(char c) const { return tok_.kind == Token::Punct && tok_.text[0] == c; }
  bool isWord(const char* w) const { return tok_.kind == Token::Word && tok_.text == w; }
  bool expect(char c) {
    if (!punct(c)) return fail(std::string("expected '") + c + "'"), false;
    bump();
    return true;
  }
  bool word(const char* w) {
    if (!isWord(w)) return fail(std::string("expected `") + w + "`"), false;
    bump();
    return true;
  }
  bool name(std::string& out) {
    if (tok_.kind != Token::Word) return fail("expected a name"), false;
    out = tok_.text;
    bump();
    return true;
  }
  bool symbol(std::string& out) {
    if (tok_.kind != Token::Symbol) return fail("expected a @name"), false;
    out = tok_.text;
    bump();
    return true;
  }
  bool value(std::string& out) {
    if (tok_.kind != Token::Value) return fail("expected a %value"), false;
    out = tok_.text;
    bump();
    return true;
  }
  bool number(double& out) {
    char* end = nullptr;
    if (tok_.kind == Token::Number) out = std::strtod(tok_.text.c_str(), &end);
    if (tok_.kind != Token::Number || end != tok_.text.c_str() + tok_.text.size()) return fail("expected a number"), false;
    bump();
    return true;
  }
  // `[K]`, `[]`, and for per-step results `[C]`, `[C, K]` (the chunk axis is dropped).
  bool shape(rir::Shape& out, bool perStep) {
    if (!expect('[')) return false;
    bool first = true;
    while (!punct(']')) {
      std::string d;
      if (!name(d)) return false;
      if (!(perStep && first && d == "C")) out.push_back(d);
      else sawChunkAxis_ = true;
      first = false;
      if (!punct(']') && !expect(',')) return false;
    }
    bump();
    return true;
  }
  bool gate(GateRef& g) {
    if (isWord("none")) {
      bump();
      return true;
    }
    if (isWord("scalar")) g.kind = GateKind::Scalar;
    else if (isWord("vector")) g.kind = GateKind::Vector;
    else return fail("expected a gate: none, scalar(%G...) or vector(%G...)"), false;
    bump();
    if (!expect('(') || !value(g.inclusive)) return false;
    if (punct(',')) {
      bump();
      if (!value(g.exclusive)) return false;
    }
    return expect(')');
  }
  bool operands(Op& op) {
    while (tok_.kind == Token::Value) {
      op.operands.push_back(tok_.text);
      bump();
      if (!punct(',')) break;
      bump();
    }
    if (isWord("over")) {
      bump();
      return name(op.dim);
    }
    return true;
  }

  bool parseOp(Op& op) {
    op.loc = tok_.range;
    if (isWord("chunk.carry")) {
      bump();
      op.kind = OpKind::Carry;
      return name(op.symbol) && word("rows") && gate(op.rows) && word("cols") && gate(op.cols) && word("outer") &&
             expect('(') && value(op.u) && expect(',') && value(op.w) && expect(')');
    }
    if (isWord("chunk.store")) {
      bump();
      op.kind = OpKind::Store;
      std::string v;
      if (!name(op.symbol) || !expect('=') || !value(v)) return false;
      op.operands = {v};
      return true;
    }
    if (!value(op.result) || !expect('=')) return false;
    if (tok_.kind != Token::Word) return fail("expected an op"), false;
    std::string opText = tok_.text;
    bump();
    static const std::map<std::string, rir::Op> rops = {
        {"const", rir::Op::Const}, {"dim", rir::Op::Dim}, {"head", rir::Op::Head}, {"param", rir::Op::Param},
        {"neg", rir::Op::Neg}, {"add", rir::Op::Add}, {"sub", rir::Op::Sub}, {"mul", rir::Op::Mul},
        {"div", rir::Op::Div}, {"pow", rir::Op::Pow}, {"exp", rir::Op::Exp}, {"log", rir::Op::Log},
        {"sum", rir::Op::Sum}, {"softmax", rir::Op::Softmax}, {"dot", rir::Op::Dot}};
    auto suffix = [&](const std::string& prefix) { return opText.substr(prefix.size()); };
    if (opText.rfind("uniform.", 0) == 0) {
      auto it = rops.find(suffix("uniform."));
      if (it == rops.end()) return fail("unknown uniform op '" + opText + "'"), false;
      op.kind = OpKind::Uniform;
      op.uniform = true;
      op.rop = it->second;
      if (op.rop == rir::Op::Const && !number(op.number)) return false;
      if ((op.rop == rir::Op::Dim || op.rop == rir::Op::Param) && !name(op.symbol)) return false;
      if (!operands(op)) return false;
    } else if (opText == "chunk.running_sum") {
      op.kind = OpKind::RunningSum;
      if (!operands(op)) return false;  // the summand, then an optional initial value
    } else if (opText == "chunk.load") {
      op.kind = OpKind::Load;
      if (!name(op.symbol)) return false;
    } else if (opText == "chunk.gate_cumsum") {
      op.kind = OpKind::GateCumsum;
      std::string g;
      if (!value(g)) return false;
      op.operands = {g};
      if (isWord("per_head")) {
        op.uniform = true;
        bump();
      }
      if (!word("log2")) return false;
      if (isWord("exclusive")) {
        bump();
        if (!expect('(') || !value(op.exclusive) || !expect(')')) return false;
      }
    } else if (opText == "chunk.attend.after" || opText == "chunk.attend.before") {
      op.kind = OpKind::Attend;
      op.afterUpdate = opText == "chunk.attend.after";
      std::string x;
      if (!name(op.symbol) || !expect(',') || !value(x) || !word("over") || !name(op.dim) || !word("rows") ||
          !gate(op.rows) || !word("cols") || !gate(op.cols) || !word("outer") || !expect('(') || !value(op.u) ||
          !expect(',') || !value(op.w) || !expect(')'))
        return false;
      op.operands = {x};
    } else if (opText.rfind("chunk.", 0) == 0 && rops.count(suffix("chunk."))) {
      op.rop = rops.at(suffix("chunk."));
      bool reduce = op.rop == rir::Op::Sum || op.rop == rir::Op::Softmax || op.rop == rir::Op::Dot;
      op.kind = reduce ? OpKind::Reduce : OpKind::Elementwise;
      if (!operands(op)) return false;
    } else {
      return fail("unknown op '" + opText + "'"), false;
    }
    if (!expect(':')) return false;
    sawChunkAxis_ = false;
    if (!shape(op.shape, !op.uniform || op.kind == OpKind::GateCumsum)) return false;
    if (op.kind != OpKind::Uniform && !sawChunkAxis_) return fail("a per-step result has the chunk axis first: [C, ...]"), false;
    return true;
  }

  Lexer lexer_;
  DiagnosticEngine& diags_;
  Token tok_;
  bool failed_ = false;
  bool sawChunkAxis_ = false;
};

}  // namespace

std::optional<Kernel> parse(const SourceManager& sources, uint32_t file, DiagnosticEngine& diags) {
  return Parser(sources.text(file), file, diags).parseKernel();
}

}  // namespace lina::cir
