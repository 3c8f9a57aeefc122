#include "compiler/cir/interpreter.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

namespace lina::cir {

namespace {

using Buffer = std::vector<double>;  // [C][E] for per-step values, [E] for per-head ones

// Each chunk's starting states, per (sequence, head, chunk index): what the split strategy's
// walk stores and its outputs phase reads.
using Snapshots = std::map<std::tuple<int64_t, int64_t, int64_t>, std::map<std::string, std::vector<double>>>;

class ChunkRunner {
 public:
  ChunkRunner(const Kernel& k, const reference::Problem& p, Snapshots& snapshots) : k_(k), p_(p), snapshots_(snapshots) {}

  std::optional<reference::Result> run(std::string& error) {
    for (const std::string& d : k_.dims)
      if (!p_.dims.count(d)) {
        error = "dim '" + d + "' has no size";
        return std::nullopt;
      }
    for (const rir::Decl& in : k_.inputs)
      if (!p_.inputs.count(in.name)) {
        error = "input '" + in.name + "' is missing";
        return std::nullopt;
      }
    reference::Result result;
    for (const rir::Decl& o : k_.outputs) {
      std::vector<int64_t> s = {p_.batch, p_.time, p_.heads};
      if (!o.shape.empty()) s.push_back(size(o.shape[0]));
      result.outputs[o.name] = reference::Tensor(s);
    }
    int64_t n = reference::sequenceCount(p_);
    for (const rir::Decl& s : k_.states)
      result.finalStates[s.name] = reference::Tensor({n, p_.heads, size(s.shape[0]), size(s.shape[1])});
    const int C = k_.chunk;
    for (int64_t seq = 0; seq < n; ++seq) {
      int64_t b = p_.cuSeqlens.empty() ? seq : 0;
      int64_t bos = p_.cuSeqlens.empty() ? 0 : p_.cuSeqlens[seq];
      int64_t len = p_.cuSeqlens.empty() ? p_.time : p_.cuSeqlens[seq + 1] - bos;
      for (int64_t h = 0; h < p_.heads; ++h) {
        std::map<std::string, Buffer> state, uniform, carry;
        for (const rir::Decl& s : k_.states) {
          Buffer S(static_cast<size_t>(size(s.shape[0]) * size(s.shape[1])), 0.0);
          auto it = p_.initialStates.find(s.name);
          if (it != p_.initialStates.end())
            std::copy_n(it->second.data.begin() + static_cast<std::ptrdiff_t>((seq * p_.heads + h) * S.size()), S.size(),
                        S.begin());
          state[s.name] = S;
        }
        for (const Op& op : k_.ops) {
          if (op.kind == OpKind::Uniform) uniform[op.result] = evalUniform(op, uniform, h);
          if (op.kind == OpKind::RunningSum) carry[op.result] = Buffer(static_cast<size_t>(ext(op.shape)), 0.0);
        }
        for (int64_t c0 = 0; c0 < len; c0 += C) {
          int L = static_cast<int>(std::min<int64_t>(C, len - c0));
          int64_t tok0 = bos + c0;
          auto key = std::make_tuple(seq, h, c0 / C);
          if (k_.phase == Phase::States) snapshots_[key] = state;
          if (k_.phase == Phase::Outputs) state = snapshots_.at(key);
          std::map<std::string, Buffer> buf;
          firstChunk_ = c0 == 0;
          for (const Op& op : k_.ops) chunkOp(op, buf, uniform, state, carry, result, b, tok0, h, L);
        }
        for (const rir::Decl& s : k_.states) {
          const Buffer& S = state[s.name];
          std::copy(S.begin(), S.end(),
                    result.finalStates[s.name].data.begin() + static_cast<std::ptrdiff_t>((seq * p_.heads + h) * S.size()));
        }
      }
    }
    return result;
  }

 private:
  int64_t size(const std::string& d) const { return p_.dims.at(d); }
  int64_t ext(const rir::Shape& s) const { return s.empty() ? 1 : size(s[0]); }
  const rir::Decl* state(const std::string& name) const {
    for (const rir::Decl& s : k_.states)
      if (s.name == name) return &s;
    return nullptr;
  }
  bool isUniform(const std::string& name) const {
    for (const Op& op : k_.ops)
      if (op.result == name) return op.kind == OpKind::Uniform;
    return false;
  }

