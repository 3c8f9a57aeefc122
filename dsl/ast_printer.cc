// Prints the AST as an indented tree (`linac --emit=ast`), with the source position of each node.
#include <iomanip>
#include <sstream>

#include "dsl/ast.h"

namespace lina::ast {

const char* spelling(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add: return "+";
    case BinaryOp::Sub: return "-";
    case BinaryOp::Mul: return "*";
    case BinaryOp::Div: return "/";
    case BinaryOp::Pow: return "**";
    case BinaryOp::Contract: return "@";
  }
  return "?";
}

void print(std::ostream& os, const Expr& expr) {
  switch (expr.kind) {
    case Expr::Kind::Number: os << expr.text; return;
    case Expr::Kind::Name: os << expr.text; return;
    case Expr::Kind::Neg:
      os << "(-";
      print(os, *expr.operands[0]);
      os << ')';
      return;
    case Expr::Kind::Binary:
      os << '(';
      print(os, *expr.operands[0]);
      os << ' ' << spelling(expr.op) << ' ';
      print(os, *expr.operands[1]);
      os << ')';
      return;
    case Expr::Kind::Call:
      os << expr.text << '(';
      for (size_t i = 0; i < expr.operands.size(); ++i) {
        if (i) os << ", ";
        print(os, *expr.operands[i]);
      }
      os << ')';
      return;
  }
}

namespace {

void printDecl(std::ostream& os, const Decl& decl) {
  os << decl.id.name;
  if (decl.hasShape) {
    os << '[';
    for (size_t i = 0; i < decl.shape.size(); ++i) os << (i ? ", " : "") << decl.shape[i].name;
    os << ']';
  }
  if (decl.isGate) os << " : gate";
}

const char* itemName(Item::Kind kind) {
  switch (kind) {
    case Item::Kind::Dims: return "Dims";
    case Item::Kind::Inputs: return "Inputs";
    case Item::Kind::States: return "States";
    case Item::Kind::Outputs: return "Outputs";
    case Item::Kind::Param: return "Param";
    case Item::Kind::Const: return "Const";
    case Item::Kind::Assign: return "Assign";
    case Item::Kind::Chunk: return "Chunk";
  }
  return "?";
}

}  // namespace

void print(std::ostream& os, const File& file) {
  for (const Recurrence& rec : file.recurrences) {
    os << "Recurrence " << rec.name.name << " <" << rec.range << ">\n";
    for (const Item& item : rec.items) {
      os << "  " << itemName(item.kind) << " <" << item.range << "> ";
      switch (item.kind) {
        case Item::Kind::Dims:
          for (size_t i = 0; i < item.dims.size(); ++i) os << (i ? ", " : "") << item.dims[i].name;
          break;
        case Item::Kind::Inputs:
        case Item::Kind::States:
        case Item::Kind::Outputs:
          for (size_t i = 0; i < item.decls.size(); ++i) {
            if (i) os << ", ";
            printDecl(os, item.decls[i]);
          }
          break;
        case Item::Kind::Param:
          printDecl(os, item.decls[0]);
          if (item.value) {
            os << " = ";
            print(os, *item.value);
          }
          break;
        case Item::Kind::Const:
        case Item::Kind::Assign:
          os << item.target.name << " = ";
          print(os, *item.value);
          break;
        case Item::Kind::Chunk:
          os << (item.chunkIsTuned ? "tune(" : "");
          for (size_t i = 0; i < item.chunkSizes.size(); ++i) os << (i ? ", " : "") << item.chunkSizes[i];
          os << (item.chunkIsTuned ? ")" : "");
          break;
      }
      os << '\n';
    }
  }
}

}  // namespace lina::ast
