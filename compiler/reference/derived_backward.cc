#include "compiler/reference/derived_backward.h"

#include <algorithm>
#include <sstream>

#include "compiler/passes/derive_backward.h"

namespace lina::reference {

namespace {

// Reverses the steps of every sequence of a [B, T, H, ...] tensor (within cu_seqlens ranges).
Tensor flipTime(const Tensor& t, const Problem& p) {
  Tensor out = t;
  int64_t perStep = t.numel() / std::max<int64_t>(1, t.shape[0] * t.shape[1]);
  auto flipRange = [&](int64_t b, int64_t bos, int64_t eos) {
    for (int64_t s = bos; s < eos; ++s) {
      int64_t from = (b * t.shape[1] + s) * perStep, to = (b * t.shape[1] + (bos + eos - 1 - s)) * perStep;
      std::copy_n(t.data.begin() + from, perStep, out.data.begin() + to);
    }
  };
  if (p.cuSeqlens.empty()) {
    for (int64_t b = 0; b < t.shape[0]; ++b) flipRange(b, 0, t.shape[1]);
  } else {
    for (size_t n = 0; n + 1 < p.cuSeqlens.size(); ++n) flipRange(0, p.cuSeqlens[n], p.cuSeqlens[n + 1]);
  }
  return out;
}

// Sums a per-step [B, T, H, d] tensor over steps into [H, d].
void addOverSteps(Tensor& perHead, const Tensor& perStep) {
  int64_t H = perStep.shape[2], d = perStep.shape.size() > 3 ? perStep.shape[3] : 1;
  for (int64_t i = 0; i < perStep.numel(); ++i) perHead.data[((i / d) % H) * d + i % d] += perStep.data[i];
}

}  // namespace

std::optional<Gradients> runDerivedBackward(const rir::Recurrence& f, const Problem& problem, const Cotangents& ct,
                                            std::string& error, const RecurrenceRunner& runner) {
  auto run = [&](const rir::Recurrence& r, const Problem& p, std::string& e) {
    return runner ? runner(r, p, e) : reference::run(r, p, e);
  };
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<passes::DerivedBackward> derived = passes::deriveBackward(f, diags);
  if (!derived) {
    std::ostringstream os;
    diags.print(os);
    error = "deriving the backward failed: " + os.str();
    return std::nullopt;
  }
  const rir::Recurrence& a = derived->passA;
  const rir::Recurrence& passB = derived->passB;
  const passes::BackwardSignature& sig = derived->signature;
  using passes::TensorRole;
  std::optional<Result> forward = run(f, problem, error);
  if (!forward) return std::nullopt;

  Problem pa = problem;
  for (const rir::Decl& o : f.outputs) {
    auto it = ct.outputs.find(o.name);
    pa.inputs[sig.tensorFor(sig.passA, TensorRole::OutputCotangent, o.name)] = it != ct.outputs.end() ? it->second : Tensor(forward->outputs[o.name].shape);
  }
  std::optional<Result> ra = run(a, pa, error);
  if (!ra) return std::nullopt;

  Problem pb = problem;
  for (auto& [name, t] : pb.inputs) t = flipTime(t, problem);
  for (const rir::Decl& in : passB.inputs) {
    if (pb.inputs.count(in.name)) continue;
    auto fromA = ra->outputs.find(in.name);
    if (fromA != ra->outputs.end()) pb.inputs[in.name] = flipTime(fromA->second, problem);
  }
  pb.initialStates.clear();
  for (const rir::Decl& s : f.states) {
    const Tensor& final = forward->finalStates.at(s.name);
    auto dht = ct.finalStates.find(s.name);
    int64_t N = final.shape[0], H = final.shape[1], R = final.shape[2], C = final.shape[3];
    // crow/ccol: row and column sums of dht (.) S_final, the same at every step of a sequence.
    Tensor crow({problem.batch, problem.time, problem.heads, R}), ccol({problem.batch, problem.time, problem.heads, C});
    for (int64_t n = 0; n < N; ++n) {
      int64_t b0 = problem.cuSeqlens.empty() ? n : 0;
      int64_t bos = problem.cuSeqlens.empty() ? 0 : problem.cuSeqlens[n];
      int64_t eos = problem.cuSeqlens.empty() ? problem.time : problem.cuSeqlens[n + 1];
      for (int64_t h = 0; h < H; ++h)
        for (int64_t r = 0; r < R; ++r)
          for (int64_t c = 0; c < C; ++c) {
            size_t at = static_cast<size_t>(((n * H + h) * R + r) * C + c);
            double v = dht == ct.finalStates.end() ? 0.0 : dht->second.data[at] * final.data[at];
            for (int64_t t = bos; t < eos; ++t) {
              crow.data[static_cast<size_t>(((b0 * problem.time + t) * H + h) * R + r)] += v;
              ccol.data[static_cast<size_t>(((b0 * problem.time + t) * H + h) * C + c)] += v;
            }
          }
    }
    pb.inputs[sig.tensorFor(sig.passB, TensorRole::StateRowSums, s.name)] = crow;
    pb.inputs[sig.tensorFor(sig.passB, TensorRole::StateColumnSums, s.name)] = ccol;
    if (dht != ct.finalStates.end()) pb.initialStates[derived->initialHolder.at(s.name)] = dht->second;
  }
  std::optional<Result> rb = run(passB, pb, error);
  // A pass's gradient part of a forward input or param (empty: the pass has none).
  auto gradientOf = [&](const std::vector<passes::SignatureEntry>& pass, const std::string& name) {
    std::string t = sig.tensorFor(pass, TensorRole::InputGradient, name);
    return t.empty() ? sig.tensorFor(pass, TensorRole::ParamGradient, name) : t;
  };
  if (!rb) return std::nullopt;

  Gradients g;
  for (const auto& [name, t] : problem.inputs) {
    Tensor total(t.shape);
    if (auto it = ra->outputs.find(gradientOf(sig.passA, name)); it != ra->outputs.end())
      for (size_t i = 0; i < total.data.size(); ++i) total.data[i] += it->second.data[i];
    if (auto it = rb->outputs.find(gradientOf(sig.passB, name)); it != rb->outputs.end()) {
      Tensor back = flipTime(it->second, problem);
      for (size_t i = 0; i < total.data.size(); ++i) total.data[i] += back.data[i];
    }
    g.inputs[name] = std::move(total);
  }
  for (const auto& [name, t] : problem.vectorParams) {
    Tensor total(t.shape);
    if (auto it = ra->outputs.find(gradientOf(sig.passA, name)); it != ra->outputs.end()) addOverSteps(total, it->second);
    if (auto it = rb->outputs.find(gradientOf(sig.passB, name)); it != rb->outputs.end()) addOverSteps(total, it->second);
    g.vectorParams[name] = std::move(total);
  }
  for (const rir::Decl& prm : f.params) {
    if (!prm.shape.empty()) continue;
    double total = 0;
    for (auto [r, pass] : {std::pair{&*ra, &sig.passA}, std::pair{&*rb, &sig.passB}})
      if (auto it = r->outputs.find(gradientOf(*pass, prm.name)); it != r->outputs.end())
        for (double x : it->second.data) total += x;
    g.scalarParams[prm.name] = total;
  }
  for (const rir::Decl& s : f.states) {
    Tensor total(forward->finalStates.at(s.name).shape);
    for (const std::string& k : sig.adjointStatesOf(s.name)) {
      const Tensor& part = rb->finalStates.at(k);
      for (size_t i = 0; i < total.data.size(); ++i) total.data[i] += part.data[i];
    }
    g.initialStates[s.name] = std::move(total);
  }
  return g;
}

}  // namespace lina::reference