  Buffer evalUniform(const Op& op, const std::map<std::string, Buffer>& u, int64_t h) {
    Buffer out(static_cast<size_t>(ext(op.shape)), 0.0);
    auto arg = [&](size_t i, size_t e) {
      const Buffer& v = u.at(op.operands[i]);
      return v.size() == 1 ? v[0] : v[e];
    };
    switch (op.rop) {
      case rir::Op::Const: out[0] = op.number; break;
      case rir::Op::Dim: out[0] = static_cast<double>(size(op.symbol)); break;
      case rir::Op::Head: out[0] = static_cast<double>(h); break;
      case rir::Op::Param: {
        if (!op.shape.empty()) {
          const reference::Tensor& v = p_.vectorParams.at(op.symbol);
          std::copy_n(v.data.begin() + static_cast<std::ptrdiff_t>(h * out.size()), out.size(), out.begin());
        } else {
          auto it = p_.scalarParams.find(op.symbol);
          out[0] = it != p_.scalarParams.end() ? it->second : u.at(op.operands[0])[0];
        }
        break;
      }
      case rir::Op::Sum:
      case rir::Op::Dot: {
        const Buffer& a = u.at(op.operands[0]);
        for (size_t e = 0; e < a.size(); ++e) out[0] += a[e] * (op.rop == rir::Op::Dot ? u.at(op.operands[1])[e] : 1.0);
        break;
      }
      case rir::Op::Softmax: {
        const Buffer& a = u.at(op.operands[0]);
        double m = *std::max_element(a.begin(), a.end()), s = 0;
        for (size_t e = 0; e < a.size(); ++e) s += out[e] = std::exp(a[e] - m);
        for (double& x : out) x /= s;
        break;
      }
      default:
        for (size_t e = 0; e < out.size(); ++e) out[e] = rir::evaluateElementwise(op.rop, arg(0, e), op.operands.size() > 1 ? arg(1, e) : 0.0);
    }
    return out;
  }

  // The value of operand `name` at step t, entry e (broadcasting scalars and per-head values).
  double at(const std::string& name, const std::map<std::string, Buffer>& buf, const std::map<std::string, Buffer>& u,
            int t, size_t e) const {
    auto it = u.find(name);
    if (it != u.end()) return it->second.size() == 1 ? it->second[0] : it->second[e];
    const Buffer& b = buf.at(name);
    size_t width = b.size() / static_cast<size_t>(k_.chunk);
    return width == 1 ? b[static_cast<size_t>(t)] : b[static_cast<size_t>(t) * width + e];
  }

