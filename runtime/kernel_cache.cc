#include "runtime/kernel_cache.h"

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "support/error.h"
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

int64_t capFromEnvironment() {
  const char* v = std::getenv("LINA_CACHE_MAX_MB");
  if (!v || !*v) return int64_t{4096} << 20;
  char* end = nullptr;
  const long long mb = std::strtoll(v, &end, 10);
  if (*end != '\0' || mb < 0 || mb > (1LL << 30))
    throw Error(std::string("LINA_CACHE_MAX_MB: expected a whole number of megabytes (0: no cap); got '") + v +
                "' (unset it for the default, 4096)");
  return static_cast<int64_t>(mb) << 20;
}

// A temporary file name no other writer uses: the process, the thread and a counter.
std::string uniqueSuffix() {
  static std::atomic<uint64_t> counter{0};
  return ".tmp." + std::to_string(::getpid()) + "." + std::to_string(std::hash<std::thread::id>{}(std::this_thread::get_id())) +
         "." + std::to_string(counter++);
}

}  // namespace

KernelCache::KernelCache(std::string directory, int64_t maxBytes)
    : directory_(directory.empty() ? defaultDirectory() : directory), maxBytes_(maxBytes < 0 ? capFromEnvironment() : maxBytes) {}

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

bool KernelCache::readEntry(const std::string& file, std::vector<char>& out) {
  if (directory_ == "-") return false;
  std::ifstream in(directory_ + "/" + file, std::ios::binary);
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

void KernelCache::writeEntry(const std::string& file, const std::vector<char>& cubin) {
  if (directory_ == "-") return;
  std::error_code ec;
  std::filesystem::create_directories(directory_, ec);
  if (ec) return;  // an unwritable cache only costs a recompile next time
  std::string final = directory_ + "/" + file;
  std::string temp = final + uniqueSuffix();
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
  if (ec) {
    std::filesystem::remove(temp, ec);
    return;
  }
  if (maxBytes_ > 0) evict(final);
}

void KernelCache::evict(const std::string& keep) {
  namespace fs = std::filesystem;
  struct Entry {
    fs::path path;
    fs::file_time_type time;
    uintmax_t bytes;
  };
  std::vector<Entry> entries;
  uintmax_t total = 0;
  std::error_code ec;
  const auto now = fs::file_time_type::clock::now();
  for (fs::directory_iterator it(directory_, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    std::error_code e2;
    const fs::file_time_type t = fs::last_write_time(p, e2);
    if (e2) continue;
    if (name.find(".cubin.tmp.") != std::string::npos || name.find(".o.tmp.") != std::string::npos) {  // a writer that died before its rename
      if (now - t > std::chrono::hours(1)) fs::remove(p, e2);
      continue;
    }
    if ((p.extension() != ".cubin" && p.extension() != ".o") || !it->is_regular_file(e2)) continue;
    const uintmax_t bytes = fs::file_size(p, e2);
    if (e2) continue;
    total += bytes;
    if (p.string() != keep) entries.push_back({p, t, bytes});
  }
  if (total <= static_cast<uintmax_t>(maxBytes_)) return;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.time < b.time; });
  const uintmax_t target = static_cast<uintmax_t>(maxBytes_) / 10 * 9;
  for (const Entry& e : entries) {
    if (total <= target) break;
    std::error_code e2;
    if (fs::remove(e.path, e2)) {
      total -= e.bytes;
      ++stats_.evictions;
    }
  }
}

std::vector<char> KernelCache::cubin(const std::string& source, const std::string& sourceName, const std::string& arch) {
  return fetch(key(source, arch) + ".cubin", [&] {
    CompileResult compiled = compileToCubin(source, sourceName, arch);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.compileMilliseconds += compiled.milliseconds;
    return compiled.cubin;
  });
}

std::vector<char> KernelCache::artifact(const std::string& key, const std::function<std::vector<char>()>& make) {
  return fetch(key + ".o", make);
}

std::vector<char> KernelCache::fetch(const std::string& file, const std::function<std::vector<char>()>& make) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = memory_.find(file);
    if (it != memory_.end()) {
      ++stats_.memoryHits;
      return it->second;
    }
    std::vector<char> fromDisk;
    if (readEntry(file, fromDisk)) {
      ++stats_.diskHits;
      std::error_code ec;  // recently used: the eviction keeps it longer
      std::filesystem::last_write_time(directory_ + "/" + file, std::filesystem::file_time_type::clock::now(), ec);
      memory_[file] = fromDisk;
      return fromDisk;
    }
  }
  std::vector<char> made = make();  // outside the lock: slow
  std::lock_guard<std::mutex> lock(mutex_);
  ++stats_.compiles;
  writeEntry(file, made);
  memory_[file] = made;
  return made;
}

}  // namespace lina::runtime
