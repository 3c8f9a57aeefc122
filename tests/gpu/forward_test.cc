// GPU forward kernels against the reference interpreter (label `gpu`; skipped without a GPU).
// Every library program, every configuration the runtime may pick for the dims (the recurrent
// step kernel and each fused chunk size that fits), bf16 and fp32 (fp16 on a subset), T in
// {1, 7, 63, 64, 65, 1000, 4096}, K = V in {64, 128, 256}, random initial states; varlen with a
// zero-length sequence and lengths that are not multiples of the chunk. fla's metric: RMS error
// ratio <= 5e-3 (bf16/fp16), <= 1e-5 (fp32), for outputs and final states. A summary line per
// check goes to stdout (and to $LINA_GPU_LOG when set) for bench/results.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "runtime/cuda_driver.h"
#include "runtime/error.h"
#include "runtime/forward_check.h"
#include "tests/gpu/gpu_test_support.h"

namespace lina {
namespace {

// Checks every candidate configuration on one problem; returns the number of failures.
int checkAll(const std::string& name, CheckOptions o) {
  Program program = Program::fromLibrary(name);
  cuda::DeviceInfo info = cuda::deviceInfo(0);
  std::vector<KernelConfig> configs = program.candidateConfigs(o.shape.dims, o.dtype, info.maxSharedPerBlockOptin);
  EXPECT_FALSE(configs.empty()) << describe(name, o);
  std::vector<CheckReport> reports = checkForwardConfigs(program, o, configs);
  int failures = 0;
  for (const CheckReport& r : reports) {
    char line[512];
    std::snprintf(line, sizeof line, "%s %-28s worst-ratio %.2e %s", describe(name, o).c_str(), r.kernel.c_str(),
                  worstRatio(r), r.passed() ? "PASS" : "FAIL");
    log(line);
    failures += reportFailure(describe(name, o), r);
  }
  return failures;
}

class LibraryForward : public ::testing::TestWithParam<std::string> {};

TEST_P(LibraryForward, FixedLengthAllConfigs) {
  requireGpu();
  if (IsSkipped()) return;
  uint64_t seed = 1;
  for (int64_t D : {64, 128, 256})
    for (int64_t T : {1, 7, 63, 64, 65, 1000, 4096})
      for (const char* dtype : {"bf16", "fp32"}) {
        int64_t B = T >= 4096 ? 1 : 2, H = 2;
        checkAll(GetParam(), options(dtype, B, T, H, D, seed++));
      }
}

TEST_P(LibraryForward, Fp16) {
  requireGpu();
  if (IsSkipped()) return;
  for (int64_t T : {7, 65, 1000}) checkAll(GetParam(), options("fp16", 2, T, 2, 128, 100 + T));
}

TEST_P(LibraryForward, VarlenWithEmptySequence) {
  requireGpu();
  if (IsSkipped()) return;
  uint64_t seed = 200;
  for (int64_t D : {64, 128, 256})
    for (const char* dtype : {"bf16", "fp32"}) {
      CheckOptions o = options(dtype, 1, 0, 2, D, seed++);
      o.shape.cuSeqlens = {0, 0, 37, 100, 164, 1000, 1001};  // empty, 37, 63, 64, 836, 1
      o.shape.time = o.shape.cuSeqlens.back();
      checkAll(GetParam(), o);
    }
}

TEST_P(LibraryForward, WithoutInitialState) {
  requireGpu();
  if (IsSkipped()) return;
  CheckOptions o = options("bf16", 2, 300, 3, 64, 300);
  o.shape.initialStates = false;
  checkAll(GetParam(), o);
}

TEST_P(LibraryForward, DecodeInPlace) {
  requireGpu();
  if (IsSkipped()) return;
  // One step and a few steps, the state updated in its own buffer (decode).
  for (int64_t T : {1, 3}) {
    CheckOptions o = options("bf16", 4, T, 4, 128, 400 + T);
    o.inPlace = true;
    o.strategy = "recurrent";
    Program program = Program::fromLibrary(GetParam());
    CheckReport r = checkForward(program, o);
    log(describe(GetParam(), o) + " in-place " + r.kernel + (r.passed() ? " PASS" : " FAIL"));
    EXPECT_TRUE(r.passed()) << r.kernel;
  }
}

INSTANTIATE_TEST_SUITE_P(Library, LibraryForward, ::testing::Values("gla", "simple_gla", "retention", "gsa"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

// `linac check` works for any program, not only the library: the DSL variants under tests/programs.
TEST(VariantForward, LinacCheckOnDslVariants) {
  requireGpu();
  if (IsSkipped()) return;
  for (const char* name : {"linear_attention", "gla_gv", "hgrn2", "rwkv6"}) {
    Program program = Program::fromFile(std::string(LINA_SOURCE_DIR) + "/tests/programs/" + name + ".lina");
    for (const char* dtype : {"bf16", "fp32"})
      for (int64_t T : {1, 65, 700}) {
        CheckOptions o = options(dtype, 2, T, 2, 64, 500 + T);
        cuda::DeviceInfo info = cuda::deviceInfo(0);
        std::vector<KernelConfig> configs = program.candidateConfigs(o.shape.dims, o.dtype, info.maxSharedPerBlockOptin);
        for (const CheckReport& r : checkForwardConfigs(program, o, configs)) {
          log(describe(name, o) + " " + r.kernel + (r.passed() ? " PASS" : " FAIL"));
          EXPECT_TRUE(r.passed()) << name << " " << r.kernel;
        }
      }
  }
}

// The derived backward's two passes are ordinary programs: their kernels run on the GPU against
// the reference interpreter on random inputs, for every configuration, like any forward.
TEST(GpuErrors, UnsupportedDimsSayWhy) {
  requireGpu();
  if (IsSkipped()) return;
  Program gla = Program::fromLibrary("gla");
  ForwardArgs a;
  a.batch = 1;
  a.time = 64;
  a.heads = 1;
  a.dims = {{"K", 100000}, {"V", 64}};
  try {
    (void)gla.chooseConfig(a, cuda::deviceInfo(0).maxSharedPerBlockOptin);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fits in"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lina