  void chunkOp(const Op& op, std::map<std::string, Buffer>& buf, const std::map<std::string, Buffer>& u,
               std::map<std::string, Buffer>& states, std::map<std::string, Buffer>& carry, reference::Result& result,
               int64_t b, int64_t tok0, int64_t h, int L) {
    const int C = k_.chunk;
    const size_t E = static_cast<size_t>(ext(op.shape));
    auto fresh = [&]() -> Buffer& { return buf[op.result] = Buffer(static_cast<size_t>(C) * E, 0.0); };
    switch (op.kind) {
      case OpKind::Uniform:
        return;
      case OpKind::Load: {
        Buffer& out = fresh();
        const reference::Tensor& in = p_.inputs.at(op.symbol);
        for (int t = 0; t < L; ++t)
          for (size_t e = 0; e < E; ++e)
            out[static_cast<size_t>(t) * E + e] = in.data[static_cast<size_t>(((b * p_.time + tok0 + t) * p_.heads + h)) * E + e];
        return;
      }
      case OpKind::Elementwise: {
        Buffer& out = fresh();
        for (int t = 0; t < C; ++t)
          for (size_t e = 0; e < E; ++e)
            out[static_cast<size_t>(t) * E + e] =
                rir::evaluateElementwise(op.rop, at(op.operands[0], buf, u, t, e), op.operands.size() > 1 ? at(op.operands[1], buf, u, t, e) : 0.0);
        return;
      }
      case OpKind::Reduce: {
        size_t D = static_cast<size_t>(size(op.dim));
        Buffer& out = fresh();
        for (int t = 0; t < C; ++t) {
          if (op.rop == rir::Op::Softmax) {
            double m = -INFINITY, s = 0;
            for (size_t d = 0; d < D; ++d) m = std::max(m, at(op.operands[0], buf, u, t, d));
            for (size_t d = 0; d < D; ++d) s += out[static_cast<size_t>(t) * D + d] = std::exp(at(op.operands[0], buf, u, t, d) - m);
            for (size_t d = 0; d < D; ++d) out[static_cast<size_t>(t) * D + d] /= s;
          } else {
            double s = 0;
            for (size_t d = 0; d < D; ++d)
              s += at(op.operands[0], buf, u, t, d) * (op.rop == rir::Op::Dot ? at(op.operands[1], buf, u, t, d) : 1.0);
            out[static_cast<size_t>(t)] = s;
          }
        }
        return;
      }
      case OpKind::GateCumsum: {
        Buffer& inc = fresh();
        Buffer exc(inc.size(), 0.0);
        for (size_t e = 0; e < E; ++e) {
          double running = 0;
          for (int t = 0; t < C; ++t) {
            exc[static_cast<size_t>(t) * E + e] = running;
            if (t < L) running += at(op.operands[0], buf, u, t, e);
            inc[static_cast<size_t>(t) * E + e] = running;
          }
        }
        if (!op.exclusive.empty()) buf[op.exclusive] = exc;
        return;
      }
      case OpKind::RunningSum: {
        Buffer& out = fresh();
        Buffer& acc = carry.at(op.result);
        if (firstChunk_ && op.operands.size() > 1)  // the sequence's first chunk: the initial value
          for (size_t e = 0; e < E; ++e) acc[e] = at(op.operands[1], buf, u, 0, e);
        for (size_t e = 0; e < E; ++e)
          for (int t = 0; t < C; ++t) {
            if (t < L) acc[e] += at(op.operands[0], buf, u, t, e) + (op.operands.size() > 2 ? at(op.operands[2], buf, u, t, e) : 0.0);
            out[static_cast<size_t>(t) * E + e] = acc[e];
          }
        return;
      }
      case OpKind::Attend:
        attend(op, fresh(), buf, u, states.at(op.symbol), L);
        return;
      case OpKind::Carry:
        carryState(op, buf, u, states.at(op.symbol), L);
        return;
      case OpKind::Store: {
        const Op* def = nullptr;
        for (const Op& d : k_.ops)
          if (d.result == op.operands[0]) def = &d;
        size_t W = static_cast<size_t>(ext(def->shape));
        reference::Tensor& o = result.outputs.at(op.symbol);
        for (int t = 0; t < L; ++t)
          for (size_t e = 0; e < W; ++e)
            o.data[static_cast<size_t>(((b * p_.time + tok0 + t) * p_.heads + h)) * W + e] = at(op.operands[0], buf, u, t, e);
        return;
      }
    }
  }

  // Gate cumsum at (t, i): 0 without a gate.
  double gate(const GateRef& g, const std::string& which, const std::map<std::string, Buffer>& buf, int t, size_t i) const {
    if (g.kind == GateKind::None) return 0.0;
    const Buffer& b = buf.at(which);
    return g.kind == GateKind::Scalar ? b[static_cast<size_t>(t)] : b[static_cast<size_t>(t) * (b.size() / static_cast<size_t>(k_.chunk)) + i];
  }

