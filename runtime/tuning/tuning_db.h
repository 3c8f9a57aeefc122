// The per-GPU tuning database (#19): the configuration a tuner measured best for a program, a
// dtype, its dims, a pass and a shape bucket, one JSON file per GPU under
// $LINA_CACHE_DIR/tuning/. Shapes are bucketed (T and B*H, or the total tokens and H for varlen,
// in powers of two) so one tuning serves nearby shapes; lookup takes the exact bucket, then the
// nearest recorded bucket of the same program, dtype, dims and pass, then nothing (the caller's
// heuristic). Writes hold an exclusive lock and replace the file by rename, so concurrent
// processes leave one valid file; a corrupt file is reported, set aside and never fatal.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/launch_args.h"

namespace lina::tuning {

struct ShapeBucket {
  bool varlen = false;
  int log2Time = 0;          // fixed length: ceil(log2 T); varlen: ceil(log2 total tokens)
  int log2Walks = 0;         // fixed length: ceil(log2 (B * H)); varlen: ceil(log2 H)
  std::string text() const;  // "T2^12.BH2^8" or "varlen.N2^15.H2^4"
  bool operator==(const ShapeBucket&) const = default;
};
ShapeBucket bucketOf(const ForwardArgs& args);

struct TuningKey {
  std::string program;  // the program's identity (a hash of its RIR)
  std::string dtype, pass = "forward";
  std::map<std::string, int64_t> dims;
  ShapeBucket bucket;
  std::string group() const;  // everything but the bucket
};

struct TunedEntry {
  KernelConfig config;
  double milliseconds = 0;
};

// A file name for a GPU: its name, SM count and clock class, with only [A-Za-z0-9._-].
std::string deviceFileName(const std::string& deviceName, int multiprocessors, int clockClassMHz);

class TuningDatabase {
 public:
  // `path`: the database file. `report` receives one line per problem (a corrupt file, an I/O
  // error); the default prints to stderr.
  explicit TuningDatabase(std::string path, std::function<void(const std::string&)> report = {});
  // Exact bucket, then the nearest bucket of the same group (by |dlog2 T| + |dlog2 walks|, ties
  // to the larger T), else nothing.
  std::optional<TunedEntry> lookup(const TuningKey& key) const;
  // Records (or replaces) the entry of `key`, under the lock, by rename.
  void record(const TuningKey& key, const TunedEntry& entry) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::function<void(const std::string&)> report_;
};

}  // namespace lina::tuning
