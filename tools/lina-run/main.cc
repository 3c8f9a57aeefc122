// lina-run: runs a GLA / RetNet / GSA / RWKV6 checkpoint in fla's layout, or writes a random one
// (RWKV6 on the CPU engine only).
//
//   lina-run --model DIR (--token-ids 1,2,3 | --prompt TEXT | --prompts FILE) [--batch N] [--max-new-tokens N]
//            [--temperature T] [--top-k K] [--top-p P] [--seed S] [--device auto|cuda|cpu] [--dtype bf16|fp16|fp32]
//            [--graphs 1|0] [--gemv 1|0] [--max-batch N] [--max-prefill-tokens N] [--stop-at-eos 1|0] [--stop TEXT] [--dump-logits FILE]
//            [--warmup N: untimed runs first on the GPU, default 1; 0 times a cold start]
//   lina-run --init CONFIG.json --out DIR [--seed S] [--dtype bf16|fp16|fp32]
//
// On a GPU (--device auto picks it when there is one) the prompts are prefilled together through
// lina's chunked kernels and decoded together, one CUDA graph replay per token with the next
// token drawn on the device (library/model/gpu_model.h); on the CPU the blocks run in fp32 one
// token at a time (library/model/cpu_model.h). Greedy decoding, or temperature / top-k / top-p
// sampling (seeded), stopping at the config's EOS id. One prompt: its tokens stream to stdout as
// they are drawn; several (--prompts FILE, one per line: text, or comma-separated token ids;
// --batch N repeats each prompt N times): one line per prompt at the end. Then a line of prompt and
// decode tokens per second. --dump-logits writes the logits after the first prompt's last token
// (vocab_size float32, little-endian). --init writes config.json and model.safetensors
// initialised as fla initialises a model.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <new>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/versions.h"
#include "library/model/checkpoint.h"
#include "library/model/cpu_model.h"
#include "library/model/gpu_model.h"
#include "library/model/sampling.h"
#include "library/model/tokenizer.h"
#include "runtime/cuda_driver.h"
#include "support/error.h"

