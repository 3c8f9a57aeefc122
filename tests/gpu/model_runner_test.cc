// The GPU model runner (library/model/gpu_model.h) against the CPU runner (the fp32 reference
// blocks, library/model/cpu_model.h) on random checkpoints: the shipped tiny configs (short
// convolutions, GQA, RoPE, odd head sizes) and one with 340M-like head sizes. Prompts of
// different lengths are packed in one prefill (one past 64 tokens, so the chunked kernels run);
// then teacher-forced decode steps, greedy generation under CUDA graphs, and the bf16 path.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "gpu_test_support.h"
#include "library/model/checkpoint.h"
#include "library/model/cpu_model.h"
#include "library/model/gpu_model.h"

namespace lina::model {
namespace {

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Case {
  std::string name, configJson;
};

std::vector<Case> cases() {
  const std::string dir = std::string(LINA_SOURCE_DIR) + "/library/models/";
  return {
      {"gla_tiny", readFile(dir + "gla-tiny.json")},
      {"retnet_tiny", readFile(dir + "retnet-tiny.json")},
      {"gsa_tiny", readFile(dir + "gsa-tiny.json")},
      {"gla_heads128",
       R"({"model_type": "gla", "hidden_size": 512, "num_hidden_layers": 2, "num_heads": 2, "expand_k": 0.5, "expand_v": 1,
           "vocab_size": 512, "tie_word_embeddings": true, "initializer_range": 0.05})"},
      {"retnet_heads128",
       R"({"model_type": "retnet", "hidden_size": 256, "num_hidden_layers": 2, "num_heads": 2, "expand_k": 1, "expand_v": 2,
           "hidden_ratio": 2, "vocab_size": 512, "initializer_range": 0.05})"},
      {"gla_gqa_conv",  // two query heads per kv head (one pre-attention block per group), short convolutions
       R"({"model_type": "gla", "hidden_size": 256, "num_hidden_layers": 2, "num_heads": 4, "num_kv_heads": 2,
           "expand_k": 0.5, "expand_v": 1, "use_short_conv": true, "vocab_size": 512, "initializer_range": 0.05})"},
      {"gsa_heads128",
       R"({"model_type": "gsa", "hidden_size": 256, "num_hidden_layers": 2, "num_heads": 2, "num_slots": 64,
           "vocab_size": 512, "tie_word_embeddings": true, "initializer_range": 0.05, "elementwise_affine": false})"},
  };
}

// max |a - b| / max |b|, and the RMS of a - b over the RMS of b.
std::pair<double, double> errors(const std::vector<float>& a, const std::vector<float>& b) {
  double maxDiff = 0, maxRef = 0, ss = 0, ssRef = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    maxDiff = std::max(maxDiff, std::fabs(d));
    maxRef = std::max(maxRef, std::fabs(static_cast<double>(b[i])));
    ss += d * d;
    ssRef += static_cast<double>(b[i]) * b[i];
  }
  if (!std::isfinite(maxDiff)) return {1e30, 1e30};
  return {maxDiff / std::max(maxRef, 1e-30), std::sqrt(ss / std::max(ssRef, 1e-30))};
}

class GpuModelRunner : public ::testing::TestWithParam<Case> {};

