#include "compiler/reference/random_problem.h"

#include <cmath>
#include <iomanip>

namespace lina::reference {

Problem makeRandomProblem(const rir::Recurrence& program, const ProblemShape& shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Problem p;
  p.batch = shape.batch;
  p.time = shape.time;
  p.heads = shape.heads;
  p.cuSeqlens = shape.cuSeqlens;
  for (const std::string& d : program.dims) {
    auto it = shape.dims.find(d);
    p.dims[d] = it == shape.dims.end() ? 16 : it->second;
  }
  auto fill = [&](Tensor& t, bool gate) {
    for (double& x : t.data) {
      double z = normal(rng);
      if (!gate) x = z;
      else if (shape.gates == ProblemShape::Gates::NearZero) x = -std::log1p(std::exp(-(z + 6)));
      else if (shape.gates == ProblemShape::Gates::NearClamp) x = -5 + 0.2 * z;
      else x = -std::log1p(std::exp(-z));  // log(sigmoid(z))
    }
  };
  for (const rir::Decl& in : program.inputs) {
    std::vector<int64_t> s = {p.batch, p.time, p.heads};
    for (const std::string& d : in.shape) s.push_back(p.dims.at(d));
    Tensor t(s);
    fill(t, in.isGate);
    p.inputs[in.name] = std::move(t);
  }
  for (const rir::Decl& prm : program.params) {
    if (prm.shape.empty()) continue;
    Tensor t({p.heads, p.dims.at(prm.shape[0])});
    fill(t, false);
    p.vectorParams[prm.name] = std::move(t);
  }
  if (shape.initialStates) {
    for (const rir::Decl& s : program.states) {
      if (!s.shapeKnown) continue;
      Tensor t({sequenceCount(p), p.heads, p.dims.at(s.shape[0]), p.dims.at(s.shape[1])});
      fill(t, false);
      p.initialStates[s.name] = std::move(t);
    }
  }
  return p;
}

TensorStats statistics(const Tensor& t) {
  TensorStats s;
  bool first = true;
  double sum = 0, sq = 0;
  int64_t n = 0;
  for (double x : t.data) {
    if (!std::isfinite(x)) {
      ++s.nonFinite;
      continue;
    }
    sum += x;
    sq += x * x;
    ++n;
    s.min = first ? x : std::min(s.min, x);
    s.max = first ? x : std::max(s.max, x);
    first = false;
  }
  if (n) {
    s.mean = sum / static_cast<double>(n);
    s.rms = std::sqrt(sq / static_cast<double>(n));
  }
  return s;
}

double rmsErrorRatio(const Tensor& reference, const Tensor& x) {
  double diff = 0, ref = 0;
  size_t n = std::min(reference.data.size(), x.data.size());
  for (size_t i = 0; i < n; ++i) {
    double d = reference.data[i] - x.data[i];
    diff += d * d;
    ref += reference.data[i] * reference.data[i];
  }
  double count = n ? static_cast<double>(n) : 1.0;
  return std::sqrt(diff / count) / (std::sqrt(ref / count) + 1e-8);
}

void printStatistics(std::ostream& os, const Result& result, const char* outputLabel, const char* stateLabel) {
  auto line = [&](const char* kind, const std::string& name, const Tensor& t) {
    TensorStats s = statistics(t);
    std::string shape = "[";
    for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? ", " : "") + std::to_string(t.shape[i]);
    shape += "]";
    os << kind << ' ' << std::left << std::setw(8) << name << ' ' << std::setw(20) << shape << std::right
       << std::scientific << std::setprecision(6) << " mean " << s.mean << " rms " << s.rms << " min " << s.min
       << " max " << s.max;
    if (s.nonFinite) os << " non-finite " << s.nonFinite;
    os << std::defaultfloat << '\n';
  };
  for (const auto& [name, t] : result.outputs) line(outputLabel, name, t);
  for (const auto& [name, t] : result.finalStates) line(stateLabel, name, t);
}

}  // namespace lina::reference