  void attend(const Op& op, Buffer& out, const std::map<std::string, Buffer>& buf, const std::map<std::string, Buffer>& u,
              const Buffer& S, int L) {
    const rir::Decl& s = *state(op.symbol);
    bool overRows = op.dim == s.shape[0];
    size_t rows = static_cast<size_t>(size(s.shape[0])), cols = static_cast<size_t>(size(s.shape[1]));
    size_t R = overRows ? rows : cols, N = overRows ? cols : rows;
    const GateRef& rg = overRows ? op.rows : op.cols;
    const GateRef& ng = overRows ? op.cols : op.rows;
    const std::string& key = overRows ? op.u : op.w;
    const std::string& val = overRows ? op.w : op.u;
    auto q = [&](const GateRef& g) { return op.afterUpdate ? g.inclusive : g.exclusive; };
    auto Sat = [&](size_t r, size_t n) { return overRows ? S[r * cols + n] : S[n * cols + r]; };
    const int C = k_.chunk;
    for (int t = 0; t < L; ++t)
      for (size_t n = 0; n < N; ++n) {
        double inter = 0;
        for (size_t r = 0; r < R; ++r)
          inter += at(op.operands[0], buf, u, t, r) * std::exp(gate(rg, q(rg), buf, t, r)) * Sat(r, n);
        inter *= std::exp(gate(ng, q(ng), buf, t, n));
        double intra = 0;
        int last = op.afterUpdate ? t : t - 1;
        for (int sIdx = 0; sIdx <= last && sIdx < C; ++sIdx) {
          double score = 0;
          for (size_t r = 0; r < R; ++r)
            score += at(op.operands[0], buf, u, t, r) * at(key, buf, u, sIdx, r) *
                     std::exp(gate(rg, q(rg), buf, t, r) - gate(rg, rg.inclusive, buf, sIdx, r));
          intra += score * at(val, buf, u, sIdx, n) * std::exp(gate(ng, q(ng), buf, t, n) - gate(ng, ng.inclusive, buf, sIdx, n));
        }
        out[static_cast<size_t>(t) * N + n] = inter + intra;
      }
  }

  void carryState(const Op& op, const std::map<std::string, Buffer>& buf, const std::map<std::string, Buffer>& u, Buffer& S,
                  int L) {
    const rir::Decl& s = *state(op.symbol);
    size_t rows = static_cast<size_t>(size(s.shape[0])), cols = static_cast<size_t>(size(s.shape[1]));
    int last = L - 1;
    for (size_t r = 0; r < rows; ++r)
      for (size_t c = 0; c < cols; ++c) {
        double acc = std::exp(gate(op.rows, op.rows.inclusive, buf, last, r) + gate(op.cols, op.cols.inclusive, buf, last, c)) *
                     S[r * cols + c];
        for (int t = 0; t < L; ++t)
          acc += at(op.u, buf, u, t, r) * std::exp(gate(op.rows, op.rows.inclusive, buf, last, r) - gate(op.rows, op.rows.inclusive, buf, t, r)) *
                 at(op.w, buf, u, t, c) * std::exp(gate(op.cols, op.cols.inclusive, buf, last, c) - gate(op.cols, op.cols.inclusive, buf, t, c));
        S[r * cols + c] = acc;
      }
  }

  const Kernel& k_;
  const reference::Problem& p_;
  Snapshots& snapshots_;
  bool firstChunk_ = false;  // the chunk being interpreted is its sequence's first
};

}  // namespace

std::optional<reference::Result> interpret(const Kernel& kernel, const reference::Problem& problem, std::string& error) {
  if (kernel.phase != Phase::Whole) {
    error = "kernel " + kernel.name + " is one phase of the split strategy; interpret it with interpretSplit";
    return std::nullopt;
  }
  Snapshots none;
  return ChunkRunner(kernel, problem, none).run(error);
}

std::optional<reference::Result> interpretSplit(const Kernel& states, const Kernel& outputs,
                                                const reference::Problem& problem, std::string& error) {
  if (states.phase != Phase::States || outputs.phase != Phase::Outputs) {
    error = "interpretSplit takes the states and the outputs phase of the split strategy, got " +
            std::string(phaseName(states.phase)) + " and " + phaseName(outputs.phase);
    return std::nullopt;
  }
  Snapshots snapshots;
  std::optional<reference::Result> walk = ChunkRunner(states, problem, snapshots).run(error);
  if (!walk) return std::nullopt;
  std::optional<reference::Result> result = ChunkRunner(outputs, problem, snapshots).run(error);
  if (!result) return std::nullopt;
  result->finalStates = walk->finalStates;  // the walk's; the outputs phase carries nothing
  return result;
}

}  // namespace lina::cir
