#include "dsl/source_manager.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace lina {

SourceRange SourceRange::cover(const SourceRange& a, const SourceRange& b) {
  if (!a.isValid()) return b;
  if (!b.isValid()) return a;
  auto before = [](const SourceLoc& x, const SourceLoc& y) {
    return x.line < y.line || (x.line == y.line && x.col < y.col);
  };
  return SourceRange(before(a.begin, b.begin) ? a.begin : b.begin,
                     before(a.end, b.end) ? b.end : a.end);
}

std::ostream& operator<<(std::ostream& os, const SourceRange& range) {
  return os << range.begin.line << ':' << range.begin.col;
}

uint32_t SourceManager::addBuffer(std::string name, std::string text) {
  buffers_.push_back(Buffer{std::move(name), std::move(text)});
  return static_cast<uint32_t>(buffers_.size());
}

uint32_t SourceManager::addFile(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot open '" + path + "': " + std::strerror(errno) + "; expected a readable .lina or .rir file";
    return 0;
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    error = "cannot read '" + path + "'";
    return 0;
  }
  return addBuffer(path, text.str());
}

std::string_view SourceManager::name(uint32_t file) const {
  if (file == 0 || file > buffers_.size()) return "<unknown>";
  return buffers_[file - 1].name;
}

std::string_view SourceManager::text(uint32_t file) const {
  if (file == 0 || file > buffers_.size()) return {};
  return buffers_[file - 1].text;
}

std::string_view SourceManager::line(uint32_t file, uint32_t lineNo) const {
  std::string_view all = text(file);
  uint32_t current = 1;
  size_t start = 0;
  while (current < lineNo) {
    size_t nl = all.find('\n', start);
    if (nl == std::string_view::npos) return {};
    start = nl + 1;
    ++current;
  }
  size_t end = all.find('\n', start);
  std::string_view result = all.substr(start, end == std::string_view::npos ? all.size() - start
                                                                            : end - start);
  if (!result.empty() && result.back() == '\r') result.remove_suffix(1);
  return result;
}

}  // namespace lina
