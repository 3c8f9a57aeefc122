// The tuning database (runtime/tuning): shape buckets, lookup order (exact, nearest, none),
// atomic writes under concurrent processes, and corrupt files reported and never fatal.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "runtime/tuning/tuning_db.h"

namespace lina::tuning {
namespace {

ForwardArgs shape(int64_t B, int64_t T, int64_t H) {
  ForwardArgs a;
  a.batch = B;
  a.time = T;
  a.heads = H;
  return a;
}

TuningKey key(int64_t B, int64_t T, int64_t H) {
  TuningKey k;
  k.program = "abc123";
  k.dtype = "bf16";
  k.dims = {{"K", 128}, {"V", 128}};
  k.bucket = bucketOf(shape(B, T, H));
  return k;
}

TunedEntry entry(int chunk, double ms) {
  TunedEntry e;
  e.config.chunk = chunk;
  e.config.tile = 64;
  e.config.warps = 4;
  e.config.stages = 2;
  e.config.registerTiles = true;
  e.milliseconds = ms;
  return e;
}

std::string tempPath(const std::string& name) {
  const std::string p = ::testing::TempDir() + "lina_tuning_" + name + "_" + std::to_string(::getpid()) + ".json";
  std::remove(p.c_str());
  return p;
}

TEST(TuningDatabase, Buckets) {
  EXPECT_EQ(bucketOf(shape(4, 4096, 64)).text(), "T2^12.BH2^8");
  EXPECT_EQ(bucketOf(shape(4, 4000, 64)), bucketOf(shape(4, 4096, 64))) << "T rounds up to a power of two";
  EXPECT_NE(bucketOf(shape(4, 4097, 64)), bucketOf(shape(4, 4096, 64)));
  EXPECT_EQ(bucketOf(shape(8, 2048, 16)).text(), "T2^11.BH2^7");
  ForwardArgs v = shape(1, 31958, 16);
  static const int32_t cu[] = {0, 100, 31958};
  v.cuSeqlens = cu;
  v.numSequences = 2;
  EXPECT_EQ(bucketOf(v).text(), "varlen.N2^15.H2^4");
  EXPECT_EQ(deviceFileName("NVIDIA H100 80GB HBM3", 132, 1980), "NVIDIA_H100_80GB_HBM3.sm132.clk1980.json");
}

TEST(TuningDatabase, ExactThenNearestThenNothing) {
  std::vector<std::string> reports;
  TuningDatabase db(tempPath("lookup"), [&](const std::string& r) { reports.push_back(r); });
  EXPECT_FALSE(db.lookup(key(4, 4096, 64))) << "no file: the heuristic";
  db.record(key(4, 4096, 64), entry(64, 0.71));
  db.record(key(8, 2048, 16), entry(32, 0.19));
  const auto exact = db.lookup(key(4, 4096, 64));
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->config.chunk, 64);
  EXPECT_EQ(exact->milliseconds, 0.71);
  EXPECT_TRUE(exact->config.registerTiles);
  // B4_T8192_H64 is one step from B4_T4096_H64 and 3 from B8_T2048_H16.
  EXPECT_EQ(db.lookup(key(4, 8192, 64))->config.chunk, 64);
  EXPECT_EQ(db.lookup(key(8, 1024, 16))->config.chunk, 32);
  // Another dtype, dims or pass is another group: nothing.
  TuningKey other = key(4, 4096, 64);
  other.dtype = "fp32";
  EXPECT_FALSE(db.lookup(other));
  other = key(4, 4096, 64);
  other.pass = "backward";
  EXPECT_FALSE(db.lookup(other));
  // A record replaces its bucket's entry.
  db.record(key(4, 4096, 64), entry(16, 0.5));
  EXPECT_EQ(db.lookup(key(4, 4096, 64))->config.chunk, 16);
  EXPECT_TRUE(reports.empty());
}

TEST(TuningDatabase, CorruptFileIsReportedAndIgnored) {
  const std::string path = tempPath("corrupt");
  std::ofstream(path) << "{\"entries\": {\"abc";  // truncated
  std::vector<std::string> reports;
  TuningDatabase db(path, [&](const std::string& r) { reports.push_back(r); });
  EXPECT_FALSE(db.lookup(key(4, 4096, 64)));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("is corrupt"), std::string::npos) << reports[0];
  EXPECT_NE(reports[0].find(path), std::string::npos) << reports[0];
  db.record(key(4, 4096, 64), entry(64, 0.7));  // rewrites it; the corrupt one is set aside
  EXPECT_EQ(db.lookup(key(4, 4096, 64))->config.chunk, 64);
  EXPECT_TRUE(std::ifstream(path + ".corrupt").good());
  // An entry this version cannot read is skipped, the rest still found.
  std::ofstream(path) << R"({"version": 1, "entries": {")" << key(1, 1, 1).group()
                      << R"(": {"T2^12.BH2^8": {"strategy": "warp-drive"}}}})";
  EXPECT_FALSE(db.lookup(key(4, 4096, 64)));
}

// 8 processes recording 8 keys each at once leave one valid file with all 64 entries.
TEST(TuningDatabase, ConcurrentWritersLeaveOneValidFile) {
  const std::string path = tempPath("concurrent");
  std::vector<pid_t> children;
  for (int p = 0; p < 8; ++p) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      TuningDatabase db(path, [](const std::string&) { _exit(3); });
      for (int i = 0; i < 8; ++i) db.record(key(1, int64_t{1} << (p + 1), int64_t{1} << i), entry(16 * (1 + i % 4), p + i));
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t c : children) {
    int status = 0;
    waitpid(c, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  std::vector<std::string> reports;
  TuningDatabase db(path, [&](const std::string& r) { reports.push_back(r); });
  for (int p = 0; p < 8; ++p)
    for (int i = 0; i < 8; ++i) {
      const auto e = db.lookup(key(1, int64_t{1} << (p + 1), int64_t{1} << i));
      ASSERT_TRUE(e) << p << " " << i;
      EXPECT_EQ(e->milliseconds, p + i);
    }
  EXPECT_TRUE(reports.empty());
}

}  // namespace
}  // namespace lina::tuning
