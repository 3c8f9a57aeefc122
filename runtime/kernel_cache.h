// Compiled kernels, cached in memory and on disk ($LINA_CACHE_DIR, default ~/.cache/lina).
// The key covers the generated source, the arch, the options, the NVRTC version and the device
// library's hash. Writes are atomic (temp file + rename); an entry that fails its checksum is
// recompiled and rewritten, never fatal. The folder is capped ($LINA_CACHE_MAX_MB, default 4096;
// 0: no cap): after a write that takes it over the cap, the least recently used entries (by
// modification time, which a disk hit refreshes) go until it is under 90% of it, and temporary
// files a crashed writer left behind (over an hour old) are removed.
#pragma once

#include <cstdint>
#include <functional>
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
  int evictions = 0;
  double compileMilliseconds = 0;
};

class KernelCache {
 public:
  // `directory` empty: $LINA_CACHE_DIR, else ~/.cache/lina; "-" disables the disk cache.
  // `maxBytes` < 0: $LINA_CACHE_MAX_MB (a bad value throws lina::Error naming it), else 4 GiB.
  explicit KernelCache(std::string directory = "", int64_t maxBytes = -1);

  // The CUBIN for `source` on `arch`, compiled with NVRTC only when no cache level has it.
  std::vector<char> cubin(const std::string& source, const std::string& sourceName, const std::string& arch);
  // Any other compiled artifact under the same rules (the LLVM CPU backend's object files,
  // `<key>.o`): `make` runs only when neither level has `key` (or the disk entry is corrupt).
  std::vector<char> artifact(const std::string& key, const std::function<std::vector<char>()>& make);

  std::string key(const std::string& source, const std::string& arch) const;
  const std::string& directory() const { return directory_; }
  CacheStats stats() const;

  // The process-wide cache.
  static KernelCache& global();

 private:
  // Memory, then disk (`file` under the directory), else `make` (outside the lock) and both written.
  std::vector<char> fetch(const std::string& file, const std::function<std::vector<char>()>& make);
  bool readEntry(const std::string& file, std::vector<char>& out);
  void writeEntry(const std::string& file, const std::vector<char>& cubin);
  void evict(const std::string& keep);

  std::string directory_;
  int64_t maxBytes_ = 0;  // 0: no cap
  mutable std::mutex mutex_;
  std::map<std::string, std::vector<char>> memory_;
  CacheStats stats_;
};

}  // namespace lina::runtime
