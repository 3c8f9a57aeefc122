// library/model: token sampling (greedy, temperature, top-k, top-p) and sharded checkpoints.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "library/model/checkpoint.h"
#include "library/model/sampling.h"
#include "support/error.h"

namespace lina::model {
namespace {

TEST(Sampling, GreedyLimitsAndDistribution) {
  std::mt19937_64 rng(1);
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 1.9f};
  SamplingOptions greedy;
  EXPECT_EQ(sampleToken(logits, greedy, rng), 1);
  SamplingOptions k1{1.5, 1, 1.0};
  EXPECT_EQ(sampleToken(logits, k1, rng), 1) << "top-k 1 is greedy";
  SamplingOptions p0{1.0, 0, 1e-6};
  for (int i = 0; i < 20; ++i) EXPECT_EQ(sampleToken(logits, p0, rng), 1) << "a tiny top-p keeps the best token only";
  // p(1) = 3/4 at temperature 1 for logits {0, log 3}.
  const std::vector<float> two = {0.f, std::log(3.f)};
  SamplingOptions t1{1.0, 0, 1.0};
  int ones = 0;
  for (int i = 0; i < 20000; ++i) ones += sampleToken(two, t1, rng) == 1;
  EXPECT_NEAR(ones / 20000.0, 0.75, 0.02);
  // Top-k 2 of four equal logits: only the first two (ties by index).
  SamplingOptions k2{1.0, 2, 1.0};
  for (int i = 0; i < 200; ++i) EXPECT_LT(sampleToken({1.f, 1.f, 1.f, 1.f}, k2, rng), 2);
  // Top-p 0.5 over {0.6, 0.3, 0.1}: only the first token carries the mass.
  const std::vector<float> three = {std::log(0.6f), std::log(0.3f), std::log(0.1f)};
  SamplingOptions p5{1.0, 0, 0.5};
  for (int i = 0; i < 200; ++i) EXPECT_EQ(sampleToken(three, p5, rng), 0);
  // The same seed draws the same tokens.
  std::mt19937_64 a(7), b(7);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sampleToken(logits, t1, a), sampleToken(logits, t1, b));
}

TEST(Sampling, BadOptionsNameTheFlag) {
  auto message = [](SamplingOptions o) {
    try {
      o.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({-1, 0, 1}).find("--temperature: expected a number >= 0"), std::string::npos);
  EXPECT_NE(message({1, -3, 1}).find("--top-k: expected an integer >= 0"), std::string::npos);
  EXPECT_NE(message({1, 0, 0}).find("--top-p: expected a number in (0, 1]"), std::string::npos);
  EXPECT_NE(message({1, 0, 1.5}).find("--top-p"), std::string::npos);
}

// A checkpoint split into two shards with an index opens like the single file.
TEST(Checkpoint, ShardedIndex) {
  ModelConfig c;
  c.hiddenSize = 64;
  c.numLayers = 2;
  c.numHeads = 2;
  c.vocabSize = 50;
  c.tieWordEmbeddings = false;
  const std::string one = ::testing::TempDir() + "lina_shard_one_" + std::to_string(::getpid());
  writeRandomCheckpoint(c, one, DType::BF16, 3);
  const SafetensorsFile whole = SafetensorsFile::open(one + "/model.safetensors");
  const std::string dir = ::testing::TempDir() + "lina_shard_two_" + std::to_string(::getpid());
  ::mkdir(dir.c_str(), 0755);
  std::vector<TensorData> a, b;
  std::string map;
  for (const auto& [name, v] : whole.tensors()) {
    const auto* p = static_cast<const unsigned char*>(v.data);
    const bool first = name.find("layers.1.") == std::string::npos;
    (first ? a : b).push_back({name, v.dtype, v.shape, std::vector<unsigned char>(p, p + v.bytes)});
    map += std::string(map.empty() ? "" : ", ") + "\"" + name + "\": \"" + (first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors") + "\"";
  }
  writeSafetensors(dir + "/model-00001-of-00002.safetensors", a);
  writeSafetensors(dir + "/model-00002-of-00002.safetensors", b);
  std::ofstream(dir + "/model.safetensors.index.json") << "{\"metadata\": {}, \"weight_map\": {" << map << "}}";
  std::ofstream(dir + "/config.json") << configJson(c);
  const Checkpoint ck = Checkpoint::open(dir);
  EXPECT_EQ(ck.files(), 2u);
  EXPECT_FALSE(ck.lmHeadTied());
  const TensorView& t = ck.tensor("model.layers.1.mlp.down_proj.weight");
  EXPECT_EQ(0, std::memcmp(t.data, whole.tensor("model.layers.1.mlp.down_proj.weight").data, t.bytes));
  // An index naming a shard that does not hold the tensor.
  std::ofstream(dir + "/model.safetensors.index.json")
      << "{\"weight_map\": {" << map << ", \"model.ghost\": \"model-00001-of-00002.safetensors\"}}";
  try {
    (void)Checkpoint::open(dir);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'model.ghost'"), std::string::npos) << e.what();
  }
  std::ofstream(dir + "/model.safetensors.index.json") << "{\"weight_map\": {\"x\": \"../escape.safetensors\"}}";
  try {
    (void)Checkpoint::open(dir);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must name a file in the directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lina::model
