#include "library/model/tokenizer.h"

#include <sys/stat.h>

#include "support/error.h"

#if LINA_HAVE_SENTENCEPIECE
#include <sentencepiece_processor.h>
#endif

namespace lina::model {

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0;
}

#if LINA_HAVE_SENTENCEPIECE
class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) {
    const auto status = sp_.Load(path);
    if (!status.ok()) throw Error("tokenizer '" + path + "': sentencepiece cannot load it: " + status.ToString());
  }
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) throw Error("tokenizer: cannot encode the prompt: " + status.ToString());
    return {ids.begin(), ids.end()};
  }
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::vector<int> in(ids.begin(), ids.end());
    std::string text;
    const auto status = sp_.Decode(in, &text);
    if (!status.ok()) throw Error("tokenizer: cannot decode: " + status.ToString());
    return text;
  }
  int64_t vocabSize() const override { return sp_.GetPieceSize(); }

 private:
  sentencepiece::SentencePieceProcessor sp_;
};
#endif

}  // namespace

bool tokenizerSupported() { return LINA_HAVE_SENTENCEPIECE != 0; }

std::unique_ptr<Tokenizer> Tokenizer::open(const std::string& dir) {
  const std::string model = dir + "/tokenizer.model";
  if (exists(model)) {
#if LINA_HAVE_SENTENCEPIECE
    return std::make_unique<SentencePieceTokenizer>(model);
#else
    throw Error("tokenizer '" + model + "': this build has no sentencepiece (install libsentencepiece-dev and rebuild); pass --token-ids");
#endif
  }
  if (exists(dir + "/tokenizer.json"))
    throw Error("model directory '" + dir + "': only tokenizer.json (HF tokenizers), which the C++ runner does not read; add the "
                "sentencepiece tokenizer.model or pass --token-ids");
  throw Error("model directory '" + dir + "': no tokenizer.model for a text prompt; pass --token-ids instead");
}

}  // namespace lina::model
