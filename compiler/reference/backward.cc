#include "compiler/reference/backward.h"

#include <cmath>
#include <random>

#include "compiler/reference/evaluator.h"

namespace lina::reference {

namespace {

using detail::Interpreter;
using Value = std::vector<double>;

// Adds g (size n or 1) into d (size n or 1): a scalar operand of a vector op receives the sum.
void accumulate(Value& d, const Value& g) {
  if (d.size() == g.size()) {
    for (size_t k = 0; k < d.size(); ++k) d[k] += g[k];
  } else {
    double s = 0;
    for (double x : g) s += x;
    d[0] += s;
  }
}

double at(const Value& v, size_t k) { return v.size() == 1 ? v[0] : v[k]; }

class Backward {
 public:
  Backward(const rir::Recurrence& rec, const Problem& p, const Cotangents& ct) : rec_(rec), p_(p), ct_(ct), eval_(rec, p) {}

  std::optional<Gradients> run(std::string& error) {
    if (!eval_.prepare(error)) return std::nullopt;
    for (const auto& [name, t] : ct_.outputs)
      if (!rec_.output(name) || t.data.size() != static_cast<size_t>(tokenCount(rec_.output(name)->shape))) {
        error = "cotangent of output '" + name + "' does not match the output's shape";
        return std::nullopt;
      }
    Gradients g;
    for (const auto& [name, t] : p_.inputs) g.inputs[name] = Tensor(t.shape);
    int64_t n = sequenceCount(p_);
    for (const rir::Decl& s : rec_.states)
      g.initialStates[s.name] = Tensor({n, p_.heads, eval_.dimSize(s.shape[0]), eval_.dimSize(s.shape[1])});
    for (const auto& [name, t] : p_.vectorParams) g.vectorParams[name] = Tensor(t.shape);
    for (const rir::Decl& prm : rec_.params)
      if (prm.shape.empty()) g.scalarParams[prm.name] = g.scalarParamMagnitudes[prm.name] = 0;
    Result scratch;
    for (const rir::Decl& o : rec_.outputs) scratch.outputs[o.name] = Tensor(tokenShape(o.shape));
    for (int64_t seq = 0; seq < n; ++seq) {
      int64_t batch = p_.cuSeqlens.empty() ? seq : 0;
      int64_t bos = p_.cuSeqlens.empty() ? 0 : p_.cuSeqlens[seq];
      int64_t eos = p_.cuSeqlens.empty() ? p_.time : p_.cuSeqlens[seq + 1];
      for (int64_t h = 0; h < p_.heads; ++h) {
        std::vector<Interpreter::StepRecord> tape;
        eval_.tape = &tape;
        eval_.loadStates(seq, h);
        for (int64_t t = bos; t < eos; ++t) eval_.step(batch, t, h, scratch);
        eval_.tape = nullptr;
        reverse(tape, seq, batch, bos, h, g);
      }
    }
    return g;
  }

 private:
  int64_t tokenCount(const rir::Shape& s) const {
    return p_.batch * p_.time * p_.heads * (s.empty() ? 1 : eval_.dimSize(s[0]));
  }
  std::vector<int64_t> tokenShape(const rir::Shape& shape) const {
    std::vector<int64_t> s = {p_.batch, p_.time, p_.heads};
    for (const std::string& d : shape) s.push_back(eval_.dimSize(d));
    return s;
  }

