// The interpreter's evaluator, shared by the forward run (interpreter.cc) and the reverse-mode
// backward (backward.cc). Internal to compiler/reference.
#pragma once

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "compiler/reference/interpreter.h"

namespace lina::reference::detail {

inline std::string shapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// One SSA value during a step: a scalar (size 1) or a vector.
using Value = std::vector<double>;

class Interpreter {
 public:
  // What one step recorded for the backward: every value, and the state each read and update saw.
  struct StepRecord {
    std::vector<Value> values;
    std::map<size_t, Value> states;  // instruction index -> state matrix (before an update; at a read)
  };
  std::vector<StepRecord>* tape = nullptr;  // when set, step() appends one record per step

  Interpreter(const rir::Recurrence& rec, const Problem& p) : rec_(rec), p_(p) {}

  std::optional<Result> run(std::string& error) {
    if (!prepare(error)) return std::nullopt;
    Result result;
    int64_t totalTime = p_.time;
    for (const rir::Decl& o : rec_.outputs) result.outputs[o.name] = Tensor(tokenShape(o.shape));
    int64_t n = sequenceCount(p_);
    for (const rir::Decl& s : rec_.states)
      result.finalStates[s.name] = Tensor({n, p_.heads, size(s.shape[0]), size(s.shape[1])});
    for (int64_t seq = 0; seq < n; ++seq) {
      int64_t batch = p_.cuSeqlens.empty() ? seq : 0;
      int64_t bos = p_.cuSeqlens.empty() ? 0 : p_.cuSeqlens[seq];
      int64_t eos = p_.cuSeqlens.empty() ? totalTime : p_.cuSeqlens[seq + 1];
      for (int64_t h = 0; h < p_.heads; ++h) {
        loadStates(seq, h);
        for (int64_t t = bos; t < eos; ++t) step(batch, t, h, result);
        storeStates(seq, h, result);
      }
    }
    return result;
  }

  int64_t size(const std::string& dim) const { return p_.dims.at(dim); }
  std::vector<int64_t> tokenShape(const rir::Shape& shape) const {
    std::vector<int64_t> s = {p_.batch, p_.time, p_.heads};
    for (const std::string& d : shape) s.push_back(size(d));
    return s;
  }

  bool prepare(std::string& error) {
    auto fail = [&](const std::string& message) {
      error = message;
      return false;
    };
    if (p_.batch < 1 || p_.time < 0 || p_.heads < 1)
      return fail("shape (B, T, H) = (" + std::to_string(p_.batch) + ", " + std::to_string(p_.time) + ", " +
                  std::to_string(p_.heads) + ") is invalid; expected B >= 1, T >= 0, H >= 1");
    for (const std::string& d : rec_.dims) {
      auto it = p_.dims.find(d);
      if (it == p_.dims.end() || it->second < 1)
        return fail("dim '" + d + "' needs a size >= 1; pass it in Problem::dims (e.g. " + d + "=64)");
    }
    for (const rir::Decl& s : rec_.states)
      if (!s.shapeKnown) return fail("state '" + s.name + "' has no shape; run infer-state-shapes first");
    if (!p_.cuSeqlens.empty()) {
      const auto& cu = p_.cuSeqlens;
      if (p_.batch != 1) return fail("cu_seqlens needs batch size 1 (packed sequences); got B = " + std::to_string(p_.batch));
      if (cu.size() < 2) return fail("cu_seqlens needs at least 2 entries [0, ..., T]; got " + std::to_string(cu.size()));
      if (cu.front() != 0) return fail("cu_seqlens[0] must be 0; got " + std::to_string(cu.front()));
      for (size_t i = 1; i < cu.size(); ++i)
        if (cu[i] < cu[i - 1])
          return fail("cu_seqlens must be non-decreasing; cu_seqlens[" + std::to_string(i) + "] = " +
                      std::to_string(cu[i]) + " < " + std::to_string(cu[i - 1]));
      if (cu.back() != p_.time)
        return fail("cu_seqlens[-1] must equal the total length T = " + std::to_string(p_.time) + "; got " +
                    std::to_string(cu.back()));
    }
    for (const rir::Decl& in : rec_.inputs) {
      auto it = p_.inputs.find(in.name);
      if (it == p_.inputs.end()) return fail("input '" + in.name + "' is missing; expected shape " + shapeText(tokenShape(in.shape)));
      if (it->second.shape != tokenShape(in.shape) || static_cast<int64_t>(it->second.data.size()) != it->second.numel())
        return fail("input '" + in.name + "' has shape " + shapeText(it->second.shape) + "; expected " +
                    shapeText(tokenShape(in.shape)));
    }
    int64_t n = sequenceCount(p_);
    for (const rir::Decl& s : rec_.states) {
      auto it = p_.initialStates.find(s.name);
      if (it == p_.initialStates.end()) continue;
      std::vector<int64_t> expect = {n, p_.heads, size(s.shape[0]), size(s.shape[1])};
      if (it->second.shape != expect || static_cast<int64_t>(it->second.data.size()) != it->second.numel())
        return fail("initial state '" + s.name + "' has shape " + shapeText(it->second.shape) + "; expected " +
                    shapeText(expect) + " (one per sequence)");
    }
    for (const auto& [name, t] : p_.initialStates)
      if (!rec_.state(name)) return fail("initial state '" + name + "' is not a state of @" + rec_.name);
    for (const rir::Decl& prm : rec_.params) {
      if (prm.shape.empty()) continue;
      auto it = p_.vectorParams.find(prm.name);
      std::vector<int64_t> expect = {p_.heads, size(prm.shape[0])};
      if (it == p_.vectorParams.end()) return fail("param '" + prm.name + "' is missing; expected shape " + shapeText(expect));
      if (it->second.shape != expect || static_cast<int64_t>(it->second.data.size()) != it->second.numel())
        return fail("param '" + prm.name + "' has shape " + shapeText(it->second.shape) + "; expected " + shapeText(expect));
    }
    // Resolve operands to value slots once.
    std::map<std::string, size_t> slot;
    for (const rir::Inst& inst : rec_.body) {
      std::vector<size_t> ops;
      for (const std::string& o : inst.operands) ops.push_back(slot.at(o));
      if (inst.rows.present()) rowGate_.push_back(slot.at(inst.rows.value)); else rowGate_.push_back(SIZE_MAX);
      if (inst.cols.present()) colGate_.push_back(slot.at(inst.cols.value)); else colGate_.push_back(SIZE_MAX);
      operandSlots_.push_back(std::move(ops));
      if (inst.op == rir::Op::Param && inst.shape.empty() && inst.operands.empty() && !p_.scalarParams.count(inst.symbol))
        return fail("param '" + inst.symbol + "' has no default and is missing; pass it as a scalar");
      if (rir::hasResult(inst.op)) slot[inst.result] = values_.size();
      values_.emplace_back(inst.shape.empty() ? 1 : static_cast<size_t>(size(inst.shape[0])), 0.0);
      running_.push_back(values_.back());
    }
    for (const auto& [name, v] : p_.scalarParams) {
      const rir::Decl* d = rec_.param(name);
      if (!d || !d->shape.empty()) return fail("'" + name + "' is not a scalar param of @" + rec_.name);
      (void)v;
    }
    for (const rir::Decl& s : rec_.states) {
      stateIndex_[s.name] = states_.size();
      states_.emplace_back(static_cast<size_t>(size(s.shape[0]) * size(s.shape[1])), 0.0);
    }
    return true;
  }

