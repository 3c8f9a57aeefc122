// library/model: config.json parsing (fla's keys and defaults, research/fla-spec.md §5-6), the
// safetensors reader and writer, and checkpoint validation, with every bad input an error that
// names the file, the key or tensor, the expected and the actual value.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "library/model/checkpoint.h"
#include "library/model/config.h"
#include "library/model/safetensors.h"
#include "support/error.h"

namespace lina::model {
namespace {

const std::string kModels = std::string(LINA_SOURCE_DIR) + "/library/models/";

std::string tempDir(const std::string& name) {
  std::string d = ::testing::TempDir() + "lina_model_" + name + "_" + std::to_string(::getpid());
  ::mkdir(d.c_str(), 0755);
  return d;
}

void expectError(const std::function<void()>& f, std::initializer_list<const char*> needles) {
  try {
    f();
    ADD_FAILURE() << "expected a lina::Error";
  } catch (const Error& e) {
    for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what() << "\n(wanted: " << n << ")";
  }
}

// The three shipped 340M configs give fla's shapes and sizes (§5.3-5.5).
TEST(ModelConfig, The340MConfigsMatchFlasShapes) {
  const ModelConfig gla = loadConfig(kModels + "gla-340M.json");
  EXPECT_EQ(gla.type, ModelType::GLA);
  EXPECT_EQ(gla.headK(), 128);
  EXPECT_EQ(gla.headV(), 256);
  EXPECT_EQ(gla.mlpSize(), 2816);
  EXPECT_TRUE(gla.tieWordEmbeddings);
  EXPECT_NEAR(static_cast<double>(parameterCount(gla)) / 1e6, 341.7, 0.1);

  const ModelConfig ret = loadConfig(kModels + "retnet-340M.json");
  EXPECT_EQ(ret.type, ModelType::RetNet);
  EXPECT_EQ(ret.headK(), 256);
  EXPECT_EQ(ret.headV(), 512);
  EXPECT_EQ(ret.mlpSize(), 1536);
  EXPECT_TRUE(ret.useOutputGate);
  EXPECT_NEAR(static_cast<double>(parameterCount(ret)) / 1e6, 347, 1.0);

  const ModelConfig gsa = loadConfig(kModels + "gsa-340M.json");
  EXPECT_EQ(gsa.type, ModelType::GSA);
  EXPECT_EQ(gsa.headK(), 256);
  EXPECT_EQ(gsa.numSlots, 64);
  EXPECT_EQ(gsa.gateLogitNormalizer, 4);
  EXPECT_FALSE(gsa.elementwiseAffine);
  EXPECT_EQ(gsa.featureMap, "swish");
  EXPECT_NEAR(static_cast<double>(parameterCount(gsa)) / 1e6, 347, 1.0);

  // A few names and shapes of GLA's state dict (§5.3).
  bool sawGk = false, sawNorm = false, sawHead = false;
  for (const ExpectedTensor& t : expectedTensors(gla)) {
    if (t.name == "model.layers.0.attn.gk_proj.1.weight") sawGk = t.shape == std::vector<int64_t>{512, 16};
    if (t.name == "model.layers.23.attn.g_norm_swish_gate.weight") sawNorm = t.shape == std::vector<int64_t>{256};
    if (t.name == "lm_head.weight") sawHead = true;
  }
  EXPECT_TRUE(sawGk && sawNorm);
  EXPECT_FALSE(sawHead) << "tied: no lm_head.weight";
}

TEST(ModelConfig, BadConfigsNameTheKey) {
  const std::string f = "config.json";
  expectError([&] { (void)parseConfig("{", f); }, {"config.json", "not valid JSON"});
  expectError([&] { (void)parseConfig("{}", f); }, {"'model_type' is missing"});
  expectError([&] { (void)parseConfig(R"({"model_type": "llama"})", f); }, {"'model_type'", "'gla', 'retnet', 'gsa' or 'rwkv6'", "\"llama\""});
  expectError([&] { (void)parseConfig(R"({"model_type": "gla", "attn": {"layers": [1]}})", f); },
              {"'attn'", "hybrid softmax-attention", "not supported"});
  expectError([&] { (void)parseConfig(R"({"model_type": "gla", "hidden_size": -4})", f); }, {"'hidden_size'", "integer >= 1", "-4"});
  expectError([&] { (void)parseConfig(R"({"model_type": "gla", "hidden_act": "gelu"})", f); }, {"'hidden_act'", "'swish'", "gelu"});
  expectError([&] { (void)parseConfig(R"({"model_type": "gla", "frobnicate": 3})", f); }, {"'frobnicate'", "not a gla config key"});
  expectError([&] { (void)parseConfig(R"({"model_type": "gla", "num_heads": 4, "num_kv_heads": 3})", f); }, {"num_kv_heads 3"});
  expectError([&] { (void)parseConfig(R"({"model_type": "gsa", "expand_v": 2})", f); }, {"expand_v must be 1"});
  expectError([&] { (void)loadConfig("/nonexistent/config.json"); }, {"/nonexistent/config.json", "cannot open"});
  // Keys fla ignores are accepted; GSA's misspelled constructor keys too.
  EXPECT_NO_THROW((void)parseConfig(R"({"model_type": "retnet", "rms_norm_eps": 1e-6, "use_short_conv": true,
                                       "architectures": ["RetNetForCausalLM"], "transformers_version": "4.40.0"})", f));
  EXPECT_EQ(parseConfig(R"({"model_type": "gsa", "exapnd_k": 0.5, "expand_v": 1})", f).expandK, 0.5);
  // configJson round-trips.
  const ModelConfig gla = loadConfig(kModels + "gla-340M.json");
  const ModelConfig back = parseConfig(configJson(gla), "round trip");
  EXPECT_EQ(parameterCount(back), parameterCount(gla));
  EXPECT_EQ(expectedTensors(back).size(), expectedTensors(gla).size());
  // RWKV6: its own keys and defaults (hidden_ratio 3.5, the FFN rounded up to 32, sqrelu).
  expectError([&] { (void)parseConfig(R"({"model_type": "rwkv6", "hidden_act": "swish"})", f); }, {"'hidden_act'", "'sqrelu'"});
  expectError([&] { (void)parseConfig(R"({"model_type": "rwkv6", "num_heads": 4, "num_kv_heads": 2})", f); },
              {"'num_kv_heads'", "RWKV6 has no grouped heads"});
  const ModelConfig rwkv = loadConfig(kModels + "rwkv6-tiny.json");
  EXPECT_EQ(rwkv.type, ModelType::RWKV6);
  EXPECT_EQ(rwkv.mlpSize(), 224);  // int(64 * 3.5) = 224, a multiple of 32
  const ModelConfig rwkvBack = parseConfig(configJson(rwkv), "round trip");
  EXPECT_EQ(parameterCount(rwkvBack), parameterCount(rwkv));
  EXPECT_EQ(rwkvBack.projLowRankDim, 8);
  EXPECT_EQ(rwkvBack.hiddenRatio, 3.5);
}

TEST(Safetensors, WritesAndReadsBack) {
  const std::string path = tempDir("rw") + "/t.safetensors";
  TensorData a{"b", DType::F32, {2, 3}, std::vector<unsigned char>(24)};
  for (int i = 0; i < 6; ++i) {
    float x = static_cast<float>(i) * 0.5f;
    std::memcpy(a.bytes.data() + 4 * i, &x, 4);
  }
  TensorData b{"a", DType::BF16, {4}, std::vector<unsigned char>(8, 0x3f)};
  writeSafetensors(path, {a, b}, {{"format", "pt"}});
  const SafetensorsFile f = SafetensorsFile::open(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const TensorView& t = f.tensor("b");
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(static_cast<const float*>(t.data)[5], 2.5f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.tensor("a").data) % 8, 0u) << "8-byte aligned data";
  expectError([&] { (void)f.tensor("bb"); }, {"t.safetensors", "no tensor 'bb'", "closest name is 'b'"});
  TensorData wrong{"w", DType::F32, {2}, std::vector<unsigned char>(4)};
  expectError([&] { writeSafetensors(path, {wrong}); }, {"tensor 'w'", "8 bytes; got 4"});
  EXPECT_NO_THROW((void)SafetensorsFile::open(path)) << "a failed write leaves the file as it was";
}

TEST(Safetensors, BadFilesAreErrorsNotCrashes) {
  const std::string dir = tempDir("bad");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    return dir + "/" + name;
  };
  auto withHeader = [](const std::string& json, size_t dataBytes) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((json.size() >> (8 * i)) & 0xff);
    return s + json + std::string(dataBytes, '\0');
  };
  expectError([&] { (void)SafetensorsFile::open(dir + "/missing.safetensors"); }, {"missing.safetensors", "cannot open"});
  expectError([&] { (void)SafetensorsFile::open(write("short", "abc")); }, {"expected at least 8 bytes", "got 3"});
  expectError([&] { (void)SafetensorsFile::open(write("len", withHeader("{}", 0).substr(0, 8) + "{")); }, {"header length", "truncated"});
  expectError([&] { (void)SafetensorsFile::open(write("json", withHeader("{oops", 0))); }, {"not valid JSON"});
  const std::string one = R"({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})";
  expectError([&] { (void)SafetensorsFile::open(write("trunc", withHeader(one, 8))); }, {"tensor 'x'", "leave the data region of 8 bytes"});
  expectError([&] {
    (void)SafetensorsFile::open(write("count", withHeader(R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})", 16)));
  }, {"tensor 'x'", "F32 x shape [3] is 12 bytes", "span 16"});
  expectError([&] {
    (void)SafetensorsFile::open(write("dtype", withHeader(R"({"x": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}})", 1)));
  }, {"dtype \"F8\""});
  expectError([&] {
    (void)SafetensorsFile::open(write("overlap", withHeader(R"({"x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                                                              "y": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})", 8)));
  }, {"overlap"});
  EXPECT_NO_THROW((void)SafetensorsFile::open(write("ok", withHeader(one, 16))));
}

ModelConfig tinyConfig(ModelType type) {
  ModelConfig c;
  c.type = type;
  c.hiddenSize = 64;
  c.numLayers = 2;
  c.numHeads = 2;
  c.vocabSize = 100;
  c.tieWordEmbeddings = true;
  if (type == ModelType::RetNet) c.expandK = 1, c.expandV = 2, c.hiddenRatio = 2;
  if (type == ModelType::GSA) c.expandK = 1, c.expandV = 1, c.numSlots = 8, c.featureMap = "swish", c.elementwiseAffine = false;
  return c;
}

TEST(Checkpoint, RandomInitOpensAndValidates) {
  for (ModelType type : {ModelType::GLA, ModelType::RetNet, ModelType::GSA}) {
    const std::string dir = tempDir(std::string("init_") + modelTypeName(type));
    const ModelConfig c = tinyConfig(type);
    writeRandomCheckpoint(c, dir, DType::BF16, 7);
    const Checkpoint ck = Checkpoint::open(dir);
    EXPECT_EQ(ck.config().type, type);
    EXPECT_TRUE(ck.lmHeadTied());
    EXPECT_EQ(ck.tensor("lm_head.weight").data, ck.tensor("model.embeddings.weight").data) << "tied: the embedding";
    const TensorView& norm = ck.tensor("model.norm.weight");
    EXPECT_EQ(static_cast<const uint16_t*>(norm.data)[0], 0x3f80) << "norm weights are 1 (bf16)";
  }
}

TEST(Checkpoint, BadCheckpointsNameTheTensor) {
  const ModelConfig c = tinyConfig(ModelType::GLA);
  const std::string dir = tempDir("badck");
  writeRandomCheckpoint(c, dir, DType::F32, 1);
  const SafetensorsFile good = SafetensorsFile::open(dir + "/model.safetensors");
  auto rewrite = [&](const std::function<void(std::vector<TensorData>&)>& edit) {
    std::vector<TensorData> ts;
    for (const auto& [name, v] : good.tensors()) {
      const auto* b = static_cast<const unsigned char*>(v.data);
      ts.push_back({name, v.dtype, v.shape, std::vector<unsigned char>(b, b + v.bytes)});
    }
    edit(ts);
    const std::string d2 = tempDir("badck2");
    std::ofstream(d2 + "/config.json") << configJson(c);
    writeSafetensors(d2 + "/model.safetensors", ts);
    return d2;
  };
  expectError([&] {
    (void)Checkpoint::open(rewrite([](std::vector<TensorData>& ts) {
      std::erase_if(ts, [](const TensorData& t) { return t.name == "model.layers.1.attn.q_proj.weight"; });
    }));
  }, {"'model.layers.1.attn.q_proj.weight' is missing", "[32, 64]"});
  expectError([&] {
    (void)Checkpoint::open(rewrite([](std::vector<TensorData>& ts) {
      for (TensorData& t : ts)
        if (t.name == "model.norm.weight") t.shape = {16, 4};
    }));
  }, {"'model.norm.weight'", "expected shape [64]", "got [16, 4]"});
  expectError([&] {
    (void)Checkpoint::open(rewrite([](std::vector<TensorData>& ts) { ts.push_back({"model.extra", DType::F32, {1}, std::vector<unsigned char>(4)}); }));
  }, {"'model.extra'", "not used by a gla model"});
  expectError([&] { (void)Checkpoint::open(tempDir("empty")); }, {"no config.json"});
  // A truncated checkpoint file.
  const std::string d3 = rewrite([](std::vector<TensorData>&) {});
  {
    std::ifstream in(d3 + "/model.safetensors", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(d3 + "/model.safetensors", std::ios::binary | std::ios::trunc) << bytes.substr(0, bytes.size() / 2);
  }
  expectError([&] { (void)Checkpoint::open(d3); }, {"model.safetensors", "leave the data region"});
}

}  // namespace
}  // namespace lina::model