  void reverse(const std::vector<Interpreter::StepRecord>& tape, int64_t seq, int64_t b, int64_t bos, int64_t h,
               Gradients& g) {
    // Adjoint states start at d(final state).
    std::map<std::string, Value> G;
    for (const rir::Decl& s : rec_.states) {
      size_t size = static_cast<size_t>(eval_.dimSize(s.shape[0]) * eval_.dimSize(s.shape[1]));
      Value adj(size, 0.0);
      auto it = ct_.finalStates.find(s.name);
      if (it != ct_.finalStates.end())
        std::copy_n(it->second.data.begin() + static_cast<std::ptrdiff_t>((seq * p_.heads + h) * size), size, adj.begin());
      G[s.name] = std::move(adj);
    }
    for (size_t step = tape.size(); step-- > 0;) {
      const Interpreter::StepRecord& rec = tape[step];
      const int64_t t = bos + static_cast<int64_t>(step);
      std::vector<Value> d(rec.values.size());
      for (size_t i = 0; i < d.size(); ++i) d[i].assign(rec.values[i].size(), 0.0);
      for (size_t i = rec_.body.size(); i-- > 0;) backInst(i, rec, d, G, b, t, h, g);
    }
    for (const rir::Decl& s : rec_.states) {
      const Value& adj = G[s.name];
      std::copy(adj.begin(), adj.end(),
                g.initialStates[s.name].data.begin() + static_cast<std::ptrdiff_t>((seq * p_.heads + h) * adj.size()));
    }
  }

