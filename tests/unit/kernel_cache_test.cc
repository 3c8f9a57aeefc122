// The kernel cache without a GPU: a second cache object (as a second process would) loads from
// disk without compiling; a corrupt entry is recompiled and rewritten, never fatal; keys change
// with the source and the arch.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runtime/kernel_cache.h"

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
