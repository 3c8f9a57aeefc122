// Where the launch paths meet the tuning database: which launches consult it (LINA_TUNE, a launch
// that leaves every choice to lina), the key of a launch, the per-GPU database files (the user's
// in $LINA_CACHE_DIR/tuning/, then the defaults shipped in library/tuning/), and a tuned entry
// accepted only when it is one of the program's candidates on this device.
#pragma once

#include <optional>
#include <string>

#include "runtime/cuda_driver.h"
#include "runtime/launch_args.h"
#include "runtime/tuning/tuning_db.h"

namespace lina {
class Program;
}

namespace lina::tuning {

// LINA_TUNE: "0" never consults (the heuristic), "1" tunes a bucket on its first launch, unset
// or anything else consults the database without tuning.
enum class TuneMode { Off, Consult, TuneOnMiss };
TuneMode tuneMode();

// A launch that leaves strategy, chunk, tile, warps, stages and kernel level to lina, with the
// forward's layout and no explicit config: the launches the database decides.
bool choosesFreely(const ForwardArgs& args);

// The program's identity in the database: a hash of its canonical RIR.
std::string programIdentity(const rir::Recurrence& recurrence);
TuningKey keyFor(const rir::Recurrence& recurrence, const ForwardArgs& args,
                 const std::string& pass = "forward");

// The user's database file for the device ($LINA_CACHE_DIR or ~/.cache/lina, then tuning/),
// and the shipped defaults' file for it ($LINA_TUNING_DEFAULTS or the source tree's
// library/tuning/).
std::string databasePath(const cuda::DeviceInfo& device);
std::string shippedDatabasePath(const cuda::DeviceInfo& device);

// The tuned configuration for `args` (exact bucket, then the nearest, in the user's database and
// then the shipped one), if it is among the program's candidates on this device. `why` (optional)
// receives where it came from or why none was used.
std::optional<KernelConfig> tunedConfig(const Program& program, const ForwardArgs& args,
                                        const cuda::DeviceInfo& device, std::string* why = nullptr);

// LINA_TUNE=1: what tunes a bucket that has no entry, installed by the binaries that link the
// tuner (lina_tuning sits above the runtime; see installTuneOnMiss in tuner.h). Without one,
// LINA_TUNE=1 consults only.
using TuneOnMissHook = std::optional<KernelConfig> (*)(const Program&, const ForwardArgs&,
                                                       const cuda::DeviceInfo&, std::string* why);
void setTuneOnMissHook(TuneOnMissHook hook);

// Whether two configurations launch the same kernels.
bool sameConfig(const KernelConfig& a, const KernelConfig& b);

}  // namespace lina::tuning
