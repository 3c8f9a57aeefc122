// Every library kernel the runtime may pick compiles with NVRTC for sm_80 and sm_90a (no GPU
// needed): each program x dims {64, 128, 256} x dtype x every candidate configuration (the
// recurrent step kernel and each fused chunk size that fits the architecture's shared memory).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <mutex>
#include <set>

#include "library/library.h"
#include "support/error.h"
#include "runtime/nvrtc_compiler.h"
#include "runtime/kir_backward.h"
#include "runtime/program.h"

namespace lina {
namespace {

struct Job {
  std::string label, source, name, arch;
};

// Compiles the jobs on two workers (the CI machine has two cores); returns the failures.
// LINA_NVRTC_EVERY=N compiles every N-th job only: the ASan pass sets it (CMakePresets.json),
// since its emitters run under the sanitizers for every job anyway and NVRTC itself is not
// instrumented, so compiling the rest would repeat the default pass's work.
std::vector<std::string> compileAll(const std::vector<Job>& allJobs) {
  size_t every = 1;
  if (const char* e = std::getenv("LINA_NVRTC_EVERY")) every = std::max<size_t>(1, static_cast<size_t>(std::atoi(e)));
  // Work that repeats another job is trimmed: an identical (source, arch) compiles once, and an
  // sm_80 job whose source is also compiled for sm_90a is sampled one in four. The device
  // library has no __CUDA_ARCH__ branches, so such a job only reruns ptxas for the other target;
  // the sample still catches an instruction sm_80 lacks, and every source that differs for
  // sm_80 (other shared-memory limits, other configurations) compiles.
  std::set<std::pair<std::string, std::string>> seen;
  std::set<std::string> sm90;
  for (const Job& j : allJobs)
    if (j.arch == "sm_90a") sm90.insert(j.source);
  std::vector<Job> unique;
  size_t sampled = 0;
  for (const Job& j : allJobs) {
    if (!seen.insert({j.arch, j.source}).second) continue;
    if (j.arch == "sm_80" && sm90.count(j.source) && sampled++ % 4 != 0) continue;
    unique.push_back(j);
  }
  std::vector<Job> jobs;
  for (size_t i = 0; i < unique.size(); i += every) jobs.push_back(unique[i]);
  std::printf("%zu jobs: %zu compiled (%zu sm_80 sources shared with sm_90a, sampled 1 in 4; every %zu-th)\n",
              allJobs.size(), jobs.size(), sampled, every);
  std::mutex mutex;
  size_t next = 0;
  std::vector<std::string> failures;
  auto worker = [&] {
    for (;;) {
      size_t i;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (next == jobs.size()) return;
        i = next++;
      }
      try {
        runtime::CompileResult r = runtime::compileToCubin(jobs[i].source, jobs[i].name + ".cu", jobs[i].arch);
        if (r.cubin.empty()) throw Error("empty cubin");
      } catch (const Error& e) {
        std::lock_guard<std::mutex> lock(mutex);
        failures.push_back(jobs[i].label + ": " + e.what());
      }
    }
  };
  auto a = std::async(std::launch::async, worker);
  worker();
  a.get();
  return failures;
}

TEST(NvrtcCompile, EveryLibraryKernelForSm80AndSm90a) {
  std::vector<Job> jobs;
  for (const library::Program& lib : library::programs()) {
    Program program = Program::fromLibrary(lib.name);
    for (const char* arch : {"sm_80", "sm_90a"})
      for (int64_t D : {64, 128, 256})
        for (const char* dtype : {"bf16", "fp32", "fp16"}) {
          if (std::string(dtype) == "fp16" && D != 128) continue;  // fp16 differs from bf16 only in conversions
          std::map<std::string, int64_t> dims;
          for (const std::string& d : program.recurrence().dims) dims[d] = d == "M" ? 64 : D;
          std::vector<KernelConfig> configs =
              program.candidateConfigs(dims, dtype, runtime::sharedMemoryLimitForArch(arch));
          EXPECT_GE(configs.size(), 2u) << lib.name << " " << arch << " D=" << D << ": the recurrent kernel and at "
                                        << "least one fused chunk size must fit";
          for (const KernelConfig& c : configs)
            for (const codegen::EmittedKernel& k : program.emitKernels(c, dims, dtype))
              jobs.push_back({k.name + " " + arch + " " + dtype + " D=" + std::to_string(D), k.source, k.name, arch});
        }
  }
  std::vector<std::string> failures = compileAll(jobs);
  for (const std::string& f : failures) ADD_FAILURE() << f;
  RecordProperty("kernels", static_cast<int>(jobs.size()));
  std::printf("compiled %zu kernels\n", jobs.size());
  EXPECT_GT(jobs.size(), 100u);
}

// The derived backward's kernels as Program::backward launches them (reversed time, fp32
// intermediates, per-sequence inputs, accumulated and discarded outputs), every (strategy, chunk)
// both passes can run on sm_90a, plus the glue kernels.
TEST(NvrtcCompile, EveryLibraryBackwardKernelForSm90a) {
  const std::string arch = "sm_90a";
  std::vector<Job> jobs = {{"glue", "#include \"lina/device/gradient_glue.cuh\"\n", "lina_gradient_glue", arch}};
  for (const library::Program& lib : library::programs()) {
    Program program = Program::fromLibrary(lib.name);
    for (int64_t D : {64, 128, 256})
      for (const char* dtype : {"bf16", "fp32"}) {
        BackwardArgs args;
        args.forward.dtype = dtype;
        args.forward.batch = 2;
        args.forward.time = 1000;
        args.forward.heads = 2;
        args.forward.kernels = "register";  // what kernels=register launches (auto keeps the derived passes for dg)
        for (const std::string& d : program.recurrence().dims) args.forward.dims[d] = d == "M" ? 64 : D;
        static float token;  // any non-null pointer: nothing is launched
        for (const rir::Decl& in : program.recurrence().inputs) args.inputGrads[in.name] = &token;
        for (const rir::Decl& s : program.recurrence().states) {
          args.finalStateGrads[s.name] = &token;
          args.initialStateGrads[s.name] = &token;
        }
        auto [a, b] = program.backwardPassArgs(args);
        EXPECT_TRUE(b.layout.reverseTime);
        EXPECT_FALSE(b.layout.perSequenceInputs.empty()) << lib.name;
        EXPECT_FALSE(a.layout.fp32Tensors.empty()) << lib.name;
        int64_t limit = runtime::sharedMemoryLimitForArch(arch);
        // K = V = 256: the passes run in blocks of V (GSA, whose Sk has no V, runs recurrent).
        auto [passA, passB] = program.backwardPassesFor(args);
        for (auto [pass, launch] : {std::pair{passA, &a}, std::pair{passB, &b}}) {
          std::vector<KernelConfig> configs =
              pass->candidateConfigs(launch->dims, dtype, limit, launch->layout.oneTilePerLaunch, launch->layout);
          std::erase_if(configs, [&](const KernelConfig& c) { return launch->tile && c.tile != launch->tile; });
          EXPECT_GE(configs.size(), D == 256 ? 1u : 2u) << pass->recurrence().name << " D=" << D;
          for (const KernelConfig& c : configs) {
            if (c.strategy == cir::Strategy::Split) continue;  // backward() runs the passes fused or recurrent
            codegen::EmittedKernel k = pass->emitKernels(c, launch->dims, dtype, launch->layout).front();
            jobs.push_back({k.name + " " + dtype + " D=" + std::to_string(D), k.source, k.name, arch});
          }
        }
      }
  }
  for (const std::string& f : compileAll(jobs)) ADD_FAILURE() << f;
  std::printf("compiled %zu backward kernels\n", jobs.size());
  EXPECT_GT(jobs.size(), 30u);
}

// The register-tile backward (runtime/kir_backward.h) of every library program it covers, for
// sm_80 and sm_90a at D = 64 and 128: with every gradient wanted (fp32 dq, dk and the glue), and
// with only dv and dk (bf16 walks, no glue).
TEST(NvrtcCompile, RegisterTileBackwardKernels) {
  std::vector<Job> jobs;
  int programs = 0;
  for (const library::Program& lib : library::programs()) {
    Program program = Program::fromLibrary(lib.name);
    bool covered = false;
    for (int64_t D : {64, 128})
      for (bool everything : {true, false}) {
        BackwardArgs args;
        args.forward.batch = 2;
        args.forward.time = 1000;
        args.forward.heads = 2;
        args.forward.kernels = "register";  // what kernels=register launches (auto keeps the derived passes for dg)
        for (const std::string& d : program.recurrence().dims) args.forward.dims[d] = d == "M" ? 64 : D;
        static float token;
        for (const rir::Decl& in : program.recurrence().inputs) args.inputGrads[in.name] = &token;
        if (everything) {
          for (const rir::Decl& s : program.recurrence().states) args.initialStateGrads[s.name] = &token;
          for (const rir::Decl& p : program.recurrence().params)
            if (p.shape.empty()) args.paramGrads[p.name] = &token;
        } else {
          for (const rir::Decl& in : program.recurrence().inputs)
            if (in.name != "k" && in.name != "v") args.inputGrads.erase(in.name);
        }
        const std::string why = runtime::kirBackwardUnsupported(program, args);
        if (!why.empty()) {
          EXPECT_TRUE(lib.name == std::string("gsa")) << lib.name << " D=" << D << ": " << why;
          continue;
        }
        covered = true;
        for (const char* arch : {"sm_80", "sm_90a"})
          for (const codegen::EmittedKernel& k : runtime::kirBackwardEmitted(program, args))
            jobs.push_back({k.name + " " + arch + " D=" + std::to_string(D), k.source, k.name, arch});
      }
    programs += covered;
  }
  for (const std::string& f : compileAll(jobs)) ADD_FAILURE() << f;
  std::printf("compiled %zu register-tile backward kernels\n", jobs.size());
  EXPECT_EQ(programs, 3) << "GLA, simple GLA and retention";
  EXPECT_GT(jobs.size(), 30u);
}

}  // namespace
}  // namespace lina
