// The tuner on the GPU (label `gpu`; skipped without one): a planted wrong candidate (a real
// schedule whose every launch is followed by a write of garbage over its output) is rejected by
// the probe check and never becomes the best; the best is recorded in the database, and a launch
// that leaves the schedule to lina then runs it.
#include "runtime/tuning/tuner.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "runtime/cuda_driver.h"
#include "runtime/program.h"
#include "runtime/tuning/tuned_config.h"
#include "tests/gpu/gpu_test_support.h"

namespace lina {
namespace {

TEST(Tuner, PlantedWrongCandidateIsRejectedAndNeverBest) {
  requireGpu();
  if (IsSkipped()) return;
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / ("lina_tuner_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  ::setenv("LINA_CACHE_DIR", dir.c_str(), 1);

  Program program = Program::fromLibrary("gla");
  const cuda::DeviceInfo info = cuda::deviceInfo(0);
  tuning::TuneOptions t;
  t.shape.batch = 2;
  t.shape.time = 1024;
  t.shape.heads = 4;
  t.shape.dims = {{"K", 64}, {"V", 64}};
  t.reps = 5;
  t.progress = [](const std::string&) {};
  const std::vector<KernelConfig> candidates =
      program.candidateConfigs(t.shape.dims, t.shape.dtype, info.maxSharedPerBlockOptin, true);
  ASSERT_FALSE(candidates.empty());
  // The planted candidate duplicates the heuristic's choice, so it would tie for the best if the
  // check let it through.
  tuning::TuneCandidate planted;
  planted.config = program.chooseConfig(t.shape, info.maxSharedPerBlockOptin, info.multiprocessors);
  planted.label = "planted-wrong";
  planted.afterLaunch = [](const ForwardArgs& args) {
    for (const auto& [name, ptr] : args.outputs) {
      (void)name;
      const cuda::Driver* d = cuda::driver();
      // 0x7f bytes: bf16 0x7f7f is a huge finite value, so only the check can catch it.
      cuda::check(d->cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(ptr), 0x7f, 64, args.stream),
                  "cuMemsetD8Async");
      return;
    }
  };
  t.extraCandidates.push_back(planted);
  const tuning::TuneResult r = tuning::tune(program, t);
  log(tuning::reportTable(r));

  ASSERT_EQ(r.candidates.size(), candidates.size() + 1);
  const tuning::CandidateResult& p = r.candidates.back();
  EXPECT_EQ(p.candidate.label, "planted-wrong");
  EXPECT_TRUE(p.checked);
  EXPECT_FALSE(p.passed) << "check ratio " << p.checkRatio;
  EXPECT_NE(p.rejected.find("check"), std::string::npos) << p.rejected;
  EXPECT_EQ(p.ms, std::numeric_limits<double>::infinity()) << "a rejected candidate is never timed";
  EXPECT_GE(r.rejectedByCheck, 1);
  ASSERT_TRUE(r.best);
  EXPECT_NE(*r.best, r.candidates.size() - 1);
  const tuning::CandidateResult& best = r.candidates[*r.best];
  EXPECT_TRUE(best.passed);
  for (const tuning::CandidateResult& c : r.candidates)
    if (c.passed) {
      EXPECT_LE(best.ms, c.ms) << c.candidate.label;
    }
  EXPECT_TRUE(std::isfinite(r.heuristicMs));

  // Recorded, and consulted by a launch that leaves the schedule to lina.
  EXPECT_EQ(r.databasePath, tuning::databasePath(info));
  std::string why;
  std::optional<KernelConfig> tuned = tuning::tunedConfig(program, t.shape, info, &why);
  ASSERT_TRUE(tuned) << why;
  EXPECT_TRUE(tuning::sameConfig(*tuned, best.candidate.config)) << why;

  ::unsetenv("LINA_CACHE_DIR");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lina
