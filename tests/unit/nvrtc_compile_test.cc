// Every library kernel the runtime may pick compiles with NVRTC for sm_80 and sm_90a (no GPU
// needed): each program x dims {64, 128, 256} x dtype x every candidate configuration (the
// recurrent step kernel and each fused chunk size that fits the architecture's shared memory).
#include <gtest/gtest.h>

#include <future>
#include <mutex>

#include "library/library.h"
#include "runtime/error.h"
#include "runtime/nvrtc_compiler.h"
#include "runtime/program.h"

namespace lina {
namespace {

struct Job {
  std::string label, source, name, arch;
};

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
          for (const KernelConfig& c : configs) {
            codegen::EmittedKernel k = program.emit(c, dims, dtype);
            jobs.push_back({k.name + " " + arch + " " + dtype + " D=" + std::to_string(D), k.source, k.name, arch});
          }
        }
  }
  // Two workers: the CI machine has two cores.
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
  for (const std::string& f : failures) ADD_FAILURE() << f;
  RecordProperty("kernels", static_cast<int>(jobs.size()));
  std::printf("compiled %zu kernels\n", jobs.size());
  EXPECT_GT(jobs.size(), 100u);
}

}  // namespace
}  // namespace lina
