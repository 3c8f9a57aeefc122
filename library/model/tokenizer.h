// The model directory's tokenizer for text prompts. The C++ runner reads `tokenizer.model`
// (sentencepiece, the Llama / Mistral tokenizer fla's models use) through the sentencepiece
// library; `tokenizer.json` (HF tokenizers) is for the Python runner, and `--token-ids` needs no
// tokenizer at all.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace lina::model {

class Tokenizer {
 public:
  // The tokenizer of model directory `dir`. Throws lina::Error naming the file when there is none
  // the C++ runner reads, or when it does not load.
  static std::unique_ptr<Tokenizer> open(const std::string& dir);
  virtual ~Tokenizer() = default;
  virtual std::vector<int64_t> encode(const std::string& text) const = 0;  // no BOS (the caller adds it)
  virtual std::string decode(const std::vector<int64_t>& ids) const = 0;
  virtual int64_t vocabSize() const = 0;
};

bool tokenizerSupported();  // built with sentencepiece

}  // namespace lina::model
