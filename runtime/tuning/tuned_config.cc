#include "runtime/tuning/tuned_config.h"

#include <atomic>
#include <cstdlib>
#include <sstream>

#include "compiler/rir/printer.h"
#include "runtime/program.h"
#include "support/hash.h"

#ifndef LINA_SOURCE_DIR
#define LINA_SOURCE_DIR "."
#endif

namespace lina::tuning {

namespace {

std::string cacheDirectory() {
  if (const char* dir = std::getenv("LINA_CACHE_DIR"); dir && *dir) return dir;
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/lina";
  return ".lina-cache";
}

// Clocks in 100 MHz classes: a GPU's boost and typical clocks land in the same file.
std::string fileFor(const cuda::DeviceInfo& d) {
  return deviceFileName(d.name, d.multiprocessors, d.clockMHz / 100 * 100);
}

std::atomic<TuneOnMissHook> tuneOnMissHook{nullptr};

}  // namespace

void setTuneOnMissHook(TuneOnMissHook hook) {
  tuneOnMissHook = hook;
}

TuneMode tuneMode() {
  const char* v = std::getenv("LINA_TUNE");
  if (!v) return TuneMode::Consult;
  const std::string s = v;
  if (s == "0") return TuneMode::Off;
  if (s == "1") return TuneMode::TuneOnMiss;
  return TuneMode::Consult;
}

bool choosesFreely(const ForwardArgs& a) {
  return !a.config && a.strategy == "auto" && a.chunk == 0 && a.tile == 0 && a.warps == 0 &&
         a.stages == 0 && a.kernels == "auto" && a.layout.key() == cir::TensorLayout().key();
}

std::string programIdentity(const rir::Recurrence& recurrence) {
  std::ostringstream os;
  rir::print(os, recurrence);
  return recurrence.name + "-" + Hasher().add(os.str()).hex().substr(0, 16);
}

TuningKey keyFor(const rir::Recurrence& recurrence, const ForwardArgs& args,
                 const std::string& pass) {
  TuningKey k;
  k.program = programIdentity(recurrence);
  k.dtype = args.dtype;
  k.pass = pass;
  k.dims = args.dims;
  k.bucket = bucketOf(args);
  return k;
}

std::string databasePath(const cuda::DeviceInfo& device) {
  return cacheDirectory() + "/tuning/" + fileFor(device);
}

std::string shippedDatabasePath(const cuda::DeviceInfo& device) {
  if (const char* dir = std::getenv("LINA_TUNING_DEFAULTS"); dir && *dir)
    return std::string(dir) + "/" + fileFor(device);
  return std::string(LINA_SOURCE_DIR) + "/library/tuning/" + fileFor(device);
}

bool sameConfig(const KernelConfig& a, const KernelConfig& b) {
  return a.strategy == b.strategy && a.chunk == b.chunk && a.tile == b.tile && a.warps == b.warps &&
         a.stages == b.stages && a.registerTiles == b.registerTiles;
}

std::optional<KernelConfig> tunedConfig(const Program& program, const ForwardArgs& args,
                                        const cuda::DeviceInfo& device, std::string* why) {
  auto say = [&](const std::string& s) {
    if (why) *why = s;
  };
  if (tuneMode() == TuneMode::Off) return say("LINA_TUNE=0: the heuristic"), std::nullopt;
  if (!choosesFreely(args))
    return say("the launch fixes part of its schedule: the rules"), std::nullopt;
  const TuningKey key = keyFor(program.recurrence(), args);
  for (const std::string& path : {databasePath(device), shippedDatabasePath(device)}) {
    std::optional<TunedEntry> entry = TuningDatabase(path).lookup(key);
    if (!entry) continue;
    for (const KernelConfig& c :
         program.candidateConfigs(args.dims, args.dtype, device.maxSharedPerBlockOptin, true))
      if (sameConfig(c, entry->config)) return say("tuned (" + path + ")"), entry->config;
    say("the entry in " + path + " is not a candidate on this device (stale): the heuristic");
    return std::nullopt;
  }
  if (tuneMode() == TuneMode::TuneOnMiss) {
    if (TuneOnMissHook hook = tuneOnMissHook.load()) return hook(program, args, device, why);
    return say("no entry, and this binary cannot tune (LINA_TUNE=1 needs linac, lina-bench or the "
               "Python module): the heuristic"),
           std::nullopt;
  }
  return say("no entry: the heuristic"), std::nullopt;
}

}  // namespace lina::tuning
