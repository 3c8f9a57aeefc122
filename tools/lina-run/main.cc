// lina-run: runs a GLA / RetNet / GSA checkpoint in fla's layout, or writes a random one.
//
//   lina-run --model DIR (--token-ids 1,2,3 | --prompt TEXT) [--max-new-tokens N] [--temperature T] [--top-k K]
//            [--top-p P] [--seed S] [--dump-logits FILE]
//   lina-run --init CONFIG.json --out DIR [--seed S] [--dtype bf16|fp16|fp32]
//
// This is the CPU path (the blocks in fp32, one token at a time: library/model/cpu_model.h);
// greedy decoding (or temperature / top-k / top-p sampling, seeded), stopping at the config's EOS id. Prints the generated token ids on one line,
// then a line of prompt and decode tokens per second. --dump-logits writes the logits after the
// prompt's last token (vocab_size float32, little-endian). --init writes config.json and
// model.safetensors initialised as fla initialises a model.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "library/model/checkpoint.h"
#include "library/model/cpu_model.h"
#include "library/model/sampling.h"
#include "library/model/tokenizer.h"
#include "support/error.h"

namespace {

using namespace lina;
using namespace lina::model;

const char* kUsage =
    "usage: lina-run --model DIR (--token-ids 1,2,3 | --prompt TEXT) [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P]\n"
    "                [--seed S] [--dump-logits FILE]\n"
    "       lina-run --init CONFIG.json --out DIR [--seed S] [--dtype bf16|fp16|fp32]\n";

int64_t parseInt(const std::string& flag, const std::string& text, int64_t min) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty() || v < min)
    throw Error(flag + ": expected an integer >= " + std::to_string(min) + "; got '" + text + "'");
  return v;
}

double parseDouble(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty()) throw Error(flag + ": expected a number; got '" + text + "'");
  return v;
}

std::vector<int64_t> parseIds(const std::string& text) {
  std::vector<int64_t> ids;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) ids.push_back(parseInt("--token-ids", item, 0));
  if (ids.empty()) throw Error("--token-ids: expected a comma-separated list of token ids; got '" + text + "' (an empty prompt)");
  return ids;
}