  void backInst(size_t i, const Interpreter::StepRecord& rec, std::vector<Value>& d, std::map<std::string, Value>& G,
                int64_t b, int64_t t, int64_t h, Gradients& g) {
    const rir::Inst& inst = rec_.body[i];
    const std::vector<size_t>& ops = eval_.operands(i);
    const Value& out = rec.values[i];
    const Value& dout = d[i];
    auto val = [&](size_t k) -> const Value& { return rec.values[ops[k]]; };
    size_t tokenOffset = static_cast<size_t>((b * p_.time + t) * p_.heads + h);
    switch (inst.op) {
      case rir::Op::Const:
      case rir::Op::Dim:
      case rir::Op::Head:
        return;
      case rir::Op::Param:
        if (inst.shape.empty()) {
          g.scalarParams[inst.symbol] += dout[0];
          g.scalarParamMagnitudes[inst.symbol] += std::abs(dout[0]);
        } else {
          Tensor& dp = g.vectorParams[inst.symbol];
          for (size_t k = 0; k < dout.size(); ++k) dp.data[static_cast<size_t>(h) * dout.size() + k] += dout[k];
        }
        return;
      case rir::Op::Input: {
        Tensor& di = g.inputs[inst.symbol];
        for (size_t k = 0; k < dout.size(); ++k) di.data[tokenOffset * dout.size() + k] += dout[k];
        return;
      }
      case rir::Op::Output: {
        auto it = ct_.outputs.find(inst.symbol);
        if (it == ct_.outputs.end()) return;
        Value& dv = d[ops[0]];
        for (size_t k = 0; k < dv.size(); ++k) dv[k] += it->second.data[tokenOffset * dv.size() + k];
        return;
      }
      case rir::Op::Sum:
        for (double& x : d[ops[0]]) x += dout[0];
        return;
      case rir::Op::Dot: {
        const Value &a = val(0), &c = val(1);
        for (size_t k = 0; k < a.size(); ++k) {
          d[ops[0]][k] += dout[0] * c[k];
          d[ops[1]][k] += dout[0] * a[k];
        }
        return;
      }
      case rir::Op::Softmax: {
        double s = 0;
        for (size_t k = 0; k < out.size(); ++k) s += out[k] * dout[k];
        for (size_t k = 0; k < out.size(); ++k) d[ops[0]][k] += out[k] * (dout[k] - s);
        return;
      }
      case rir::Op::Read: {
        const rir::Decl& decl = *rec_.state(inst.symbol);
        const Value& S = rec.states.at(i);
        const Value& x = val(0);
        size_t rows = static_cast<size_t>(eval_.dimSize(decl.shape[0])), cols = static_cast<size_t>(eval_.dimSize(decl.shape[1]));
        Value& dx = d[ops[0]];
        Value& adj = G[inst.symbol];
        bool overRows = inst.dim == decl.shape[0];
        for (size_t r = 0; r < rows; ++r)
          for (size_t c = 0; c < cols; ++c) {
            if (overRows) {  // out[c] = sum_r x[r] S[r, c]
              dx[r] += S[r * cols + c] * dout[c];
              adj[r * cols + c] += x[r] * dout[c];
            } else {  // out[r] = sum_c S[r, c] x[c]
              dx[c] += S[r * cols + c] * dout[r];
              adj[r * cols + c] += dout[r] * x[c];
            }
          }
        return;
      }
      case rir::Op::Update: {
        const rir::Decl& decl = *rec_.state(inst.symbol);
        const Value& Sprev = rec.states.at(i);
        size_t rows = static_cast<size_t>(eval_.dimSize(decl.shape[0])), cols = static_cast<size_t>(eval_.dimSize(decl.shape[1]));
        auto factors = [&](size_t slot, const rir::Gate& gate, size_t n) {
          Value f(n, 1.0);
          if (!gate.present()) return f;
          for (size_t k = 0; k < n; ++k) {
            double x = at(rec.values[slot], k);
            f[k] = gate.space == rir::GateSpace::Log ? std::exp(x) : x;
          }
          return f;
        };
        Value a = factors(eval_.rowGateSlot(i), inst.rows, rows);
        Value bc = factors(eval_.colGateSlot(i), inst.cols, cols);
        const Value &u = val(0), &w = val(1);
        Value& adj = G[inst.symbol];
        Value da(rows, 0.0), db(cols, 0.0);
        for (size_t r = 0; r < rows; ++r)
          for (size_t c = 0; c < cols; ++c) {
            double gk = adj[r * cols + c];
            d[ops[0]][r] += gk * w[c];
            d[ops[1]][c] += gk * u[r];
            // d/d(factor a_r) = G S_prev b; for a log gate d/d(log a_r) = a_r times that.
            da[r] += gk * Sprev[r * cols + c] * bc[c] * (inst.rows.space == rir::GateSpace::Log ? a[r] : 1.0);
            db[c] += gk * a[r] * Sprev[r * cols + c] * (inst.cols.space == rir::GateSpace::Log ? bc[c] : 1.0);
          }
        if (inst.rows.present()) accumulate(d[eval_.rowGateSlot(i)], da);
        if (inst.cols.present()) accumulate(d[eval_.colGateSlot(i)], db);
        for (size_t r = 0; r < rows; ++r)
          for (size_t c = 0; c < cols; ++c) adj[r * cols + c] *= a[r] * bc[c];
        return;
      }
      default:
        break;
    }
    // Elementwise ops, broadcasting scalars.
    const Value& x = val(0);
    const Value* y = ops.size() > 1 ? &val(1) : nullptr;
    Value dx(out.size(), 0.0), dy(out.size(), 0.0);
    for (size_t k = 0; k < out.size(); ++k) {
      double a = at(x, k), c = y ? at(*y, k) : 0.0, go = dout[k];
      switch (inst.op) {
        case rir::Op::Neg: dx[k] = -go; break;
        case rir::Op::Add: dx[k] = go; dy[k] = go; break;
        case rir::Op::Sub: dx[k] = go; dy[k] = -go; break;
        case rir::Op::Mul: dx[k] = go * c; dy[k] = go * a; break;
        case rir::Op::Div: dx[k] = go / c; dy[k] = -go * a / (c * c); break;
        case rir::Op::Pow:
          dx[k] = go * c * std::pow(a, c - 1);
          dy[k] = a > 0 ? go * out[k] * std::log(a) : 0.0;
          break;
        case rir::Op::Exp: dx[k] = go * out[k]; break;
        case rir::Op::Log: dx[k] = go / a; break;
        default: break;
      }
    }
    accumulate(d[ops[0]], dx);
    if (y) accumulate(d[ops[1]], dy);
  }

