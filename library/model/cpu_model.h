// The CPU path of the model runner: fla's GLA, RetNet, GSA and RWKV6 blocks (research/fla-spec.md §5)
// one token at a time in fp32 from a validated checkpoint, with the recurrent states carried per
// sequence. It is the reference the GPU runner is checked against and what CI runs end to end
// (small models: plain loops, no BLAS).
#pragma once

#include <cstdint>
#include <vector>

#include "library/model/checkpoint.h"

namespace lina::model {

class CpuModel {
 public:
  explicit CpuModel(const Checkpoint& checkpoint);  // copies the weights to fp32

  // One sequence's recurrent state: per layer the attention state(s) (GLA/RetNet/RWKV6 [H][K][V],
  // GSA Hk [H][K][M] and Hv [H][M][V]), the short-convolution windows (RWKV6: the last attention
  // and channel-mix inputs of the token shift, [2][D]), and the position.
  struct State {
    std::vector<std::vector<float>> s1, s2;
    std::vector<std::vector<float>> conv;  // per layer: q, k, v windows [channels][W] back to back
    int64_t position = 0;
  };
  State newState() const;
  // Feeds `token` (0 <= token < vocab) at the state's position; returns the logits [vocab].
  std::vector<float> step(int64_t token, State& state) const;
  // Greedy continuation of `prompt`: up to `maxNew` tokens, stopping after the EOS id.
  std::vector<int64_t> greedy(const std::vector<int64_t>& prompt, int64_t maxNew, std::vector<float>* lastLogits = nullptr) const;
  const ModelConfig& config() const { return config_; }

 private:
  using Tensor = std::vector<float>;
  struct Layer {
    Tensor attnNorm, q, k, v, g, gk0, gk1, gk1b, f, o, gNorm, t2r, qConv, kConv, vConv, mlpNorm, up, gate, down;
  };
  struct Rwkv6Layer {  // fla's names, research/fla-spec.md §5.7
    Tensor preNormW, preNormB, attnNormW, attnNormB, xBias, bonus, xMu, xProj0, xProj2, r, w0, w2, w2b, k, v, g, gNormW,
        gNormB, o, ffnNormW, ffnNormB, keyMu, key, value, recMu, rec;
  };
  Tensor load(const Checkpoint& c, const std::string& name, bool required = true) const;
  void attention(const Layer& L, size_t layer, const Tensor& x, State& st, Tensor& out) const;
  // RWKV6 (cpu_rwkv6.cc): the weights, and one token through the blocks to the final hidden state.
  void loadRwkv6(const Checkpoint& c);
  void rwkv6Blocks(Tensor& h, State& st) const;
  void rwkv6Attention(const Rwkv6Layer& L, size_t layer, const Tensor& x, State& st, Tensor& out) const;
  ModelConfig config_;
  Tensor embed_, norm_, normBias_, lmHead_;
  std::vector<Layer> layers_;
  std::vector<Rwkv6Layer> rwkv6_;
};

}  // namespace lina::model
