#include "library/model/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "support/error.h"

namespace lina::model {

void SamplingOptions::validate() const {
  if (!(temperature >= 0) || !std::isfinite(temperature))
    throw Error("--temperature: expected a number >= 0 (0: greedy); got " + std::to_string(temperature));
  if (topK < 0) throw Error("--top-k: expected an integer >= 0 (0: off); got " + std::to_string(topK));
  if (!(topP > 0 && topP <= 1)) throw Error("--top-p: expected a number in (0, 1] (1: off); got " + std::to_string(topP));
}

int64_t sampleToken(const std::vector<float>& logits, const SamplingOptions& o, std::mt19937_64& rng) {
  if (logits.empty()) throw Error("sampleToken: no logits");
  if (o.greedy()) return std::max_element(logits.begin(), logits.end()) - logits.begin();
  // Indices by logit, highest first (ties by index, so a seed gives one answer everywhere).
  std::vector<int64_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });
  size_t keep = order.size();
  if (o.topK > 0) keep = std::min(keep, static_cast<size_t>(o.topK));
  const double top = logits[order[0]];
  std::vector<double> p(keep);
  double z = 0;
  for (size_t i = 0; i < keep; ++i) z += (p[i] = std::exp((logits[order[i]] - top) / o.temperature));
  for (double& x : p) x /= z;
  if (o.topP < 1) {  // the smallest prefix whose mass reaches top_p (at least one token)
    double mass = 0;
    size_t n = 0;
    while (n < keep && (n == 0 || mass < o.topP)) mass += p[n++];
    keep = n;
    p.resize(keep);
  }
  std::discrete_distribution<size_t> draw(p.begin(), p.end());
  return order[draw(rng)];
}

}  // namespace lina::model
