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

#include "compiler/reference/random_problem.h"
#include "runtime/check/check_support.h"
#include "runtime/cuda_driver.h"
#include "support/error.h"
#include "runtime/check/forward_check.h"
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
  for (const char* name : {"linear_attention", "gla_gv", "hgrn2", "rwkv6", "value_gated"}) {
    Program program = Program::fromFile(std::string(LINA_SOURCE_DIR) + "/tests/programs/" + name + ".lina");
    // D = 128 too where register tiles apply (two column tiles of the value-gated kernel).
    const bool registerTiles = std::string(name) == "linear_attention" || std::string(name) == "value_gated";
    for (int64_t D : registerTiles ? std::vector<int64_t>{64, 128} : std::vector<int64_t>{64})
    for (const char* dtype : {"bf16", "fp32"})
      for (int64_t T : {1, 65, 700}) {
        CheckOptions o = options(dtype, 2, T, 2, D, 500 + T);
        cuda::DeviceInfo info = cuda::deviceInfo(0);
        std::vector<KernelConfig> configs = program.candidateConfigs(o.shape.dims, o.dtype, info.maxSharedPerBlockOptin);
        for (const CheckReport& r : checkForwardConfigs(program, o, configs)) {
          log(describe(name, o) + " " + r.kernel + (r.passed() ? " PASS" : " FAIL"));
          EXPECT_TRUE(r.passed()) << name << " " << r.kernel;
        }
      }
  }
}

// A problem on the device for the bit-for-bit tests, and a runner that returns the bytes of
// every output and final state (in name order) of one forward launch.
struct DeviceProblem {
  Program program;
  check::DeviceBuffers device;
  ForwardArgs args;
  reference::Result shapes;

  DeviceProblem(const std::string& name, bool varlen) : program(Program::fromLibrary(name)) {
    cuda::useDevice(0);  // the buffers below need a current context, whichever test runs first
    CheckOptions o = options("bf16", 2, 1000, 2, 128, 900);
    if (varlen) {
      o.shape.batch = 1;
      o.shape.cuSeqlens = {0, 0, 37, 100, 164, 1000, 1001};
      o.shape.time = o.shape.cuSeqlens.back();
    }
    reference::Problem problem = reference::makeRandomProblem(program.recurrence(), o.shape, o.seed);
    args = check::uploadProblem(problem, o.dtype, device);
    std::string error;
    std::optional<reference::Result> ref = reference::run(program.recurrence(), problem, error);
    if (!ref) throw Error(error);
    shapes = *ref;
  }

  std::vector<std::vector<char>> run(ForwardArgs a) {
    std::vector<check::DeviceBuffer*> buffers;
    for (auto& [out, t] : shapes.outputs) {
      buffers.push_back(device.poisoned(t.data.size() * 2));
      a.outputs[out] = buffers.back()->get();
    }
    for (auto& [state, t] : shapes.finalStates) {
      buffers.push_back(device.poisoned(t.data.size() * 4));
      a.finalStates[state] = static_cast<float*>(buffers.back()->get());
    }
    program.forward(a);
    const cuda::Driver* d = cuda::driver();
    cuda::check(d->cuCtxSynchronize(), "cuCtxSynchronize");
    std::vector<std::vector<char>> bytes;
    for (check::DeviceBuffer* b : buffers) {
      bytes.emplace_back(b->bytes);
      if (b->bytes) cuda::check(d->cuMemcpyDtoH(bytes.back().data(), b->ptr, b->bytes), "cuMemcpyDtoH");
    }
    return bytes;
  }
};

// The split strategy does the fused kernel's arithmetic in two launches: the snapshots are
// exact fp32 copies of the walk's on-chip state, so outputs and final states must match the
// fused kernel's bit for bit, with stream-ordered snapshots and with the caller's workspace.
TEST(SplitStrategy, MatchesFusedBitForBit) {
  requireGpu();
  if (IsSkipped()) return;
  for (const char* name : {"gla", "retention", "gsa"})
    for (bool varlen : {false, true}) {
      DeviceProblem problem(name, varlen);
      ForwardArgs a = problem.args;
      a.chunk = 32;
      a.tile = 64;
      a.strategy = "fused";
      auto fused = problem.run(a);
      a.strategy = "split";
      bool streamOrdered = fused == problem.run(a);
      size_t bytes = problem.program.forwardWorkspaceBytes(a);
      EXPECT_GT(bytes, 0u);
      a.workspace = problem.device.poisoned(bytes)->get();
      a.workspaceBytes = bytes;
      bool callers = fused == problem.run(a);
      std::string tag = std::string(name) + (varlen ? " varlen" : "");
      EXPECT_TRUE(streamOrdered) << tag << ": split (stream-ordered snapshots) differs from fused";
      EXPECT_TRUE(callers) << tag << ": split (caller's workspace) differs from fused";
      log(tag + " split == fused bit for bit: " + (streamOrdered && callers ? "PASS" : "FAIL"));
      // A workspace too small for the snapshots is refused before any launch.
      a.workspace = problem.device.poisoned(256)->get();
      a.workspaceBytes = 256;
      try {
        problem.run(a);
        ADD_FAILURE() << tag << ": expected a workspace error";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("workspace: expected at least"), std::string::npos) << e.what();
      }
    }
}

// Prefetching (stages = 2) changes where a chunk's rows come from, not the arithmetic: outputs
// and final states match the synchronous loads bit for bit, for both strategies, and a tensor
// that is not 16-byte aligned (a view one element in) falls back to synchronous loads.
TEST(Prefetch, MatchesSynchronousLoadsBitForBit) {
  requireGpu();
  if (IsSkipped()) return;
  for (const char* name : {"gla", "retention", "gsa"})
    for (bool varlen : {false, true})
      for (const char* strategy : {"fused", "split"}) {
        DeviceProblem problem(name, varlen);
        ForwardArgs a = problem.args;
        a.strategy = strategy;
        a.chunk = 16;
        a.tile = 64;
        a.stages = 1;
        auto one = problem.run(a);
        a.stages = 2;
        bool same = one == problem.run(a);
        // The first input copied one bf16 element in: every row's start moves by 2 bytes.
        const rir::Decl& in = problem.program.recurrence().inputs[0];
        const std::string first = in.name;
        size_t bytes = static_cast<size_t>(problem.args.batch * problem.args.time * problem.args.heads) *
                       (in.shape.empty() ? 1 : static_cast<size_t>(problem.args.dims.at(in.shape[0]))) * 2;
        std::vector<char> host(bytes);
        const cuda::Driver* d = cuda::driver();
        cuda::check(d->cuMemcpyDtoH(host.data(), reinterpret_cast<CUdeviceptr>(problem.args.inputs.at(first)), bytes),
                    "cuMemcpyDtoH");
        char* shifted = static_cast<char*>(problem.device.poisoned(bytes + 16)->get()) + 2;
        cuda::check(d->cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(shifted), host.data(), bytes), "cuMemcpyHtoD");
        a.inputs[first] = shifted;
        bool misaligned = one == problem.run(a);
        std::string tag = std::string(name) + (varlen ? " varlen " : " ") + strategy;
        EXPECT_TRUE(same) << tag << ": stages 2 differs from stages 1";
        EXPECT_TRUE(misaligned) << tag << ": stages 2 with a misaligned input differs from stages 1";
        log(tag + " prefetch == synchronous bit for bit: " + (same && misaligned ? "PASS" : "FAIL"));
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
