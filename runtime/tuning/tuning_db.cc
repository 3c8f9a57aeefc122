#include "runtime/tuning/tuning_db.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/error.h"

namespace lina::tuning {

namespace {

using json = nlohmann::json;

int ceilLog2(int64_t x) {
  int l = 0;
  while ((int64_t{1} << l) < x && l < 62) ++l;
  return l;
}

const char* strategyText(cir::Strategy s) {
  switch (s) {
    case cir::Strategy::Fused:
      return "fused";
    case cir::Strategy::Split:
      return "split";
    case cir::Strategy::Recurrent:
      return "recurrent";
  }
  return "?";
}

json toJson(const TunedEntry& e) {
  const KernelConfig& c = e.config;
  return {{"strategy", strategyText(c.strategy)},
          {"chunk", c.chunk},
          {"tile", c.tile},
          {"warps", c.warps},
          {"stages", c.stages},
          {"register_tiles", c.registerTiles},
          {"ms", e.milliseconds}};
}

// Throws std::runtime_error (not lina::Error: a bad entry is skipped, not reported to the user).
TunedEntry fromJson(const json& j) {
  TunedEntry e;
  const std::string s = j.at("strategy").get<std::string>();
  if (s == "fused")
    e.config.strategy = cir::Strategy::Fused;
  else if (s == "split")
    e.config.strategy = cir::Strategy::Split;
  else if (s == "recurrent")
    e.config.strategy = cir::Strategy::Recurrent;
  else
    throw std::runtime_error("strategy '" + s + "'");
  e.config.chunk = j.at("chunk").get<int>();
  e.config.tile = j.at("tile").get<int>();
  e.config.warps = j.at("warps").get<int>();
  e.config.stages = j.at("stages").get<int>();
  e.config.registerTiles = j.at("register_tiles").get<bool>();
  e.milliseconds = j.at("ms").get<double>();
  return e;
}

// The file's entries: {group: {bucket: entry}}; empty with a report when missing or corrupt.
json readFile(const std::string& path, const std::function<void(const std::string&)>& report,
              bool* corrupt) {
  *corrupt = false;
  std::ifstream in(path);
  if (!in) return json::object();
  std::stringstream s;
  s << in.rdbuf();
  try {
    json j = json::parse(s.str());
    if (!j.is_object() || !j.contains("entries") || !j["entries"].is_object())
      throw std::runtime_error("no 'entries' object");
    return j["entries"];
  } catch (const std::exception& e) {
    *corrupt = true;
    report("tuning database '" + path + "' is corrupt (" + e.what() +
           "); ignoring it (the heuristic is used; the next tuning rewrites it)");
    return json::object();
  }
}

}  // namespace

std::string ShapeBucket::text() const {
  return varlen ? "varlen.N2^" + std::to_string(log2Time) + ".H2^" + std::to_string(log2Walks)
                : "T2^" + std::to_string(log2Time) + ".BH2^" + std::to_string(log2Walks);
}

ShapeBucket bucketOf(const ForwardArgs& a) {
  ShapeBucket b;
  b.varlen = a.cuSeqlens != nullptr;
  if (b.varlen) {
    b.log2Time = ceilLog2(std::max<int64_t>(1, a.time));
    b.log2Walks = ceilLog2(std::max<int64_t>(1, a.heads));
  } else {
    b.log2Time = ceilLog2(std::max<int64_t>(1, a.time));
    b.log2Walks = ceilLog2(std::max<int64_t>(1, a.batch * a.heads));
  }
  return b;
}

std::string TuningKey::group() const {
  std::string g = program + "|" + dtype + "|" + pass + "|";
  for (const auto& [d, n] : dims) g += d + "=" + std::to_string(n) + ",";
  return g;
}

std::string deviceFileName(const std::string& name, int multiprocessors, int clockClassMHz) {
  std::string s;
  for (char c : name)
    s += (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-') ? c : '_';
  return s + ".sm" + std::to_string(multiprocessors) + ".clk" + std::to_string(clockClassMHz) +
         ".json";
}

TuningDatabase::TuningDatabase(std::string path, std::function<void(const std::string&)> report)
    : path_(std::move(path)), report_(std::move(report)) {
  if (!report_) report_ = [](const std::string& line) { std::cerr << "lina: " << line << "\n"; };
}

std::optional<TunedEntry> TuningDatabase::lookup(const TuningKey& key) const {
  bool corrupt = false;
  const json entries = readFile(path_, report_, &corrupt);
  auto group = entries.find(key.group());
  if (group == entries.end() || !group->is_object()) return std::nullopt;
  std::optional<TunedEntry> best;
  int bestDistance = 1 << 30, bestTime = -1;
  for (auto it = group->begin(); it != group->end(); ++it) {
    ShapeBucket b;
    char kind[16] = {0};
    int t = 0, w = 0;
    if (std::sscanf(it.key().c_str(), "T2^%d.BH2^%d", &t, &w) == 2) {
      b = {false, t, w};
    } else if (std::sscanf(it.key().c_str(), "varlen.N2^%d.H2^%d", &t, &w) == 2) {
      b = {true, t, w};
    } else {
      (void)kind;
      continue;
    }
    if (b.varlen != key.bucket.varlen) continue;
    TunedEntry e;
    try {
      e = fromJson(it.value());
    } catch (const std::exception&) {
      continue;  // an entry this version cannot read: skipped
    }
    if (b == key.bucket) return e;
    const int d =
        std::abs(b.log2Time - key.bucket.log2Time) + std::abs(b.log2Walks - key.bucket.log2Walks);
    if (d < bestDistance || (d == bestDistance && b.log2Time > bestTime))
      best = e, bestDistance = d, bestTime = b.log2Time;
  }
  return best;
}

void TuningDatabase::record(const TuningKey& key, const TunedEntry& entry) const {
  if (const size_t slash = path_.rfind('/'); slash != std::string::npos && slash > 0) {
    std::error_code
        ec;  // a missing cache directory is made; a failure shows up as the lock file's error
    std::filesystem::create_directories(path_.substr(0, slash), ec);
  }
  const std::string lockPath = path_ + ".lock";
  const int lock = ::open(lockPath.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  if (lock < 0)
    throw Error("tuning database '" + path_ +
                "': cannot open its lock file: " + std::strerror(errno));
  if (flock(lock, LOCK_EX) != 0) {
    ::close(lock);
    throw Error("tuning database '" + path_ + "': cannot lock it: " + std::strerror(errno));
  }
  struct Unlock {
    int fd;
    ~Unlock() {
      flock(fd, LOCK_UN);
      ::close(fd);
    }
  } unlock{lock};
  bool corrupt = false;
  json entries = readFile(path_, report_, &corrupt);
  if (corrupt)
    std::rename(path_.c_str(), (path_ + ".corrupt").c_str());  // kept for a look, out of the way
  entries[key.group()][key.bucket.text()] = toJson(entry);
  const json file = {{"version", 1}, {"entries", entries}};
  const std::string tmp = path_ + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << file.dump(1) << "\n";
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw Error("tuning database '" + path_ + "': cannot write '" + tmp +
                  "' (disk full?); the database is unchanged");
    }
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error("tuning database '" + path_ + "': cannot replace it: " + why);
  }
}

}  // namespace lina::tuning