  void loadStates(int64_t seq, int64_t h) {
    for (Value& acc : running_) std::fill(acc.begin(), acc.end(), 0.0);  // running sums restart per sequence
    firstStep_ = true;
    for (const rir::Decl& s : rec_.states) {
      Value& S = states_[stateIndex_[s.name]];
      auto it = p_.initialStates.find(s.name);
      if (it == p_.initialStates.end()) {
        std::fill(S.begin(), S.end(), 0.0);
        continue;
      }
      size_t n = S.size();
      size_t offset = static_cast<size_t>(seq * p_.heads + h) * n;
      std::copy(it->second.data.begin() + offset, it->second.data.begin() + offset + n, S.begin());
    }
  }

  void storeStates(int64_t seq, int64_t h, Result& result) {
    for (const rir::Decl& s : rec_.states) {
      const Value& S = states_[stateIndex_[s.name]];
      size_t offset = static_cast<size_t>(seq * p_.heads + h) * S.size();
      std::copy(S.begin(), S.end(), result.finalStates[s.name].data.begin() + offset);
    }
  }


  void step(int64_t b, int64_t t, int64_t h, Result& result) {
    StepRecord* record = nullptr;
    if (tape) {
      tape->emplace_back();
      record = &tape->back();
    }
    for (size_t i = 0; i < rec_.body.size(); ++i) {
      const rir::Inst& inst = rec_.body[i];
      if (record && (inst.op == rir::Op::Read || inst.op == rir::Op::Update))
        record->states[i] = states_[stateIndex_[inst.symbol]];
      const std::vector<size_t>& ops = operandSlots_[i];
      Value& out = values_[i];
      switch (inst.op) {
        case rir::Op::Const: out[0] = inst.number; break;
        case rir::Op::Dim: out[0] = static_cast<double>(size(inst.symbol)); break;
        case rir::Op::Head: out[0] = static_cast<double>(h); break;
        case rir::Op::Param: {
          if (!inst.shape.empty()) {
            const Tensor& v = p_.vectorParams.at(inst.symbol);
            std::copy_n(v.data.begin() + static_cast<std::ptrdiff_t>(h * out.size()), out.size(), out.begin());
          } else {
            auto it = p_.scalarParams.find(inst.symbol);
            out[0] = it != p_.scalarParams.end() ? it->second : values_[ops[0]][0];
          }
          break;
        }
        case rir::Op::Input: {
          const Tensor& in = p_.inputs.at(inst.symbol);
          size_t offset = static_cast<size_t>((b * p_.time + t) * p_.heads + h) * out.size();
          std::copy_n(in.data.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
          break;
        }
        case rir::Op::RunningSum: {
          Value& acc = running_[i];
          const Value& x = values_[ops[0]];
          if (firstStep_ && ops.size() > 1) acc = values_[ops[1]];  // the initial value
          const Value* y = ops.size() > 2 ? &values_[ops[2]] : nullptr;  // a second summand
          for (size_t k = 0; k < out.size(); ++k) out[k] = acc[k] += x[k] + (y ? (*y)[k] : 0.0);
          break;
        }
        case rir::Op::Sum: {
          double s = 0;
          for (double x : values_[ops[0]]) s += x;
          out[0] = s;
          break;
        }
        case rir::Op::Dot: {
          const Value& x = values_[ops[0]];
          const Value& y = values_[ops[1]];
          double s = 0;
          for (size_t k = 0; k < x.size(); ++k) s += x[k] * y[k];
          out[0] = s;
          break;
        }
        case rir::Op::Softmax: {
          const Value& x = values_[ops[0]];
          double m = *std::max_element(x.begin(), x.end());
          double s = 0;
          for (size_t k = 0; k < x.size(); ++k) s += out[k] = std::exp(x[k] - m);
          for (double& y : out) y /= s;
          break;
        }
        case rir::Op::Read: {
          const rir::Decl& decl = *rec_.state(inst.symbol);
          const Value& S = states_[stateIndex_[inst.symbol]];
          const Value& x = values_[ops[0]];
          size_t rows = static_cast<size_t>(size(decl.shape[0])), cols = static_cast<size_t>(size(decl.shape[1]));
          std::fill(out.begin(), out.end(), 0.0);
          if (inst.dim == decl.shape[0]) {
            for (size_t r = 0; r < rows; ++r)
              for (size_t c = 0; c < cols; ++c) out[c] += x[r] * S[r * cols + c];
          } else {
            for (size_t r = 0; r < rows; ++r)
              for (size_t c = 0; c < cols; ++c) out[r] += S[r * cols + c] * x[c];
          }
          break;
        }
        case rir::Op::Update: {
          const rir::Decl& decl = *rec_.state(inst.symbol);
          Value& S = states_[stateIndex_[inst.symbol]];
          size_t rows = static_cast<size_t>(size(decl.shape[0])), cols = static_cast<size_t>(size(decl.shape[1]));
          auto gate = [&](size_t slotIndex, const rir::Gate& g, size_t n) {
            std::vector<double> f(n, 1.0);
            if (!g.present()) return f;
            const Value& v = values_[slotIndex];
            for (size_t k = 0; k < n; ++k) {
              double x = v.size() == 1 ? v[0] : v[k];
              f[k] = g.space == rir::GateSpace::Log ? std::exp(x) : x;
            }
            return f;
          };
          std::vector<double> a = gate(rowGate_[i], inst.rows, rows);
          std::vector<double> bcol = gate(colGate_[i], inst.cols, cols);
          const Value& u = values_[ops[0]];
          const Value& w = values_[ops[1]];
          for (size_t r = 0; r < rows; ++r)
            for (size_t c = 0; c < cols; ++c) S[r * cols + c] = a[r] * S[r * cols + c] * bcol[c] + u[r] * w[c];
          break;
        }
        case rir::Op::Output: {
          const Value& v = values_[ops[0]];
          Tensor& o = result.outputs[inst.symbol];
          size_t offset = static_cast<size_t>((b * p_.time + t) * p_.heads + h) * v.size();
          std::copy(v.begin(), v.end(), o.data.begin() + static_cast<std::ptrdiff_t>(offset));
          break;
        }
        default: {  // elementwise, broadcasting scalars
          const Value& x = values_[ops[0]];
          const Value* y = ops.size() > 1 ? &values_[ops[1]] : nullptr;
          for (size_t k = 0; k < out.size(); ++k) {
            double a = x.size() == 1 ? x[0] : x[k];
            double c = y ? (y->size() == 1 ? (*y)[0] : (*y)[k]) : 0.0;
            out[k] = rir::evaluateElementwise(inst.op, a, c);
          }
        }
      }
    }
    firstStep_ = false;
    if (record) record->values = values_;
  }

  // Accessors for the backward (backward.cc).
  const rir::Recurrence& program() const { return rec_; }
  const Problem& problem() const { return p_; }
  const std::vector<size_t>& operands(size_t i) const { return operandSlots_[i]; }
  size_t rowGateSlot(size_t i) const { return rowGate_[i]; }
  size_t colGateSlot(size_t i) const { return colGate_[i]; }
  int64_t dimSize(const std::string& d) const { return size(d); }
  Value& state(const std::string& name) { return states_[stateIndex_[name]]; }

 private:
  const rir::Recurrence& rec_;
  const Problem& p_;
  std::vector<Value> values_;
  bool firstStep_ = true;       // the next step is its sequence's first (running sums take their initial value)
  std::vector<Value> running_;  // accumulators of running_sum instructions (one per instruction)  // one per instruction (effects get an unused slot)
  std::vector<std::vector<size_t>> operandSlots_;
  std::vector<size_t> rowGate_, colGate_;
  std::vector<Value> states_;
  std::map<std::string, size_t> stateIndex_;
};

}  // namespace lina::reference::detail
