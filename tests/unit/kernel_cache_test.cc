// The kernel cache without a GPU: a second cache object (as a second process would) loads from
// disk without compiling; a corrupt, truncated or empty entry (or a folder in its place) is
// recompiled, never fatal; keys change with the source and the arch; the size cap evicts the
// least recently used entries; 8 processes and 8 threads compiling the same kernels into one
// folder leave one good entry and no temporary files.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "runtime/kernel_cache.h"
#include "support/error.h"

namespace lina {
namespace {

const char* kSource = R"(#include "lina/device/common.cuh"
extern "C" __global__ void add_one(float* x) { x[threadIdx.x] += 1.f; }
)";

std::string freshDirectory(const std::string& name) {
  std::string dir = std::filesystem::temp_directory_path() / ("lina-cache-test-" + name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  return dir;
}

TEST(KernelCache, SecondInstanceLoadsFromDiskWithoutCompiling) {
  std::string dir = freshDirectory("disk");
  runtime::KernelCache first(dir);
  std::vector<char> a = first.cubin(kSource, "add_one.cu", "sm_90a");
  EXPECT_EQ(first.stats().compiles, 1);
  EXPECT_EQ(first.cubin(kSource, "add_one.cu", "sm_90a"), a);
  EXPECT_EQ(first.stats().memoryHits, 1);
  runtime::KernelCache second(dir);
  EXPECT_EQ(second.cubin(kSource, "add_one.cu", "sm_90a"), a);
  EXPECT_EQ(second.stats().compiles, 0);
  EXPECT_EQ(second.stats().diskHits, 1);
  std::filesystem::remove_all(dir);
}

TEST(KernelCache, CorruptEntryIsRecompiledAndRewritten) {
  std::string dir = freshDirectory("corrupt");
  runtime::KernelCache first(dir);
  std::vector<char> good = first.cubin(kSource, "add_one.cu", "sm_80");
  std::string path = dir + "/" + first.key(kSource, "sm_80") + ".cubin";
  ASSERT_TRUE(std::filesystem::exists(path));
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.write("garbage!", 8);  // flips payload bytes: the checksum no longer matches
  }
  runtime::KernelCache second(dir);
  EXPECT_EQ(second.cubin(kSource, "add_one.cu", "sm_80"), good);
  EXPECT_EQ(second.stats().corruptEntries, 1);
  EXPECT_EQ(second.stats().compiles, 1);
  runtime::KernelCache third(dir);  // the rewritten entry is good again
  EXPECT_EQ(third.cubin(kSource, "add_one.cu", "sm_80"), good);
  EXPECT_EQ(third.stats().diskHits, 1);
  {
    std::ofstream truncated(path, std::ios::binary | std::ios::trunc);
    truncated << "LINA";
  }
  runtime::KernelCache fourth(dir);
  EXPECT_EQ(fourth.cubin(kSource, "add_one.cu", "sm_80"), good);
  EXPECT_EQ(fourth.stats().corruptEntries, 1);
  std::filesystem::remove_all(dir);
}

TEST(KernelCache, KeyCoversSourceAndArch) {
  runtime::KernelCache cache("-");
  EXPECT_NE(cache.key(kSource, "sm_80"), cache.key(kSource, "sm_90a"));
  EXPECT_NE(cache.key(kSource, "sm_80"), cache.key(std::string(kSource) + " ", "sm_80"));
  EXPECT_EQ(cache.key(kSource, "sm_80"), cache.key(kSource, "sm_80"));
}

TEST(KernelCache, UnwritableDirectoryOnlyCostsARecompile) {
  runtime::KernelCache cache("/proc/lina-cannot-write-here");
  EXPECT_FALSE(cache.cubin(kSource, "add_one.cu", "sm_80").empty());
  EXPECT_FALSE(cache.cubin(kSource, "add_one.cu", "sm_80").empty());
  EXPECT_EQ(cache.stats().compiles, 1);  // the memory level still serves the second call
}

std::string sourceNumber(int n) {
  return std::string(kSource) + "extern \"C\" __global__ void k" + std::to_string(n) + "(float* x) { x[0] = " + std::to_string(n) +
         ".f; }\n";
}

int cubinFiles(const std::string& dir, int* temporaries = nullptr) {
  int n = 0, t = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp.") != std::string::npos) ++t;
    else if (e.path().extension() == ".cubin") ++n;
  }
  if (temporaries) *temporaries = t;
  return n;
}

TEST(KernelCache, EmptyEntryOrAFolderInItsPlaceIsRecompiled) {
  std::string dir = freshDirectory("empty");
  runtime::KernelCache first(dir);
  const std::vector<char> good = first.cubin(kSource, "add_one.cu", "sm_80");
  const std::string path = dir + "/" + first.key(kSource, "sm_80") + ".cubin";
  { std::ofstream empty(path, std::ios::binary | std::ios::trunc); }
  runtime::KernelCache second(dir);
  EXPECT_EQ(second.cubin(kSource, "add_one.cu", "sm_80"), good);
  EXPECT_EQ(second.stats().corruptEntries, 1);
  std::filesystem::remove(path);
  std::filesystem::create_directories(path + "/inside");  // a folder where the entry goes: cannot be replaced
  runtime::KernelCache third(dir);
  EXPECT_EQ(third.cubin(kSource, "add_one.cu", "sm_80"), good);
  EXPECT_EQ(third.stats().compiles, 1);
  int temporaries = 0;
  cubinFiles(dir, &temporaries);
  EXPECT_EQ(temporaries, 0) << "a failed rename left its temporary file";
  std::filesystem::remove_all(dir);
}

