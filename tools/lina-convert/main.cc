// lina-convert: weights into fla's layout (library/convert/).
//
//   lina-convert llama-to-gla SRC DST [--config KEY=VALUE ...] [--max-shard-size BYTES] [--seed S]
//   lina-convert llama-to-gsa SRC DST [--config KEY=VALUE ...] [--max-shard-size BYTES] [--seed S]
//
// SRC: a Hugging Face Llama or Mistral directory (config.json, model.safetensors or sharded with
// model.safetensors.index.json). DST: an fla GLA / GSA directory that lina-run, lina.models and
// fla's own classes load. Prints every tensor as copied (with its source key), initialised or
// dropped, then the counts. --config overrides a key of the derived config.json (VALUE as JSON:
// 4, false, "relu"; a bare word is a string). --max-shard-size accepts a suffix K, M or G.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "library/convert/llama_to_fla.h"
#include "library/convert/rwkv6_to_fla.h"
#include "support/error.h"

namespace {

const char* kUsage =
    "usage: lina-convert llama-to-gla SRC DST [--config KEY=VALUE ...] [--max-shard-size "
    "BYTES[K|M|G]] [--seed S]\n"
    "       lina-convert llama-to-gsa SRC DST [--config KEY=VALUE ...] [--max-shard-size "
    "BYTES[K|M|G]] [--seed S]\n"
    "       lina-convert rwkv6 SRC DST [--config KEY=VALUE ...] [--max-shard-size BYTES[K|M|G]]\n"
    "       lina-convert --version | --help\n";

int64_t parseSize(const std::string& flag, std::string text) {
  int64_t scale = 1;
  if (!text.empty()) {
    const char last = text.back();
    if (last == 'K' || last == 'k') scale = int64_t{1} << 10;
    if (last == 'M' || last == 'm') scale = int64_t{1} << 20;
    if (last == 'G' || last == 'g') scale = int64_t{1} << 30;
    if (scale != 1) text.pop_back();
  }
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || v < 1)
    throw lina::Error(flag +
                      ": expected a positive size in bytes (suffix K, M or G allowed); got '" +
                      text + "'");
  return v * scale;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  if (args[0] == "--version") {
    std::cout << "lina-convert " << LINA_VERSION << "\n";
    return 0;
  }
  try {
    const std::string command = args[0];
    if (command != "llama-to-gla" && command != "llama-to-gsa" && command != "rwkv6")
      throw lina::Error("command: expected llama-to-gla, llama-to-gsa or rwkv6; got '" + command +
                        "'");
    lina::convert::LlamaConversion c;
    c.target =
        command == "llama-to-gsa" ? lina::model::ModelType::GSA : lina::model::ModelType::GLA;
    std::vector<std::string> positional;
    for (size_t i = 1; i < args.size(); ++i) {
      const std::string& a = args[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= args.size()) throw lina::Error(a + ": expects a value");
        return args[++i];
      };
      if (a == "--config") {
        const std::string kv = next();
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
          throw lina::Error("--config: expected KEY=VALUE; got '" + kv + "'");
        c.configOverrides[kv.substr(0, eq)] = kv.substr(eq + 1);
      } else if (a == "--max-shard-size") {
        c.maxShardBytes = parseSize(a, next());
      } else if (a == "--seed") {
        c.seed = static_cast<uint64_t>(parseSize(a, next()));
      } else if (!a.empty() && a[0] == '-') {
        throw lina::Error("unknown option '" + a + "'\n" + kUsage);
      } else {
        positional.push_back(a);
      }
    }
    if (positional.size() != 2)
      throw lina::Error(command + ": expected SRC and DST directories; got " +
                        std::to_string(positional.size()) + " argument(s)\n" + kUsage);
    c.source = positional[0];
    c.destination = positional[1];
    if (c.source == c.destination)
      throw lina::Error("DST: expected a directory other than SRC; got '" + c.destination +
                        "' for both");
    if (command == "rwkv6") {
      if (c.seed != 0) throw lina::Error("--seed: rwkv6 initialises nothing, so it takes no seed");
      lina::convert::Rwkv6Conversion r6{c.source, c.destination, c.configOverrides, c.maxShardBytes};
      std::cout << lina::convert::convertRwkv6(r6).text();
      return 0;
    }
    const lina::convert::ConversionReport r = lina::convert::convertLlama(c);
    std::cout << r.text();
    return 0;
  } catch (const lina::Error& e) {
    std::fprintf(stderr, "lina-convert: error: %s\n", e.what());
    return 2;
  }
}
