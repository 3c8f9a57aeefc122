#include "library/model/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "support/error.h"

namespace lina::model {

namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t bytes;
};
constexpr DTypeInfo kDTypes[] = {{DType::BF16, "BF16", 2}, {DType::F16, "F16", 2}, {DType::F32, "F32", 4},
                                 {DType::F64, "F64", 8},   {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
                                 {DType::I16, "I16", 2},   {DType::I8, "I8", 1},   {DType::U8, "U8", 1},
                                 {DType::Bool, "BOOL", 1}};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error("safetensors file '" + path + "': " + what);
}

// Total bytes of dtype x shape, or nothing on overflow.
bool byteCount(DType d, const std::vector<int64_t>& shape, size_t& out) {
  unsigned __int128 n = dtypeBytes(d);
  for (int64_t s : shape) {
    n *= static_cast<unsigned __int128>(s);
    if (n > (static_cast<unsigned __int128>(1) << 62)) return false;
  }
  out = static_cast<size_t>(n);
  return true;
}

// A name in `names` sharing the longest prefix with `name`, for "did you mean".
std::string closest(const std::string& name, const std::map<std::string, TensorView>& names) {
  std::string best;
  size_t bestLen = 0;
  for (const auto& [n, _] : names) {
    size_t l = 0;
    while (l < n.size() && l < name.size() && n[l] == name[l]) ++l;
    if (l > bestLen) bestLen = l, best = n;
  }
  return best;
}

}  // namespace

const char* dtypeName(DType d) {
  for (const DTypeInfo& i : kDTypes)
    if (i.dtype == d) return i.name;
  return "?";
}

size_t dtypeBytes(DType d) {
  for (const DTypeInfo& i : kDTypes)
    if (i.dtype == d) return i.bytes;
  return 0;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::string shapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path, std::string("cannot open: ") + std::strerror(errno) + "; check the path");
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    fail(path, "expected at least 8 bytes (the header length); got " + std::to_string(size) + " (a truncated file?)");
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(errno));
  f.map_ = map;
  f.mapBytes_ = size;
  const auto* bytes = static_cast<const unsigned char*>(map);
  uint64_t headerLen = 0;
  for (int i = 7; i >= 0; --i) headerLen = (headerLen << 8) | bytes[i];
  if (headerLen > size - 8)
    fail(path, "the header length field says " + std::to_string(headerLen) + " bytes but only " + std::to_string(size - 8) +
                   " follow it (a truncated or non-safetensors file)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(reinterpret_cast<const char*>(bytes + 8), reinterpret_cast<const char*>(bytes + 8 + headerLen));
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("the header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "the header must be a JSON object of tensors; got " + std::string(header.type_name()));
  const size_t dataStart = 8 + headerLen, dataBytes = size - dataStart;
  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& e = it.value();
    if (name == "__metadata__") {
      if (!e.is_object()) fail(path, "__metadata__ must be an object of strings");
      for (auto m = e.begin(); m != e.end(); ++m) {
        if (!m.value().is_string()) fail(path, "__metadata__['" + m.key() + "'] must be a string; got " + m.value().dump());
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      fail(path, where + "expected {\"dtype\", \"shape\", \"data_offsets\"}; got " + e.dump());
    TensorView t;
    t.name = name;
    const nlohmann::json& dt = e["dtype"];
    bool known = false;
    if (dt.is_string())
      for (const DTypeInfo& i : kDTypes)
        if (dt.get<std::string>() == i.name) t.dtype = i.dtype, known = true;
    if (!known) fail(path, where + "dtype " + dt.dump() + " is not one lina reads (BF16, F16, F32, F64, I64, I32, I16, I8, U8, BOOL)");
    if (!e["shape"].is_array()) fail(path, where + "shape must be an array; got " + e["shape"].dump());
    for (const nlohmann::json& s : e["shape"]) {
      if (!s.is_number_integer() || s.get<int64_t>() < 0) fail(path, where + "shape entries must be integers >= 0; got " + e["shape"].dump());
      t.shape.push_back(s.get<int64_t>());
    }
    const nlohmann::json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, where + "data_offsets must be [begin, end]; got " + off.dump());
    const uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > dataBytes)
      fail(path, where + "data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "] leave the data region of " +
                     std::to_string(dataBytes) + " bytes (a truncated file?)");
    size_t expected = 0;
    if (!byteCount(t.dtype, t.shape, expected) || expected != en - b)
      fail(path, where + "dtype " + dtypeName(t.dtype) + " x shape " + shapeText(t.shape) + " is " + std::to_string(expected) +
                     " bytes; data_offsets span " + std::to_string(en - b));
    t.data = bytes + dataStart + b;
    t.bytes = en - b;
    ranges.push_back({b, en});
    f.tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second && ranges[i].first != ranges[i].second)
      fail(path, "two tensors' data_offsets overlap at byte " + std::to_string(ranges[i].first));
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (map_) munmap(map_, mapBytes_);
    path_ = std::move(o.path_);
    map_ = o.map_;
    mapBytes_ = o.mapBytes_;
    tensors_ = std::move(o.tensors_);
    metadata_ = std::move(o.metadata_);
    o.map_ = nullptr;
    o.mapBytes_ = 0;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, mapBytes_);
}

const TensorView& SafetensorsFile::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) {
    const std::string near = closest(name, tensors_);
    fail(path_, "no tensor '" + name + "' (it holds " + std::to_string(tensors_.size()) + " tensors" +
                    (near.empty() ? std::string() : "; the closest name is '" + near + "'") + ")");
  }
  return it->second;
}

void writeSafetensors(const std::string& path, const std::vector<TensorData>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorData*> order;
  std::set<std::string> names;
  for (const TensorData& t : tensors) {
    if (!names.insert(t.name).second) fail(path, "tensor '" + t.name + "' is given twice");
    size_t expected = 0;
    if (!byteCount(t.dtype, t.shape, expected) || expected != t.bytes.size())
      fail(path, "tensor '" + t.name + "': dtype " + dtypeName(t.dtype) + " x shape " + shapeText(t.shape) + " is " +
                     std::to_string(expected) + " bytes; got " + std::to_string(t.bytes.size()));
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](const TensorData* a, const TensorData* b) { return a->name < b->name; });
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t at = 0;
  for (const TensorData* t : order) {
    header[t->name] = {{"dtype", dtypeName(t->dtype)}, {"shape", t->shape}, {"data_offsets", {at, at + t->bytes.size()}}};
    at += t->bytes.size();
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8) text += ' ';  // the data starts 8-byte aligned
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path, "cannot write '" + tmp + "': " + std::strerror(errno));
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((text.size() >> (8 * i)) & 0xff);
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const TensorData* t : order) out.write(reinterpret_cast<const char*>(t->bytes.data()), static_cast<std::streamsize>(t->bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::remove(tmp.c_str());
      fail(path, "writing '" + tmp + "' failed (disk full?); nothing was replaced");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    fail(path, "cannot rename '" + tmp + "' into place: " + why);
  }
}

}  // namespace lina::model