namespace {

using namespace lina;
using namespace lina::model;

const char* kUsage =
    "usage: lina-run --model DIR (--token-ids 1,2,3 | --prompt TEXT | --prompts FILE) [--batch N] [--max-new-tokens N]\n"
    "                [--temperature T] [--top-k K] [--top-p P] [--seed S] [--device auto|cuda|cpu] [--dtype bf16|fp16|fp32]\n"
    "                [--graphs 1|0] [--gemv 1|0] [--max-batch N] [--max-prefill-tokens N] [--stop-at-eos 1|0] [--stop TEXT] [--dump-logits FILE]\n"
    "                [--warmup N (GPU: untimed runs first, default 1; 0: time a cold start)]\n"
    "       lina-run --init CONFIG.json --out DIR [--seed S] [--dtype bf16|fp16|fp32]\n"
    "       lina-run --version | --help\n";

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
                                          "--dtype", "--temperature", "--top-k", "--top-p", "--prompt", "--prompts",
                                          "--batch", "--device", "--graphs", "--gemv", "--max-batch", "--max-prefill-tokens", "--stop-at-eos", "--stop", "--warmup"};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--version") {
      std::cout << runtime::versionLine("lina-run") << "\n";
      return 0;
    }
    if (std::find(known.begin(), known.end(), a) == known.end()) {
      std::string list;
      for (const std::string& k : known) list += " " + k;
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
  if (flags.count("--token-ids") + flags.count("--prompt") + flags.count("--prompts") != 1)
    throw Error("expected exactly one of --token-ids 1,450,4996, --prompt TEXT and --prompts FILE");
  SamplingOptions sampling;
  if (flags.count("--temperature")) sampling.temperature = parseDouble("--temperature", flags["--temperature"]);
  if (flags.count("--top-k")) sampling.topK = parseInt("--top-k", flags["--top-k"], 0);
  if (flags.count("--top-p")) sampling.topP = parseDouble("--top-p", flags["--top-p"]);
  sampling.validate();
  const uint64_t seed = flags.count("--seed") ? static_cast<uint64_t>(parseInt("--seed", flags["--seed"], 0)) : 0;
  const std::string deviceFlag = flags.count("--device") ? flags["--device"] : "auto";
  if (deviceFlag != "auto" && deviceFlag != "cuda" && deviceFlag != "cpu")
    throw Error("--device: expected auto, cuda or cpu; got '" + deviceFlag + "'");
  const std::string dtype = flags.count("--dtype") ? flags["--dtype"] : "bf16";
  if (dtype != "bf16" && dtype != "fp16" && dtype != "fp32") throw Error("--dtype: expected bf16, fp16 or fp32; got '" + dtype + "'");
  const std::string graphs = flags.count("--graphs") ? flags["--graphs"] : "1";
  if (graphs != "0" && graphs != "1") throw Error("--graphs: expected 1 or 0; got '" + graphs + "'");
  const std::string gemv = flags.count("--gemv") ? flags["--gemv"] : "1";
  if (gemv != "0" && gemv != "1") throw Error("--gemv: expected 1 (lina's GEMV for decode) or 0 (cuBLAS for every projection); got '" + gemv + "'");
  const std::string stopAtEos = flags.count("--stop-at-eos") ? flags["--stop-at-eos"] : "1";
  if (stopAtEos != "0" && stopAtEos != "1") throw Error("--stop-at-eos: expected 1 or 0; got '" + stopAtEos + "'");
  const int64_t batch = flags.count("--batch") ? parseInt("--batch", flags["--batch"], 1) : 1;
  const int64_t maxNew = flags.count("--max-new-tokens") ? parseInt("--max-new-tokens", flags["--max-new-tokens"], 1) : 32;
  // GPU: untimed generations of the same prompts (3 new tokens) before the timed one, so the
  // figures are warm (kernels loaded, cuBLAS initialised), as a benchmark's best-of-N is.
  const int64_t warmup = flags.count("--warmup") ? parseInt("--warmup", flags["--warmup"], 0) : 1;

  const Checkpoint checkpoint = Checkpoint::open(flags["--model"]);
  const ModelConfig& config = checkpoint.config();
  std::unique_ptr<Tokenizer> tokenizer;
  auto tokens = [&]() -> const Tokenizer& {
    if (!tokenizer) {
      tokenizer = Tokenizer::open(flags["--model"]);
      if (tokenizer->vocabSize() > config.vocabSize)
        throw Error("tokenizer '" + flags["--model"] + "/tokenizer.model' has " + std::to_string(tokenizer->vocabSize()) +
                    " pieces; config.json's vocab_size is " + std::to_string(config.vocabSize) + " (expected at most that)");
    }
    return *tokenizer;
  };
  bool textOutput = false;  // a text prompt: the continuation is printed as text, else as ids
  auto encode = [&](const std::string& text, const std::string& where) {
    if (text.empty()) throw Error(where + ": expected some text; got an empty prompt");
    textOutput = true;
    std::vector<int64_t> ids = tokens().encode(text);
    ids.insert(ids.begin(), config.bosTokenId);  // as the Llama tokenizer adds BOS
    return ids;
  };
  // --stop TEXT: a sequence ends after the token that makes its decoded continuation contain TEXT
  // (the token is kept, as transformers' stop_strings keeps it).
  const std::string stop = flags.count("--stop") ? flags["--stop"] : "";
  if (flags.count("--stop")) {
    if (stop.empty()) throw Error("--stop: expected some text; got an empty string");
    try {
      (void)tokens();
    } catch (const Error& e) {
      throw Error(std::string("--stop: needs the model directory's tokenizer to decode the new tokens: ") + e.what());
    }
  }
  auto hitsStop = [&](const std::vector<int64_t>& generated) {
    return !stop.empty() && tokens().decode(generated).find(stop) != std::string::npos;
  };
  std::vector<std::vector<int64_t>> prompts;
  if (flags.count("--prompt")) {
    prompts.push_back(encode(flags["--prompt"], "--prompt"));
  } else if (flags.count("--token-ids")) {
    prompts.push_back(parseIds(flags["--token-ids"]));
  } else {
    std::ifstream in(flags["--prompts"]);
    if (!in) throw Error("--prompts: cannot read '" + flags["--prompts"] + "'");
    std::string line;
    for (int lineNo = 1; std::getline(in, line); ++lineNo) {
      if (line.empty()) continue;
      const std::string where = "--prompts " + flags["--prompts"] + ":" + std::to_string(lineNo);
      if (line.find_first_not_of("0123456789, ") == std::string::npos)
        prompts.push_back(parseIds(line));
      else
        prompts.push_back(encode(line, where));
    }
    if (prompts.empty()) throw Error("--prompts: '" + flags["--prompts"] + "' holds no prompt (one per line expected)");
  }
  for (const auto& p : prompts)
    for (int64_t t : p)
      if (t >= config.vocabSize)
        throw Error("token " + std::to_string(t) + " is outside the vocabulary (vocab_size " + std::to_string(config.vocabSize) + " in " +
                    flags["--model"] + "/config.json)");
  constexpr int64_t kMostSequences = 65536;
  if (batch > kMostSequences / static_cast<int64_t>(prompts.size()))
    throw Error("--batch: " + std::to_string(prompts.size()) + " prompt(s) x batch " + std::to_string(batch) + " is more than " +
                std::to_string(kMostSequences) + " sequences; pass a smaller --batch");
  if (batch > 1) {
    std::vector<std::vector<int64_t>> repeated;
    for (const auto& p : prompts)
      for (int64_t i = 0; i < batch; ++i) repeated.push_back(p);
    prompts = repeated;
  }
  const bool single = prompts.size() == 1;
  int64_t promptTokens = 0;
  for (const auto& p : prompts) promptTokens += static_cast<int64_t>(p.size());
  auto printTokens = [&](const std::vector<int64_t>& ids) {
    if (textOutput) {
      std::cout << tokenizer->decode(ids);
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    }
  };
  auto dumpLogits = [&](const std::vector<float>& logits) {
    if (!flags.count("--dump-logits")) return;
    std::ofstream out(flags["--dump-logits"], std::ios::binary);
    out.write(reinterpret_cast<const char*>(logits.data()), static_cast<std::streamsize>(logits.size() * sizeof(float)));
    if (!out) throw Error("--dump-logits: cannot write '" + flags["--dump-logits"] + "'");
  };

  std::string why;
  // RWKV6 has no GPU runner yet: --device auto takes the CPU engine for it (cuda is an error).
  const bool cpuOnly = checkpoint.config().type == ModelType::RWKV6;
  const bool gpu = deviceFlag == "cuda" || (deviceFlag == "auto" && !cpuOnly && cuda::available(&why));
  if (gpu) {
    GpuModelOptions opt;
    opt.dtype = dtype;
    opt.graphs = graphs == "1";
    opt.gemv = gemv == "1";
    opt.maxBatch = flags.count("--max-batch") ? parseInt("--max-batch", flags["--max-batch"], 1)
                                              : std::max<int64_t>(64, static_cast<int64_t>(prompts.size()));
    if (flags.count("--max-prefill-tokens"))
      opt.maxPrefillTokens = parseInt("--max-prefill-tokens", flags["--max-prefill-tokens"], 1);
    else
      opt.maxPrefillTokens = std::max<int64_t>(opt.maxPrefillTokens, promptTokens);
    GpuModel model(checkpoint, opt);
    if (flags.count("--dump-logits")) dumpLogits(model.prefill({prompts[0]})[0]);
    GenerateOptions g;
    g.maxNewTokens = maxNew;
    g.sampling = sampling;
    g.seed = seed;
    g.stopAtEos = stopAtEos == "1";
    for (int64_t w = 0; w < warmup; ++w) {
      GenerateOptions quick = g;
      quick.maxNewTokens = std::min<int64_t>(maxNew, 3);
      model.generate(prompts, quick, nullptr);
    }
    std::vector<std::vector<int64_t>> sofar(prompts.size());
    const GenerateResult r = model.generate(prompts, g, [&](int64_t n, int64_t token) {
      std::vector<int64_t>& mine = sofar[static_cast<size_t>(n)];
      if (single && !textOutput) std::cout << (mine.empty() ? "" : " ") << token << std::flush;
      mine.push_back(token);
      return hitsStop(mine);
    });
    if (single && textOutput) printTokens(r.tokens[0]);
    if (!single)
      for (size_t n = 0; n < r.tokens.size(); ++n) {
        std::cout << "[" << n << "] ";
        printTokens(r.tokens[n]);
        std::cout << "\n";
      }
    const double decodeRate = static_cast<double>(r.decodedTokens) / std::max(r.decodeSeconds, 1e-9);
    std::printf("%sprompt %lld tokens %.1f tok/s, decode %lld tokens %.1f tok/s (cuda %s, %s, batch %zu, %s, %s; weights %.2f GB)\n",
                single ? "\n" : "", static_cast<long long>(r.promptTokens),
                static_cast<double>(r.promptTokens) / std::max(r.prefillSeconds, 1e-9), static_cast<long long>(r.decodedTokens),
                decodeRate, model.deviceName().c_str(), dtype.c_str(), prompts.size(), opt.graphs ? "graphs" : "no graphs",
                warmup > 0 ? ("warm: " + std::to_string(warmup) + " untimed run" + (warmup > 1 ? "s" : "") + " first").c_str() : "cold",
                static_cast<double>(model.weightBytes()) / 1e9);
    return 0;
  }
  // The CPU path: each prompt through the recurrent step, then its new tokens; prefill and decode timed apart.
  const CpuModel model(checkpoint);
  std::mt19937_64 rng(seed);
  using clock = std::chrono::steady_clock;
  double prefill = 0, decode = 0;
  int64_t decoded = 0;
  for (size_t n = 0; n < prompts.size(); ++n) {
    CpuModel::State state = model.newState();
    const auto t0 = clock::now();
    std::vector<float> logits;
    for (int64_t t : prompts[n]) logits = model.step(t, state);
    const auto t1 = clock::now();
    if (n == 0) dumpLogits(logits);
    std::vector<int64_t> generated;
    for (int64_t i = 0; i < maxNew; ++i) {
      const int64_t next = sampleToken(logits, sampling, rng);
      generated.push_back(next);
      if (single && !textOutput) std::cout << (i ? " " : "") << next << std::flush;
      if ((stopAtEos == "1" && next == config.eosTokenId) || i + 1 == maxNew || hitsStop(generated)) break;
      logits = model.step(next, state);
    }
    const auto t2 = clock::now();
    prefill += std::chrono::duration<double>(t1 - t0).count();
    decode += std::chrono::duration<double>(t2 - t1).count();
    decoded += static_cast<int64_t>(generated.size());
    if (single && textOutput) printTokens(generated);
    if (!single) {
      std::cout << "[" << n << "] ";
      printTokens(generated);
      std::cout << "\n";
    }
  }
  std::printf("%sprompt %lld tokens %.1f tok/s, decode %lld tokens %.1f tok/s (cpu, fp32)\n", single ? "\n" : "",
              static_cast<long long>(promptTokens), static_cast<double>(promptTokens) / std::max(prefill, 1e-9),
              static_cast<long long>(decoded), static_cast<double>(decoded) / std::max(decode, 1e-9));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const lina::Error& e) {
    std::fprintf(stderr, "lina-run: error: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {  // more than this machine holds: say so, do not abort
    std::fprintf(stderr, "lina-run: error: out of memory; pass a smaller --batch, --max-batch or --max-prefill-tokens\n");
    return 1;
  }
}
