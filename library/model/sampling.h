// Choosing the next token from logits as HF's generate does: greedy (temperature 0 or top-k 1),
// or temperature, then top-k, then top-p (nucleus) filtering, then a draw from the softmax.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace lina::model {

struct SamplingOptions {
  double temperature = 0;  // 0: greedy
  int64_t topK = 0;        // 0: no top-k filter
  double topP = 1;         // 1: no nucleus filter
  // Throws lina::Error naming the option, the expected and the actual value.
  void validate() const;
  bool greedy() const { return temperature == 0 || topK == 1; }
};

int64_t sampleToken(const std::vector<float>& logits, const SamplingOptions& options, std::mt19937_64& rng);

}  // namespace lina::model