  const rir::Recurrence& rec_;
  const Problem& p_;
  const Cotangents& ct_;
  Interpreter eval_;
};

}  // namespace

std::optional<Gradients> runBackward(const rir::Recurrence& program, const Problem& problem,
                                     const Cotangents& cotangents, std::string& error) {
  return Backward(program, problem, cotangents).run(error);
}

Cotangents randomCotangents(const Result& forward, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Cotangents c;
  for (const auto& [name, t] : forward.outputs) {
    Tensor d(t.shape);
    for (double& x : d.data) x = normal(rng);
    c.outputs[name] = std::move(d);
  }
  for (const auto& [name, t] : forward.finalStates) {
    Tensor d(t.shape);
    for (double& x : d.data) x = normal(rng);
    c.finalStates[name] = std::move(d);
  }
  return c;
}

double loss(const Result& forward, const Cotangents& c) {
  double l = 0;
  for (const auto& [name, t] : forward.outputs) {
    auto it = c.outputs.find(name);
    if (it == c.outputs.end()) continue;
    for (size_t i = 0; i < t.data.size(); ++i) l += t.data[i] * it->second.data[i];
  }
  for (const auto& [name, t] : forward.finalStates) {
    auto it = c.finalStates.find(name);
    if (it == c.finalStates.end()) continue;
    for (size_t i = 0; i < t.data.size(); ++i) l += t.data[i] * it->second.data[i];
  }
  return l;
}

FiniteDifferenceReport finiteDifferences(const rir::Recurrence& program, const Problem& problem,
                                         const Cotangents& cotangents, const Gradients& gradients, double eps,
                                         int64_t maxEntriesPerTensor) {
  FiniteDifferenceReport report;
  Problem p = problem;
  // Initial states are perturbed too: make every state present (zeros where absent).
  for (const auto& [name, t] : gradients.initialStates)
    if (!p.initialStates.count(name)) p.initialStates[name] = Tensor(t.shape);
  auto lossAt = [&]() {
    std::string error;
    std::optional<Result> r = run(program, p, error);
    return r ? loss(*r, cotangents) : std::nan("");
  };
  auto check = [&](const std::string& what, std::vector<double>& data, const std::vector<double>& analytic) {
    int64_t n = static_cast<int64_t>(data.size());
    int64_t stride = std::max<int64_t>(1, n / std::max<int64_t>(1, maxEntriesPerTensor));
    for (int64_t i = 0; i < n; i += stride) {
      double saved = data[i];
      data[i] = saved + eps;
      double plus = lossAt();
      data[i] = saved - eps;
      double minus = lossAt();
      data[i] = saved;
      double numeric = (plus - minus) / (2 * eps);
      double err = std::abs(analytic[i] - numeric) / std::max(1.0, std::abs(numeric));
      if (!(err <= report.maxError)) {  // also catches NaN
        report.maxError = std::isnan(err) ? INFINITY : err;
        report.worst = what + "[" + std::to_string(i) + "]";
      }
      ++report.entriesChecked;
    }
  };
  for (auto& [name, t] : p.inputs) check("input " + name, t.data, gradients.inputs.at(name).data);
  for (auto& [name, t] : p.initialStates) check("initial state " + name, t.data, gradients.initialStates.at(name).data);
  for (auto& [name, t] : p.vectorParams) check("param " + name, t.data, gradients.vectorParams.at(name).data);
  for (const auto& [name, analytic] : gradients.scalarParams) {
    // A scalar param not given in the problem runs at its default: perturb it by overriding.
    bool given = p.scalarParams.count(name) > 0;
    if (!given) continue;
    std::vector<double> one = {p.scalarParams[name]};
    double saved = one[0];
    p.scalarParams[name] = saved + eps;
    double plus = lossAt();
    p.scalarParams[name] = saved - eps;
    double minus = lossAt();
    p.scalarParams[name] = saved;
    double numeric = (plus - minus) / (2 * eps);
    double err = std::abs(analytic - numeric) / std::max(1.0, std::abs(numeric));
    if (!(err <= report.maxError)) {
      report.maxError = std::isnan(err) ? INFINITY : err;
      report.worst = "param " + name;
    }
    ++report.entriesChecked;
  }
  return report;
}

}  // namespace lina::reference
