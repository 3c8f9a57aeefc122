// The tokenizer shared by the RIR and CIR text parsers: words (may contain '.'), %values,
// @symbols, numbers, punctuation; `//` comments.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

#include "dsl/source_manager.h"

namespace lina::ir {

struct Token {
  enum Kind { End, Word, Value, Symbol, Number, Punct } kind = End;
  std::string text;  // Word: identifier (may contain '.'); Value: name after '%'; Symbol: after '@'
  SourceRange range;
};

class Lexer {
 public:
  Lexer(std::string_view text, uint32_t file) : text_(text), file_(file) {}

  Token next() {
    skipSpace();
    Token t;
    SourceLoc begin = here();
    if (pos_ >= text_.size()) {
      t.range = SourceRange(begin, begin);
      return t;
    }
    char c = text_[pos_];
    auto isWordChar = [](char x) { return std::isalnum(static_cast<unsigned char>(x)) || x == '_' || x == '.'; };
    if (c == '%' || c == '@') {
      advance();
      t.kind = c == '%' ? Token::Value : Token::Symbol;
      while (pos_ < text_.size() && isWordChar(text_[pos_])) t.text += advance();
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+' ||
               (c == '.' && pos_ + 1 < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_ + 1])))) {
      t.kind = Token::Number;
      t.text += advance();
      while (pos_ < text_.size()) {
        char x = text_[pos_];
        bool exponentSign = (x == '-' || x == '+') && (t.text.back() == 'e' || t.text.back() == 'E');
        if (!(std::isalnum(static_cast<unsigned char>(x)) || x == '.' || exponentSign)) break;
        t.text += advance();
      }
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      t.kind = Token::Word;
      while (pos_ < text_.size() && isWordChar(text_[pos_])) t.text += advance();
    } else {
      t.kind = Token::Punct;
      t.text = advance();
    }
    t.range = SourceRange(begin, here());
    return t;
  }

 private:
  SourceLoc here() const { return SourceLoc{file_, line_, col_}; }
  char advance() {
    char c = text_[pos_++];
    if (c == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    return c;
  }
  void skipSpace() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (std::isspace(static_cast<unsigned char>(c))) {
        advance();
      } else if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/') {
        while (pos_ < text_.size() && text_[pos_] != '\n') advance();
      } else {
        break;
      }
    }
  }
  std::string_view text_;
  uint32_t file_;
  size_t pos_ = 0;
  uint32_t line_ = 1, col_ = 1;
};

}  // namespace lina::ir
