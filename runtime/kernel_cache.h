// Compiled kernels, cached in memory and on disk ($LINA_CACHE_DIR, default ~/.cache/lina).
// The key covers the generated source, the arch, the options, the NVRTC version and the device
// library's hash. Writes are atomic (temp file + rename); an entry that fails its checksum is
// recompiled and rewritten, never fatal.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace lina::runtime {

struct CacheStats {
  int memoryHits = 0;
  int diskHits = 0;
  int compiles = 0;
  int corruptEntries = 0;
  double compileMilliseconds = 0;
};

class KernelCache {
 public:
  // `directory` empty: $LINA_CACHE_DIR, else ~/.cache/lina; "-" disables the disk cache.
  explicit KernelCache(std::string directory = "");

  // The CUBIN for `source` on `arch`, compiled with NVRTC only when no cache level has it.
  std::vector<char> cubin(const std::string& source, const std::string& sourceName, const std::string& arch);

  std::string key(const std::string& source, const std::string& arch) const;
  const std::string& directory() const { return directory_; }
  CacheStats stats() const;

  // The process-wide cache.
  static KernelCache& global();

 private:
  bool readEntry(const std::string& key, std::vector<char>& out);
  void writeEntry(const std::string& key, const std::vector<char>& cubin);

  std::string directory_;
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<char>> memory_;
  CacheStats stats_;
};

}  // namespace lina::runtime
