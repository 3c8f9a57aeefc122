// Owns the text of every source buffer and maps locations back to lines for diagnostics.
#pragma once

#include <cstdint>
#include <deque>
#include <ostream>
#include <string>
#include <string_view>

namespace lina {

// A position in a buffer: 1-based line and column. file == 0 means "no location".
struct SourceLoc {
  uint32_t file = 0;
  uint32_t line = 0;
  uint32_t col = 0;
  bool isValid() const { return file != 0; }
};

// A half-open range [begin, end). The member names `begin`/`end` are what Bison's
// default YYLLOC_DEFAULT expects, so this type is also the parser's location type.
struct SourceRange {
  SourceLoc begin;
  SourceLoc end;
  SourceRange() = default;
  SourceRange(SourceLoc b, SourceLoc e) : begin(b), end(e) {}
  explicit SourceRange(SourceLoc at) : begin(at), end(at) {}
  bool isValid() const { return begin.isValid(); }
  // The smallest range covering both.
  static SourceRange cover(const SourceRange& a, const SourceRange& b);
};

std::ostream& operator<<(std::ostream& os, const SourceRange& range);

class SourceManager {
 public:
  // Adds a buffer; returns its file id (>= 1). The text is copied and owned here.
  uint32_t addBuffer(std::string name, std::string text);
  // Reads a file from disk; returns 0 and sets `error` when it cannot be read.
  uint32_t addFile(const std::string& path, std::string& error);

  std::string_view name(uint32_t file) const;
  std::string_view text(uint32_t file) const;
  // The text of one line without its newline; empty when out of range.
  std::string_view line(uint32_t file, uint32_t line) const;

 private:
  struct Buffer {
    std::string name;
    std::string text;
  };
  std::deque<Buffer> buffers_;  // deque: references stay valid as buffers are added
};

}  // namespace lina
