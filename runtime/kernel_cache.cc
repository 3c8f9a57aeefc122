#include "runtime/kernel_cache.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "support/hash.h"
#include "runtime/nvrtc_compiler.h"

namespace lina::runtime {

namespace {

constexpr char kMagic[8] = {'L', 'I', 'N', 'A', 'C', 'B', 'N', '1'};

std::string defaultDirectory() {
  if (const char* dir = std::getenv("LINA_CACHE_DIR"); dir && *dir) return dir;
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/lina";
  return "-";
}

}  // namespace

KernelCache::KernelCache(std::string directory) : directory_(directory.empty() ? defaultDirectory() : directory) {}

KernelCache& KernelCache::global() {
  static KernelCache cache;
  return cache;
}

std::string KernelCache::key(const std::string& source, const std::string& arch) const {
  Hasher h;
  h.add(source).add(arch);
  for (const std::string& o : compileOptions(arch)) h.add(o);
  h.add(nvrtcVersion()).add(deviceLibraryHash());
  return h.hex();
}

CacheStats KernelCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

bool KernelCache::readEntry(const std::string& key, std::vector<char>& out) {
  if (directory_ == "-") return false;
  std::ifstream in(directory_ + "/" + key + ".cubin", std::ios::binary);
  if (!in) return false;
  // Layout: magic[8] | payload size (8 bytes) | checksum (32 hex chars) | payload.
  char magic[8];
  uint64_t size = 0;
  char checksum[32];
  bool ok = static_cast<bool>(in.read(magic, 8)) && std::memcmp(magic, kMagic, 8) == 0 &&
            in.read(reinterpret_cast<char*>(&size), 8) && size < (1ULL << 31) && in.read(checksum, 32);
  if (ok) {
    out.resize(size);
    ok = static_cast<bool>(in.read(out.data(), static_cast<std::streamsize>(size))) &&
         Hasher().add(std::string_view(out.data(), out.size())).hex() == std::string(checksum, 32);
  }
  if (!ok) {
    ++stats_.corruptEntries;
    out.clear();
  }
  return ok;
}

void KernelCache::writeEntry(const std::string& key, const std::vector<char>& cubin) {
  if (directory_ == "-") return;
  std::error_code ec;
  std::filesystem::create_directories(directory_, ec);
  if (ec) return;  // an unwritable cache only costs a recompile next time
  std::string final = directory_ + "/" + key + ".cubin";
  std::string temp = final + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    uint64_t size = cubin.size();
    std::string checksum = Hasher().add(std::string_view(cubin.data(), cubin.size())).hex();
    out.write(kMagic, 8);
    out.write(reinterpret_cast<const char*>(&size), 8);
    out.write(checksum.data(), 32);
    out.write(cubin.data(), static_cast<std::streamsize>(cubin.size()));
    if (!out) {
      std::filesystem::remove(temp, ec);
      return;
    }
  }
  std::filesystem::rename(temp, final, ec);
  if (ec) std::filesystem::remove(temp, ec);
}

std::vector<char> KernelCache::cubin(const std::string& source, const std::string& sourceName, const std::string& arch) {
  std::string k = key(source, arch);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = memory_.find(k);
    if (it != memory_.end()) {
      ++stats_.memoryHits;
      return it->second;
    }
    std::vector<char> fromDisk;
    if (readEntry(k, fromDisk)) {
      ++stats_.diskHits;
      memory_[k] = fromDisk;
      return fromDisk;
    }
  }
  CompileResult compiled = compileToCubin(source, sourceName, arch);  // outside the lock: slow
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.compiles;
  stats_.compileMilliseconds += compiled.milliseconds;
  writeEntry(k, compiled.cubin);
  memory_[k] = compiled.cubin;
  return compiled.cubin;
}

}  // namespace lina::runtime