TEST_P(GpuModelRunner, MatchesTheCpuRunner) {
  requireGpu();
  if (IsSkipped()) return;
  const Case& c = GetParam();
  const std::string dir = ::testing::TempDir() + "lina_gpu_model_" + c.name + "_" + std::to_string(::getpid());
  writeRandomCheckpoint(parseConfig(c.configJson, c.name), dir, DType::BF16, 7);
  const Checkpoint ckpt = Checkpoint::open(dir);
  const CpuModel cpu(ckpt);
  const int64_t vocab = ckpt.config().vocabSize;
  std::mt19937_64 rng(11);
  std::vector<std::vector<int64_t>> prompts = {std::vector<int64_t>(100), std::vector<int64_t>(7), std::vector<int64_t>(1)};
  for (auto& p : prompts)
    for (auto& t : p) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));

  // The CPU reference: logits after each prompt, then after 6 greedy steps.
  std::vector<CpuModel::State> states;
  std::vector<std::vector<float>> cpuLast;
  std::vector<std::vector<std::vector<float>>> cpuSteps(prompts.size());
  std::vector<std::vector<int64_t>> cpuTokens(prompts.size());
  for (size_t n = 0; n < prompts.size(); ++n) {
    states.push_back(cpu.newState());
    std::vector<float> l;
    for (int64_t t : prompts[n]) l = cpu.step(t, states[n]);
    cpuLast.push_back(l);
    for (int s = 0; s < 6; ++s) {
      const int64_t next = std::max_element(l.begin(), l.end()) - l.begin();
      cpuTokens[n].push_back(next);
      l = cpu.step(next, states[n]);
      cpuSteps[n].push_back(l);
    }
  }

  for (const char* dtype : {"fp32", "bf16"}) {
    SCOPED_TRACE(dtype);
    const bool exact = std::string(dtype) == "fp32";
    const double tolMax = exact ? 2e-3 : 8e-2, tolRms = exact ? 1e-3 : 5e-2;  // bf16: RoPE tables and every projection rounded
    GpuModelOptions opt;
    opt.dtype = dtype;
    opt.maxBatch = 4;
    opt.maxPrefillTokens = 256;
    GpuModel gpu(ckpt, opt);
    const auto last = gpu.prefill(prompts);
    ASSERT_EQ(last.size(), prompts.size());
    double worst = 0;
    for (size_t n = 0; n < prompts.size(); ++n) {
      const auto [mx, rms] = errors(last[n], cpuLast[n]);
      worst = std::max(worst, mx);
      EXPECT_LT(mx, tolMax) << "prefill logits, prompt " << n;
      EXPECT_LT(rms, tolRms) << "prefill logits, prompt " << n;
    }
    for (int s = 0; s < 6; ++s) {
      std::vector<int64_t> feed;
      for (size_t n = 0; n < prompts.size(); ++n) feed.push_back(cpuTokens[n][s]);
      const auto got = gpu.step(feed);
      for (size_t n = 0; n < prompts.size(); ++n) {
        const auto [mx, rms] = errors(got[n], cpuSteps[n][s]);
        worst = std::max(worst, mx);
        EXPECT_LT(mx, tolMax) << "decode step " << s << ", sequence " << n;
        EXPECT_LT(rms, tolRms) << "decode step " << s << ", sequence " << n;
      }
    }
    // Every position's logits of one prompt against the CPU's.
    const auto all = gpu.prefill({prompts[1]}, true);
    ASSERT_EQ(all.size(), prompts[1].size());
    CpuModel::State st = cpu.newState();
    for (size_t t = 0; t < prompts[1].size(); ++t) {
      const auto ref = cpu.step(prompts[1][t], st);
      EXPECT_LT(errors(all[t], ref).first, tolMax) << "position " << t;
    }
    log("model runner " + c.name + " " + dtype + ": worst max-abs error ratio " + std::to_string(worst));
    if (exact) {  // greedy generation (graphs from the second step on) agrees token for token
      GenerateOptions g;
      g.maxNewTokens = 7;
      g.stopAtEos = false;
      const GenerateResult r = gpu.generate(prompts, g);
      for (size_t n = 0; n < prompts.size(); ++n) {
        ASSERT_EQ(r.tokens[n].size(), 7u);
        for (int s = 0; s < 6; ++s) EXPECT_EQ(r.tokens[n][s], cpuTokens[n][s]) << "sequence " << n << ", token " << s;
      }
      GpuModelOptions eager = opt;
      eager.graphs = false;
      GpuModel gpuEager(ckpt, eager);
      const GenerateResult e = gpuEager.generate(prompts, g);
      EXPECT_EQ(e.tokens, r.tokens) << "CUDA graphs changed the tokens";
      // lina's GEMV (<= 4 rows) against cuBLAS for every projection, and a batch of one.
      GpuModelOptions blasOnly = opt;
      blasOnly.gemv = false;
      GpuModel gpuBlas(ckpt, blasOnly);
      EXPECT_EQ(gpuBlas.generate(prompts, g).tokens, r.tokens) << "the GEMV changed the tokens";
      const GenerateResult one = gpu.generate({prompts[0]}, g);
      EXPECT_EQ(one.tokens[0], r.tokens[0]) << "a batch of one decoded differently";
      // Sampling on the device is deterministic in its seed and stays in the top-k set.
      g.sampling.temperature = 0.8;
      g.sampling.topK = 5;
      g.seed = 3;
      const GenerateResult s1 = gpu.generate(prompts, g), s2 = gpu.generate(prompts, g);
      EXPECT_EQ(s1.tokens, s2.tokens);
      const auto firstLogits = gpu.prefill(prompts);
      for (size_t n = 0; n < prompts.size(); ++n) {
        std::vector<float> sorted = firstLogits[n];
        std::sort(sorted.rbegin(), sorted.rend());
        EXPECT_GE(firstLogits[n][s1.tokens[n][0]], sorted[4]) << "a sampled first token outside the top 5";
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GpuModelRunner, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

}  // namespace
}  // namespace lina::model
