// RIR, the recurrence IR: the step function of one head at one time step, as a straight-line
// SSA list over scalars and vectors, plus the state updates and the reads of states.
//
// Values are named (`%q`, `%3`); operands refer to earlier results by name. Only states are
// matrices; every SSA value is a scalar (shape []) or a vector over one named dim.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dsl/source_manager.h"

namespace lina::rir {

using Shape = std::vector<std::string>;

enum class Op {
  Const,    // number
  Dim,      // the run-time size of `symbol` (a dim)
  Head,     // the head index
  Param,    // the value of param `symbol`; operand 0 (optional) is the default
  Input,    // the per-step value of input `symbol`
  Neg, Add, Sub, Mul, Div, Pow, Exp, Log,  // elementwise, broadcasting a scalar over a vector
  Sum,      // sum of a vector over `dim`
  Softmax,  // softmax of a vector over `dim`
  Dot,      // sum(a * b) over `dim`
  Read,     // contraction of operand 0 (a vector over `dim`) with state `symbol`
  RunningSum,  // operand 0 summed over the steps of the sequence so far (inclusive)
  Update,   // state `symbol` = rows (.) S (.) cols + outer(operand 0, operand 1)
  Output,   // output `symbol` = operand 0
};

const char* opName(Op op);
// The value of an elementwise op on scalars (b unused for unary ops): the one definition that
// constant folding and both interpreters use.
double evaluateElementwise(Op op, double a, double b);
bool isElementwise(Op op);
bool hasResult(Op op);

// A decay applied to the rows or columns of a state. In Linear space the operand multiplies the
// state; in Log space it is a log-decay (the multiplier is exp(operand)). canonicalize-gates turns
// every Linear gate into a Log gate.
enum class GateSpace { Linear, Log };
struct Gate {
  std::string value;  // empty: no gate
  GateSpace space = GateSpace::Linear;
  bool present() const { return !value.empty(); }
};

struct Inst {
  Op op = Op::Const;
  std::string result;                 // without '%'; empty when the op has no result
  std::vector<std::string> operands;  // names of earlier results
  std::string symbol;                 // Dim, Param, Input, Read, Update, Output
  std::string dim;                    // Sum, Softmax, Dot, Read
  double number = 0;                  // Const
  bool afterUpdate = false;           // Read: sees this step's update (statement order)
  Gate rows, cols;                    // Update
  Shape shape;                        // of the result
  SourceRange loc;                    // where it came from; not printed, not compared
};

struct Decl {
  std::string name;
  Shape shape;
  bool shapeKnown = true;  // states may start unknown until infer-state-shapes
  bool isGate = false;     // inputs: a log-space decay (<= 0)
  SourceRange loc;
};

struct Recurrence {
  std::string name;
  std::vector<std::string> dims;
  std::vector<Decl> inputs, states, outputs, params;
  std::vector<int64_t> chunkSizes = {64};
  bool chunkTuned = false;
  std::vector<Inst> body;
  SourceRange loc;

  const Decl* findDecl(const std::vector<Decl>& decls, const std::string& name) const;
  const Decl* input(const std::string& n) const { return findDecl(inputs, n); }
  const Decl* state(const std::string& n) const { return findDecl(states, n); }
  const Decl* output(const std::string& n) const { return findDecl(outputs, n); }
  const Decl* param(const std::string& n) const { return findDecl(params, n); }
  // The instruction that defines `%name`, or nullptr.
  const Inst* definition(const std::string& name) const;
  // A result name not used yet in the body (`%N`).
  std::string freshName() const;
};

struct Module {
  std::vector<Recurrence> recurrences;
};

// Names of the results that are the same at every step of a head (they depend only on
// constants, dims, params and the head index).
std::set<std::string> uniformValues(const Recurrence& rec);
// Names of the results that depend, directly or not, on a read of state `state`.
std::set<std::string> valuesReading(const Recurrence& rec, const std::string& state);

}  // namespace lina::rir
