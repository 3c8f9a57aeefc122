// Where launches meet the tuning database (runtime/tuning/tuned_config): a pinned config is what
// the launch runs; an entry is used only for launches that leave the schedule to lina, only when it
// is still one of the program's candidates on the device (a stale entry falls back to the rules),
// never under LINA_TUNE=0; the user's database comes before the shipped defaults. No GPU: the
// device is described, not queried.
#include "runtime/tuning/tuned_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "runtime/program.h"

namespace lina::tuning {
namespace {

cuda::DeviceInfo hopper() {
  cuda::DeviceInfo d;
  d.name = "Test H100";
  d.major = 9;
  d.multiprocessors = 132;
  d.maxSharedPerBlockOptin = 227 * 1024;
  d.clockMHz = 1980;
  d.arch = "sm_90a";
  return d;
}

ForwardArgs glaShape() {
  ForwardArgs a;
  a.batch = 4;
  a.time = 4096;
  a.heads = 64;
  a.dims = {{"K", 128}, {"V", 128}};
  return a;
}

// A scratch cache and defaults directory per test, the environment restored after.
class TunedConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::path(::testing::TempDir()) /
            ("lina_tuned_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_ / "cache");
    std::filesystem::create_directories(root_ / "defaults");
    ::setenv("LINA_CACHE_DIR", (root_ / "cache").c_str(), 1);
    ::setenv("LINA_TUNING_DEFAULTS", (root_ / "defaults").c_str(), 1);
    ::unsetenv("LINA_TUNE");
  }
  void TearDown() override {
    ::unsetenv("LINA_CACHE_DIR");
    ::unsetenv("LINA_TUNING_DEFAULTS");
    ::unsetenv("LINA_TUNE");
    std::filesystem::remove_all(root_);
  }
  std::filesystem::path root_;
};

// A candidate the rules would not take by themselves, so a hit is visibly the database's.
KernelConfig nonDefaultCandidate(const Program& program, const ForwardArgs& args,
                                 const cuda::DeviceInfo& device) {
  const KernelConfig rules =
      program.chooseConfig(args, device.maxSharedPerBlockOptin, device.multiprocessors);
  for (const KernelConfig& c :
       program.candidateConfigs(args.dims, args.dtype, device.maxSharedPerBlockOptin, true))
    if (!sameConfig(c, rules)) return c;
  ADD_FAILURE() << "GLA has one candidate only";
  return rules;
}

TEST_F(TunedConfigTest, PinnedConfigIsWhatTheLaunchRuns) {
  const Program program = Program::fromLibrary("gla");
  const cuda::DeviceInfo device = hopper();
  ForwardArgs args = glaShape();
  const KernelConfig pinned = nonDefaultCandidate(program, args, device);
  args.config = pinned;
  EXPECT_TRUE(sameConfig(
      program.chooseConfig(args, device.maxSharedPerBlockOptin, device.multiprocessors), pinned));
  EXPECT_FALSE(choosesFreely(args)) << "a pinned launch is never redirected by the database";
}

TEST_F(TunedConfigTest, EntryUsedStaleIgnoredOffHonoured) {
  const Program program = Program::fromLibrary("gla");
  const cuda::DeviceInfo device = hopper();
  const ForwardArgs args = glaShape();
  std::string why;
  EXPECT_FALSE(tunedConfig(program, args, device, &why));
  EXPECT_NE(why.find("no entry"), std::string::npos) << why;

  TunedEntry entry;
  entry.config = nonDefaultCandidate(program, args, device);
  entry.milliseconds = 0.5;
  TuningDatabase(databasePath(device)).record(keyFor(program.recurrence(), args), entry);
  ASSERT_TRUE(std::filesystem::exists(databasePath(device))) << databasePath(device);
  std::optional<KernelConfig> hit = tunedConfig(program, args, device, &why);
  ASSERT_TRUE(hit) << why;
  EXPECT_TRUE(sameConfig(*hit, entry.config));
  EXPECT_NE(why.find("tuned"), std::string::npos) << why;

  // A nearby shape takes the nearest bucket's entry.
  ForwardArgs longer = args;
  longer.time = 8192;
  EXPECT_TRUE(tunedConfig(program, longer, device));

  // A launch that fixes part of its schedule keeps it.
  ForwardArgs fixed = args;
  fixed.chunk = 32;
  EXPECT_FALSE(tunedConfig(program, fixed, device, &why));
  EXPECT_NE(why.find("fixes"), std::string::npos) << why;

  // Another program (same name, other RIR) does not see GLA's entry.
  const Program other = Program::fromLibrary("simple_gla");
  EXPECT_NE(programIdentity(other.recurrence()), programIdentity(program.recurrence()));
  EXPECT_FALSE(tunedConfig(other, args, device));

  ::setenv("LINA_TUNE", "0", 1);
  EXPECT_FALSE(tunedConfig(program, args, device, &why));
  EXPECT_NE(why.find("LINA_TUNE=0"), std::string::npos) << why;
  ::unsetenv("LINA_TUNE");

  // A stale entry (a chunk no candidate has, as after a change to the candidate rules).
  TunedEntry stale = entry;
  stale.config.chunk = 48;
  TuningDatabase(databasePath(device)).record(keyFor(program.recurrence(), args), stale);
  EXPECT_FALSE(tunedConfig(program, args, device, &why));
  EXPECT_NE(why.find("stale"), std::string::npos) << why;

  // An entry that does not fit a smaller GPU's shared memory is stale there too.
  cuda::DeviceInfo small = device;
  small.maxSharedPerBlockOptin = 48 * 1024;
  TunedEntry big;
  for (const KernelConfig& c :
       program.candidateConfigs(args.dims, args.dtype, device.maxSharedPerBlockOptin, true)) {
    bool fitsSmall = false;
    for (const KernelConfig& s :
         program.candidateConfigs(args.dims, args.dtype, small.maxSharedPerBlockOptin, true))
      fitsSmall |= sameConfig(s, c);
    if (!fitsSmall) big.config = c;
  }
  if (big.config.tile) {
    TuningDatabase(databasePath(small)).record(keyFor(program.recurrence(), args), big);
    EXPECT_FALSE(tunedConfig(program, args, small));
  }
}

TEST_F(TunedConfigTest, UserDatabaseBeforeShippedDefaults) {
  const Program program = Program::fromLibrary("retention");
  const cuda::DeviceInfo device = hopper();
  const ForwardArgs args = glaShape();
  const std::vector<KernelConfig> candidates =
      program.candidateConfigs(args.dims, args.dtype, device.maxSharedPerBlockOptin, true);
  ASSERT_GE(candidates.size(), 2u);
  TunedEntry shipped{candidates[0], 1.0}, mine{candidates[1], 0.9};
  TuningDatabase(shippedDatabasePath(device)).record(keyFor(program.recurrence(), args), shipped);
  std::string why;
  std::optional<KernelConfig> hit = tunedConfig(program, args, device, &why);
  ASSERT_TRUE(hit) << why;
  EXPECT_TRUE(sameConfig(*hit, shipped.config));
  EXPECT_NE(why.find("defaults"), std::string::npos) << why;
  TuningDatabase(databasePath(device)).record(keyFor(program.recurrence(), args), mine);
  hit = tunedConfig(program, args, device, &why);
  ASSERT_TRUE(hit) << why;
  EXPECT_TRUE(sameConfig(*hit, mine.config));
  EXPECT_NE(why.find("cache"), std::string::npos) << why;
}

}  // namespace
}  // namespace lina::tuning
