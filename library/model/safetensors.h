// Reading and writing safetensors files (the format fla's save_pretrained writes): an 8-byte
// little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, __metadata__},
// then the raw tensors. Reading maps the file (mmap) and validates the whole header against the
// file before any tensor is handed out; writing goes to a temporary file renamed into place, so a
// failed write never leaves a truncated checkpoint behind. Errors are lina::Error naming the
// file, the tensor or key, the expected and the actual value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lina::model {

enum class DType { BF16, F16, F32, F64, I64, I32, I16, I8, U8, Bool };
const char* dtypeName(DType d);  // safetensors' spelling: "BF16", "F32", ...
size_t dtypeBytes(DType d);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // inside the mapping; valid while the file is open
  size_t bytes = 0;
  int64_t numel() const;
};

std::string shapeText(const std::vector<int64_t>& shape);  // "[1024, 512]"

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws lina::Error for a missing or unreadable file, a truncated
  // file, a header that is not JSON or not the safetensors schema, an unknown dtype, offsets that
  // leave the data region or overlap, or a byte count that does not match dtype x shape.
  static SafetensorsFile open(const std::string& path);
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  bool has(const std::string& name) const { return tensors_.count(name) != 0; }
  // Throws lina::Error naming the file and the tensor (and the closest names it holds).
  const TensorView& tensor(const std::string& name) const;
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* map_ = nullptr;
  size_t mapBytes_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

struct TensorData {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;  // numel x dtypeBytes, little-endian
};

// Writes `tensors` (in name order, 8-byte aligned as the format recommends) and `metadata` to
// `path` through `path`.tmp and a rename. Throws lina::Error for a byte count that does not match
// dtype x shape, a duplicate name, or an I/O failure (the temporary file is removed).
void writeSafetensors(const std::string& path, const std::vector<TensorData>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

}  // namespace lina::model
