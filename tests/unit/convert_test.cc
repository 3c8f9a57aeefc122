// lina-convert llama-to-gla / llama-to-gsa (library/convert): a tiny Mistral-shaped checkpoint
// (GQA: 4 heads, 2 kv heads; bf16; sharded or not) made here with the Hugging Face names and
// shapes, converted; every copied tensor is byte-identical to its source, every new one has fla's
// shape and init (weights ~ N(0, 0.02), biases 0, norms 1), the result loads as a checkpoint and
// runs in the CPU model, and bad sources fail naming the key.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "library/convert/llama_to_fla.h"
#include "library/model/checkpoint.h"
#include "library/model/cpu_model.h"
#include "library/model/safetensors.h"
#include "support/error.h"

namespace lina::convert {
namespace {

using model::DType;
using model::TensorData;

std::string tempDir(const std::string& name) {
  const std::string d =
      ::testing::TempDir() + "lina_convert_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

TensorData randomBf16(const std::string& name, std::vector<int64_t> shape, std::mt19937_64& rng) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  TensorData t{name, DType::BF16, shape, std::vector<unsigned char>(static_cast<size_t>(n) * 2)};
  std::normal_distribution<float> normal(0.f, 1.f);
  for (int64_t i = 0; i < n; ++i) {
    const float x = normal(rng);
    uint32_t u;
    std::memcpy(&u, &x, 4);
    const uint16_t h = static_cast<uint16_t>(u >> 16);
    std::memcpy(t.bytes.data() + 2 * i, &h, 2);
  }
  return t;
}

// A Mistral-style model directory: hidden 64, 2 layers, 4 heads of 16, 2 kv heads, MLP 96,
// vocabulary 100, untied; plus a rotary buffer (dropped by the conversion).
void writeMistral(const std::string& dir, bool sharded, const std::string& modelType = "mistral") {
  std::ofstream(dir + "/config.json")
      << "{\"model_type\": \"" << modelType
      << "\", \"hidden_size\": 64, \"num_hidden_layers\": 2, "
         "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 96, "
         "\"vocab_size\": 100, \"rms_norm_eps\": 1e-05, \"tie_word_embeddings\": false, "
         "\"rope_theta\": 10000.0, \"torch_dtype\": \"bfloat16\"}";
  std::ofstream(dir + "/tokenizer_config.json") << "{}";
  std::mt19937_64 rng(7);
  std::vector<TensorData> a, b;
  a.push_back(randomBf16("model.embed_tokens.weight", {100, 64}, rng));
  for (int i = 0; i < 2; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    std::vector<TensorData>& part = sharded && i == 1 ? b : a;
    part.push_back(randomBf16(p + "input_layernorm.weight", {64}, rng));
    part.push_back(randomBf16(p + "self_attn.q_proj.weight", {64, 64}, rng));
    part.push_back(randomBf16(p + "self_attn.k_proj.weight", {32, 64}, rng));
    part.push_back(randomBf16(p + "self_attn.v_proj.weight", {32, 64}, rng));
    part.push_back(randomBf16(p + "self_attn.o_proj.weight", {64, 64}, rng));
    part.push_back(randomBf16(p + "self_attn.rotary_emb.inv_freq", {8}, rng));
    part.push_back(randomBf16(p + "post_attention_layernorm.weight", {64}, rng));
    part.push_back(randomBf16(p + "mlp.gate_proj.weight", {96, 64}, rng));
    part.push_back(randomBf16(p + "mlp.up_proj.weight", {96, 64}, rng));
    part.push_back(randomBf16(p + "mlp.down_proj.weight", {64, 96}, rng));
  }
  (sharded ? b : a).push_back(randomBf16("model.norm.weight", {64}, rng));
  (sharded ? b : a).push_back(randomBf16("lm_head.weight", {100, 64}, rng));
  if (!sharded) {
    model::writeSafetensors(dir + "/model.safetensors", a);
    return;
  }
  model::writeSafetensors(dir + "/model-00001-of-00002.safetensors", a);
  model::writeSafetensors(dir + "/model-00002-of-00002.safetensors", b);
  std::ofstream index(dir + "/model.safetensors.index.json");
  index << "{\"metadata\": {}, \"weight_map\": {";
  bool first = true;
  for (auto* part : {&a, &b})
    for (const TensorData& t : *part) {
      index << (first ? "" : ", ") << "\"" << t.name << "\": \"model-0000" << (part == &a ? 1 : 2)
            << "-of-00002.safetensors\"";
      first = false;
    }
  index << "}}";
}

float bf16At(const model::TensorView& v, int64_t i) {
  uint16_t h;
  std::memcpy(&h, static_cast<const unsigned char*>(v.data) + 2 * i, 2);
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

void expectError(const std::function<void()>& f, std::initializer_list<const char*> needles) {
  try {
    f();
    ADD_FAILURE() << "expected a lina::Error";
  } catch (const Error& e) {
    for (const char* n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos)
          << e.what() << "\n(wanted: " << n << ")";
  }
}

void checkConversion(model::ModelType target, bool shardedSource, int64_t maxShard) {
  const std::string src = tempDir("src"), dst = tempDir("dst");
  writeMistral(src, shardedSource);
  LlamaConversion c;
  c.source = src;
  c.destination = dst;
  c.target = target;
  c.maxShardBytes = maxShard;
  const ConversionReport r = convertLlama(c);
  EXPECT_EQ(r.copied, 2 * 9 + 3)
      << r.text();  // per layer 2 norms, q/k/v/o, 3 MLP; embeddings, norm, lm_head
  EXPECT_EQ(r.dropped, 2) << "the rotary buffers";
  EXPECT_GT(r.initialised, 0);
  EXPECT_EQ(r.config.kvHeads(), 2);
  EXPECT_DOUBLE_EQ(r.config.normEps, 1e-5);
  EXPECT_TRUE(std::filesystem::exists(dst + "/tokenizer_config.json"));
  if (maxShard < (int64_t{1} << 20)) {
    EXPECT_TRUE(std::filesystem::exists(dst + "/model.safetensors.index.json"));
  }

  // Loads as a checkpoint (every tensor the config implies, shapes, dtype), and runs.
  const model::Checkpoint out = model::Checkpoint::open(dst);
  std::vector<std::unique_ptr<model::SafetensorsFile>> sources;
  for (const auto& entry : std::filesystem::directory_iterator(src))
    if (entry.path().extension() == ".safetensors")
      sources.push_back(
          std::make_unique<model::SafetensorsFile>(model::SafetensorsFile::open(entry.path())));
  auto source = [&](const std::string& name) -> const model::TensorView& {
    for (auto& f : sources)
      if (f->has(name)) return f->tensor(name);
    throw Error("no source tensor " + name);
  };
  for (const TensorRecord& t : r.tensors) {
    if (t.kind == TensorRecord::Dropped) continue;
    const model::TensorView& v = out.tensor(t.name);
    EXPECT_EQ(v.shape, t.shape) << t.name;
    EXPECT_EQ(v.dtype, DType::BF16) << t.name << ": the dtype is kept";
    if (t.kind == TensorRecord::Copied) {
      const model::TensorView& s = source(t.source);
      ASSERT_EQ(s.bytes, v.bytes) << t.name;
      EXPECT_EQ(std::memcmp(s.data, v.data, v.bytes), 0)
          << t.name << " is not bit-identical to " << t.source;
      continue;
    }
    double sum = 0, sq = 0;
    const int64_t n = v.numel();
    for (int64_t i = 0; i < n; ++i) sum += bf16At(v, i), sq += double(bf16At(v, i)) * bf16At(v, i);
    const double mean = sum / n, sd = std::sqrt(std::max(0.0, sq / n - mean * mean));
    if (t.name.find("norm") != std::string::npos) {
      EXPECT_EQ(mean, 1.0) << t.name;
      EXPECT_EQ(sd, 0.0) << t.name;
    } else if (t.name.size() > 5 && t.name.substr(t.name.size() - 5) == ".bias") {
      EXPECT_EQ(sq, 0.0) << t.name;
    } else {
      EXPECT_NEAR(mean, 0.0, 0.006) << t.name;
      EXPECT_NEAR(sd, 0.02, 0.004) << t.name << " (fla: N(0, initializer_range = 0.02))";
    }
  }
  const model::CpuModel m(out);
  model::CpuModel::State st = m.newState();
  for (int64_t token : {1, 5, 42}) {
    const std::vector<float> logits = m.step(token, st);
    ASSERT_EQ(logits.size(), 100u);
    for (float x : logits) ASSERT_TRUE(std::isfinite(x));
  }
  std::filesystem::remove_all(src);
  std::filesystem::remove_all(dst);
}

TEST(LlamaToFla, MistralToGla) {
  checkConversion(model::ModelType::GLA, false, int64_t{5} << 30);
}
TEST(LlamaToFla, ShardedMistralToGsaInSmallShards) {
  checkConversion(model::ModelType::GSA, true, 20000);
}

TEST(LlamaToFla, BadSourcesNameTheKey) {
  const std::string src = tempDir("bad"), dst = tempDir("baddst");
  LlamaConversion c;
  c.source = src;
  c.destination = dst;
  expectError([&] { convertLlama(c); }, {"no config.json", src.c_str()});
  writeMistral(src, false, "gpt2");
  expectError([&] { convertLlama(c); }, {"model_type", "\"llama\" or \"mistral\"", "gpt2"});
  writeMistral(src, false);
  c.configOverrides["num_heads"] = "2";  // head dim 32: the copied q/k/v no longer fit
  expectError([&] { convertLlama(c); },
              {"self_attn.k_proj.weight", "shape: expected [64, 64]", "got [32, 64]", "--config"});
  c.configOverrides.clear();
  c.configOverrides["no_such_key"] = "1";
  expectError([&] { convertLlama(c); }, {"no_such_key"});
  c.configOverrides.clear();
  std::filesystem::remove(src + "/model.safetensors");
  expectError([&] { convertLlama(c); }, {"no model.safetensors"});
  std::filesystem::remove_all(src);
  std::filesystem::remove_all(dst);
}

}  // namespace
}  // namespace lina::convert