TEST(KernelCache, SizeCapEvictsTheLeastRecentlyUsed) {
  std::string dir = freshDirectory("cap");
  runtime::KernelCache probe(dir, 0);
  const size_t one = probe.cubin(sourceNumber(0), "k.cu", "sm_80").size();
  std::filesystem::remove_all(dir);
  // Room for three entries (each a little over `one` bytes with its header), not four.
  const int64_t cap = static_cast<int64_t>(one + 64) * 3 + 32;
  runtime::KernelCache cache(dir, cap);
  for (int n = 0; n < 3; ++n) {
    cache.cubin(sourceNumber(n), "k.cu", "sm_80");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // distinct modification times
  }
  EXPECT_EQ(cubinFiles(dir), 3);
  EXPECT_EQ(cache.stats().evictions, 0);
  runtime::KernelCache reader(dir, cap);  // a disk hit on entry 0 makes entry 1 the oldest
  reader.cubin(sourceNumber(0), "k.cu", "sm_80");
  EXPECT_EQ(reader.stats().diskHits, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  cache.cubin(sourceNumber(3), "k.cu", "sm_80");
  EXPECT_GE(cache.stats().evictions, 1);
  EXPECT_LE(cubinFiles(dir), 3);
  EXPECT_FALSE(std::filesystem::exists(dir + "/" + cache.key(sourceNumber(1), "sm_80") + ".cubin")) << "the LRU entry stayed";
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + cache.key(sourceNumber(0), "sm_80") + ".cubin")) << "a recently read entry went";
  EXPECT_TRUE(std::filesystem::exists(dir + "/" + cache.key(sourceNumber(3), "sm_80") + ".cubin")) << "the new entry went";
  // An evicted kernel is compiled again, not lost.
  runtime::KernelCache later(dir, cap);
  EXPECT_FALSE(later.cubin(sourceNumber(1), "k.cu", "sm_80").empty());
  EXPECT_EQ(later.stats().compiles, 1);
  std::filesystem::remove_all(dir);
}

TEST(KernelCache, BadCapInTheEnvironmentIsAClearError) {
  ::setenv("LINA_CACHE_MAX_MB", "lots", 1);
  try {
    runtime::KernelCache cache("-");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("LINA_CACHE_MAX_MB: expected a whole number of megabytes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'lots'"), std::string::npos) << e.what();
  }
  ::unsetenv("LINA_CACHE_MAX_MB");
}

TEST(KernelCache, EightProcessesAndEightThreadsShareOneFolder) {
  const std::string dir = freshDirectory("concurrent");
  const std::vector<char> expected = runtime::KernelCache("-").cubin(sourceNumber(7), "k.cu", "sm_80");
  std::vector<pid_t> children;
  for (int i = 0; i < 8; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // each child: a cache of its own on the shared folder, the same kernels
      int code = 0;
      try {
        runtime::KernelCache c(dir, 0);
        for (int n = 6; n < 8; ++n)
          if (c.cubin(sourceNumber(n), "k.cu", "sm_80").empty()) code = 3;
        if (c.cubin(sourceNumber(7), "k.cu", "sm_80") != expected) code = 4;
      } catch (...) {
        code = 5;
      }
      ::_exit(code);
    }
    children.push_back(pid);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  for (pid_t pid : children) {
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        for (pid_t p : children) ::kill(p, SIGKILL);
        FAIL() << "a compiling child hung";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child exit status " << status;
  }
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      runtime::KernelCache c(dir, 0);  // separate instances: only the folder is shared
      ok[i] = c.cubin(sourceNumber(7), "k.cu", "sm_80") == expected && !c.cubin(sourceNumber(8 + i % 2), "k.cu", "sm_80").empty();
    });
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(ok[i]) << "thread " << i;
  int temporaries = 0;
  EXPECT_EQ(cubinFiles(dir, &temporaries), 4);
  EXPECT_EQ(temporaries, 0);
  runtime::KernelCache after(dir, 0);  // every entry reads back intact
  for (int n = 6; n < 10; ++n) EXPECT_FALSE(after.cubin(sourceNumber(n), "k.cu", "sm_80").empty());
  EXPECT_EQ(after.stats().compiles, 0);
  EXPECT_EQ(after.stats().corruptEntries, 0);
  std::filesystem::remove_all(dir);
}

TEST(Nvrtc, FailureReportsVersionOptionsAndLog) {
  runtime::KernelCache cache("-");
  try {
    cache.cubin("extern \"C\" __global__ void broken() { undefined_name(); }", "broken.cu", "sm_90a");
    FAIL() << "expected a compile error";
  } catch (const std::exception& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("NVRTC"), std::string::npos) << m;
    EXPECT_NE(m.find("--gpu-architecture=sm_90a"), std::string::npos) << m;
    EXPECT_NE(m.find("undefined_name"), std::string::npos) << m;
  }
}

TEST(Nvrtc, RejectsMalformedArch) {
  runtime::KernelCache cache("-");
  EXPECT_THROW(cache.cubin(kSource, "x.cu", "sm90"), std::exception);
}

}  // namespace
}  // namespace lina
