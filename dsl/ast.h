// The abstract syntax tree of a .lina file. Every node carries the source range it came from;
// semantic analysis (sema.h) fills the `shape`/`isUniform`/`ref` annotations on expressions.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <ostream>
#include <string>
#include <vector>

#include "dsl/source_manager.h"

namespace lina::ast {

enum class BinaryOp { Add, Sub, Mul, Div, Pow, Contract };
const char* spelling(BinaryOp op);

// What a name refers to after name resolution.
enum class RefKind { Unresolved, Dim, Head, Input, State, Output, Param, Const, Local };

struct Expr {
  enum class Kind { Number, Name, Neg, Binary, Call };
  Kind kind;
  SourceRange range;
  double number = 0;                  // Number
  std::string text;                   // Number spelling, Name, Call callee
  SourceRange calleeRange;            // Call: the callee name only
  BinaryOp op = BinaryOp::Add;        // Binary
  std::vector<std::unique_ptr<Expr>> operands;  // Neg: 1, Binary: 2, Call: the arguments
  int depth = 1;                      // nesting depth (a leaf is 1); the parser bounds it

  // Sema annotations.
  std::vector<std::string> shape;     // dim names; states have 2, values at most 1
  bool isUniform = false;             // the same at every step (may still vary per head)
  RefKind ref = RefKind::Unresolved;  // Name only
  std::set<std::string> reads;        // states whose reads the value depends on
};

using ExprPtr = std::unique_ptr<Expr>;

struct Ident {
  std::string name;
  SourceRange range;
};

// One declared name with an optional shape, e.g. `q[K]` or `g[K] : gate`.
struct Decl {
  Ident id;
  std::vector<Ident> shape;
  bool hasShape = false;  // `S` (shape inferred) vs `S[K, V]`
  bool isGate = false;
  SourceRange gateRange;
};

struct Item {
  enum class Kind { Dims, Inputs, States, Outputs, Param, Const, Assign, Chunk };
  Kind kind;
  SourceRange range;
  std::vector<Ident> dims;        // Dims
  std::vector<Decl> decls;        // Inputs, States, Outputs; Param (exactly one)
  Ident target;                   // Const, Assign
  ExprPtr value;                  // Param default (may be null), Const, Assign
  std::vector<double> chunkSizes;   // Chunk (checked to be integers by sema)
  bool chunkIsTuned = false;        // `chunk tune(...)` vs `chunk 64`
  std::vector<SourceRange> chunkRanges;
};

struct Recurrence {
  Ident name;
  SourceRange range;
  std::vector<Item> items;
};

struct File {
  std::vector<Recurrence> recurrences;
};

void print(std::ostream& os, const File& file);
void print(std::ostream& os, const Expr& expr);  // one line, fully parenthesized

}  // namespace lina::ast