int run(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  const std::vector<std::string> known = {"--model", "--token-ids", "--max-new-tokens", "--dump-logits", "--init", "--out", "--seed",
                                          "--dtype", "--temperature", "--top-k", "--top-p", "--prompt"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (std::find(known.begin(), known.end(), a) == known.end()) {
      std::string list;
      for (const std::string& k : known) list += " " + k;
      if (a == "--prompts") throw Error("--prompts: one prompt per run for now; pass --prompt TEXT or --token-ids");
      throw Error("unknown argument '" + a + "'; expected one of" + list);
    }
    if (i + 1 >= argc) throw Error(a + ": expected a value after it");
    flags[a] = argv[++i];
  }
  if (flags.count("--init")) {
    if (!flags.count("--out")) throw Error("--init: expected --out DIR as well (where to write the checkpoint)");
    const ModelConfig config = loadConfig(flags["--init"]);
    const std::string dt = flags.count("--dtype") ? flags["--dtype"] : "bf16";
    if (dt != "bf16" && dt != "fp16" && dt != "fp32") throw Error("--dtype: expected bf16, fp16 or fp32; got '" + dt + "'");
    const DType dtype = dt == "bf16" ? DType::BF16 : dt == "fp16" ? DType::F16 : DType::F32;
    const uint64_t seed = flags.count("--seed") ? static_cast<uint64_t>(parseInt("--seed", flags["--seed"], 0)) : 0;
    writeRandomCheckpoint(config, flags["--out"], dtype, seed);
    std::cout << "wrote " << flags["--out"] << ": " << modelTypeName(config.type) << ", " << parameterCount(config) << " parameters, "
              << dt << "\n";
    return 0;
  }
  if (!flags.count("--model")) throw Error(std::string("expected --model DIR or --init CONFIG\n") + kUsage);
  if (flags.count("--token-ids") == flags.count("--prompt"))
    throw Error("expected exactly one of --token-ids 1,450,4996 and --prompt TEXT");
  SamplingOptions sampling;
  if (flags.count("--temperature")) sampling.temperature = parseDouble("--temperature", flags["--temperature"]);
  if (flags.count("--top-k")) sampling.topK = parseInt("--top-k", flags["--top-k"], 0);
  if (flags.count("--top-p")) sampling.topP = parseDouble("--top-p", flags["--top-p"]);
  sampling.validate();
  std::mt19937_64 rng(flags.count("--seed") ? static_cast<uint64_t>(parseInt("--seed", flags["--seed"], 0)) : 0);
  const Checkpoint checkpoint = Checkpoint::open(flags["--model"]);
  const CpuModel model(checkpoint);
  std::unique_ptr<Tokenizer> tokenizer;
  std::vector<int64_t> prompt;
  if (flags.count("--prompt")) {
    tokenizer = Tokenizer::open(flags["--model"]);
    if (flags["--prompt"].empty()) throw Error("--prompt: expected some text; got an empty prompt");
    if (tokenizer->vocabSize() > checkpoint.config().vocabSize)
      throw Error("tokenizer '" + flags["--model"] + "/tokenizer.model' has " + std::to_string(tokenizer->vocabSize()) +
                  " pieces; config.json's vocab_size is " + std::to_string(checkpoint.config().vocabSize) + " (expected at most that)");
    prompt = tokenizer->encode(flags["--prompt"]);
    prompt.insert(prompt.begin(), checkpoint.config().bosTokenId);  // as the Llama tokenizer adds BOS
  } else {
    prompt = parseIds(flags["--token-ids"]);
  }
  const int64_t maxNew = flags.count("--max-new-tokens") ? parseInt("--max-new-tokens", flags["--max-new-tokens"], 0) : 32;
  for (int64_t t : prompt)
    if (t >= checkpoint.config().vocabSize)
      throw Error("--token-ids: token " + std::to_string(t) + " is outside the vocabulary (vocab_size " +
                  std::to_string(checkpoint.config().vocabSize) + " in " + flags["--model"] + "/config.json)");
  // Prefill and decode timed apart: the prompt through the recurrent step, then the new tokens.
  using clock = std::chrono::steady_clock;
  CpuModel::State state = model.newState();
  const auto t0 = clock::now();
  std::vector<float> logits;
  for (int64_t t : prompt) logits = model.step(t, state);
  const auto t1 = clock::now();
  if (flags.count("--dump-logits")) {
    std::ofstream out(flags["--dump-logits"], std::ios::binary);
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
    if (!out) throw Error("--dump-logits: cannot write '" + flags["--dump-logits"] + "'");
  }
  std::vector<int64_t> generated;
  for (int64_t i = 0; i < maxNew; ++i) {
    const int64_t next = sampleToken(logits, sampling, rng);
    generated.push_back(next);
    if (!tokenizer) std::cout << (i ? " " : "") << next << std::flush;
    if (next == checkpoint.config().eosTokenId || i + 1 == maxNew) break;
    logits = model.step(next, state);
  }
  const auto t2 = clock::now();
  if (tokenizer) std::cout << tokenizer->decode(generated);
  const double prefill = std::chrono::duration<double>(t1 - t0).count(), decode = std::chrono::duration<double>(t2 - t1).count();
  std::printf("\nprompt %zu tokens %.1f tok/s, decode %zu tokens %.1f tok/s (cpu, fp32)\n", prompt.size(),
              static_cast<double>(prompt.size()) / std::max(prefill, 1e-9), generated.size(),
              static_cast<double>(generated.size()) / std::max(decode, 1e-9));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const lina::Error& e) {
    std::fprintf(stderr, "lina-run: error: %s\n", e.what());
    return 1;
  }
}
