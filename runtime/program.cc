#include "runtime/program.h"

#if LINA_HAVE_TUNING
#include "runtime/tuning/tuned_config.h"
#endif

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>

#include "compiler/cir/lower.h"
#include "compiler/pipeline/pipeline.h"
#include "compiler/rir/verify.h"
#include "library/library.h"
#include "runtime/config_choice.h"
#include "runtime/cuda_driver.h"
#include "runtime/launch_args.h"
#include "runtime/module_loader.h"
#include "support/error.h"

namespace lina {

Program Program::fromSource(const std::string& name, const std::string& source) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  uint32_t file = sources.addBuffer(name, source);
  std::optional<rir::Module> module = compileToRir(sources, file, diags);
  if (!module) {
    std::ostringstream os;
    diags.print(os);
    throw Error(os.str());
  }
  if (module->recurrences.size() != 1)
    throw Error(name + ": expected exactly one recurrence, found " + std::to_string(module->recurrences.size()));
  Program p;
  p.name_ = module->recurrences[0].name;
  p.sourceName_ = name;
  p.rir_ = std::make_shared<rir::Recurrence>(module->recurrences[0]);
  p.emitted_ = std::make_shared<EmittedCache>();
  return p;
}

Program Program::fromRecurrence(const rir::Recurrence& recurrence, const std::string& sourceName) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  if (!rir::verify(recurrence, diags, {.requireKnownStateShapes = true, .requireLogGates = true})) {
    std::ostringstream os;
    diags.print(os);
    throw Error(os.str());
  }
  Program p;
  p.name_ = recurrence.name;
  p.sourceName_ = sourceName;
  p.rir_ = std::make_shared<rir::Recurrence>(recurrence);
  p.emitted_ = std::make_shared<EmittedCache>();
  return p;
}

Program Program::fromFile(const std::string& path) {
  SourceManager sources;
  std::string error;
  uint32_t file = sources.addFile(path, error);
  if (!file) throw Error(error);
  return fromSource(path, std::string(sources.text(file)));
}

Program Program::fromLibrary(const std::string& name) {
  const library::Program* p = library::find(name);
  if (!p) {
    std::string known;
    for (const library::Program& q : library::programs()) known += (known.empty() ? "" : ", ") + std::string(q.name);
    throw Error("no library program '" + name + "'; the library has " + known);
  }
  return fromSource(p->path, p->source);
}

std::string Program::tiledDim() const { return tiledDimOverride_.empty() ? cir::tileableDim(*rir_) : tiledDimOverride_; }

ProgramView Program::view() const { return {*rir_, tiledDim(), !tiledDimOverride_.empty(), sourceName_}; }

cir::Kernel Program::kernel(cir::Strategy strategy, int chunk, int warps, cir::Phase phase) const {
  if ((phase == cir::Phase::Whole) != (strategy != cir::Strategy::Split))
    throw Error("@" + name_ + ": the split strategy has two kernels (phase States or Outputs); the others one (Whole)");
  std::vector<cir::Kernel> kernels = lowerToKernels(*rir_, view().request({strategy, chunk, 0, warps, 1}, {}, "bf16"));
  return phase == cir::Phase::Outputs ? kernels.back() : kernels.front();
}

std::vector<codegen::EmittedKernel> Program::emitKernels(const KernelConfig& config,
                                                         const std::map<std::string, int64_t>& dims,
                                                         const std::string& dtype, const cir::TensorLayout& layout) const {
  return compileKernels(*rir_, view().request(config, dims, dtype, layout));
}

codegen::EmittedKernel Program::emit(const KernelConfig& config, const std::map<std::string, int64_t>& dims,
                                     const std::string& dtype, const cir::TensorLayout& layout) const {
  if (config.strategy == cir::Strategy::Split)
    throw Error("@" + name_ + ": the split strategy has two kernels; use emitKernels");
  return emitKernels(config, dims, dtype, layout).front();
}

std::string Program::kernelNames(const KernelConfig& config, const std::map<std::string, int64_t>& dims,
                                 const std::string& dtype) const {
  std::string names;
  for (const codegen::EmittedKernel& k : emitKernels(config, dims, dtype)) names += (names.empty() ? "" : " + ") + k.name;
  return names;
}

std::vector<KernelConfig> Program::candidateConfigs(const std::map<std::string, int64_t>& dims, const std::string& dtype,
                                                    int64_t sharedMemoryBytes, bool requireWholeTile,
                                                    const cir::TensorLayout& layout) const {
  return lina::candidateConfigs(view(), dims, dtype, sharedMemoryBytes, requireWholeTile, layout);
}

std::string Program::registerTilesUnsupported(const ForwardArgs& args) const {
  return lina::registerTilesUnsupported(view(), args, args.tile);
}

int Program::preferredChunk() const { return lina::preferredChunk(*rir_); }

bool Program::updatesInPlaceAcrossTiles(const ForwardArgs& args) const {
  return lina::updatesInPlaceAcrossTiles(view(), args);
}

size_t Program::splitSnapshotBytes(const ForwardArgs& a, int chunk) const {
  return splitSnapshotOffsets(*rir_, a, chunk).back();
}

KernelConfig Program::chooseConfig(const ForwardArgs& args, int64_t sharedMemoryBytes, int multiprocessors) const {
  return lina::chooseConfig(view(), args, sharedMemoryBytes, multiprocessors);
}

KernelRequest Program::requestFor(const ForwardArgs& args, int64_t sharedMemoryBytes, int multiprocessors) const {
  return view().request(chooseConfig(args, sharedMemoryBytes, multiprocessors), args.dims, args.dtype, args.layout);
}

std::vector<codegen::EmittedKernel> Program::kernelsFor(const ForwardArgs& args, int64_t sharedMemoryBytes,
                                                        int multiprocessors) const {
  return compileKernels(*rir_, requestFor(args, sharedMemoryBytes, multiprocessors));
}

void Program::forward(const ForwardArgs& a, int device) const {
  auto fail = [&](const std::string& message) { throw Error("@" + name_ + " forward: " + message); };
  KernelParams p = packForwardParams(*rir_, a);
  const int64_t N = sequenceCount(a);
  if (N == 0) return;

  cuda::DeviceInfo info = runtime::cachedDeviceInfo(device);
  cuda::useDevice(device);
  const std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>> kernels = launchesFor(a, device, info);
  runtime::GridCounts counts{a.heads, N, 1};
  if (kernels.size() == 1) {
    const auto& [kernel, loaded] = kernels.front();
    if (a.layout.oneTilePerLaunch) {
      if (a.tileIndex < 0 || a.tileIndex >= kernel.tiles)
        fail("tileIndex: expected 0 to " + std::to_string(kernel.tiles - 1) + " (the tiles of " + kernel.tiledDim +
             "); got " + std::to_string(a.tileIndex));
      p.tileBase = a.tileIndex;
    }
    runtime::launchKernel(kernel, loaded, counts, p, a.stream);
    return;
  }
  if (kernels.front().first.intermediateBytesPerTokenHead > 0) {
    twoPhaseForward(a, p, kernels, counts);
    return;
  }
  if (kernels.size() == 3) {
    segmentedForward(a, p, kernels, counts);
    return;
  }
  // The split strategy: the walk stores every chunk's starting state, then one CTA per
  // (chunk slot, head, tile) computes the outputs.
  const auto& [walk, walkLoaded] = kernels[0];
  const auto& [outputs, outputsLoaded] = kernels[1];
  const std::vector<size_t> offsets = splitSnapshotOffsets(*rir_, a, walk.chunk);
  const size_t bytes = offsets.back();
  if (a.workspace && a.workspaceBytes < bytes)
    fail("workspace: expected at least " + std::to_string(bytes) + " bytes (forwardWorkspaceBytes) for the split " +
         "strategy's snapshots; got " + std::to_string(a.workspaceBytes));
  counts.chunkSlots = chunkSlots(a, walk.chunk);
  if (counts.chunkSlots > 0x7fffffff)
    fail("the split strategy numbers " + std::to_string(counts.chunkSlots) + " chunks; at most 2^31 - 1");
  const cuda::Driver* d = cuda::driver();
  CUdeviceptr owned = 0;
  char* base = static_cast<char*>(a.workspace);
  if (!base) {
    cuda::check(d->cuMemAllocAsync(&owned, bytes, a.stream), "cuMemAllocAsync",
                "the split strategy's snapshots of " + std::to_string(bytes) + " bytes");
    base = reinterpret_cast<char*>(owned);
  }
  for (size_t i = 0; i < rir_->states.size(); ++i) p.snapshots[i] = reinterpret_cast<float*>(base + offsets[i]);
  try {
    runtime::launchKernel(walk, walkLoaded, counts, p, a.stream);
    runtime::launchKernel(outputs, outputsLoaded, counts, p, a.stream);
  } catch (...) {
    if (owned) (void)d->cuMemFreeAsync(owned, a.stream);
    throw;
  }
  if (owned) cuda::check(d->cuMemFreeAsync(owned, a.stream), "cuMemFreeAsync");
}

// The register-tile split (kir::Part): every segment's local state and decay, the scan over the
// segments (starting states in place of the local ones, the final state), every segment's
// outputs. One workspace: the fp32 segment states [slots][H][K][V], then the decays [slots][H][K].
void Program::segmentedForward(const ForwardArgs& a, KernelParams& p,
                               const std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>>& kernels,
                               runtime::GridCounts counts) const {
  auto fail = [&](const std::string& message) { throw Error("@" + name_ + " forward: " + message); };
  const codegen::EmittedKernel& local = kernels[0].first;
  const int64_t segmentTokens = static_cast<int64_t>(local.chunk) * local.segmentChunks;
  const std::vector<size_t> offsets = segmentWorkspaceOffsets(*rir_, a, segmentTokens);
  const size_t bytes = offsets.back();
  if (a.workspace && a.workspaceBytes < bytes)
    fail("workspace: expected at least " + std::to_string(bytes) + " bytes (forwardWorkspaceBytes) for the segment states; got " +
         std::to_string(a.workspaceBytes));
  counts.chunkSlots = chunkSlots(a, static_cast<int>(segmentTokens));
  if (counts.chunkSlots > 65535) fail("the segmented strategy numbers " + std::to_string(counts.chunkSlots) + " segments; at most 65535");
  const cuda::Driver* d = cuda::driver();
  CUdeviceptr owned = 0;
  char* base = static_cast<char*>(a.workspace);
  if (!base) {
    cuda::check(d->cuMemAllocAsync(&owned, bytes, a.stream), "cuMemAllocAsync", "the segment states of " + std::to_string(bytes) + " bytes");
    base = reinterpret_cast<char*>(owned);
  }
  p.snapshots[0] = reinterpret_cast<float*>(base + offsets[0]);
  p.snapshots[1] = reinterpret_cast<float*>(base + offsets[1]);
  try {
    for (const auto& [kernel, loaded] : kernels) runtime::launchKernel(kernel, loaded, counts, p, a.stream);
  } catch (...) {
    if (owned) (void)d->cuMemFreeAsync(owned, a.stream);
    throw;
  }
  if (owned) cuda::check(d->cuMemFreeAsync(owned, a.stream), "cuMemFreeAsync");
}

// A two-phase register-tile plan (GSA): the first kernel writes the bf16 intermediate (the
// softmax over the slots), the second reads it as its query. Workspace: tokens x H x width bf16.
void Program::twoPhaseForward(const ForwardArgs& a, KernelParams& p,
                              const std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>>& kernels,
                              runtime::GridCounts counts) const {
  auto fail = [&](const std::string& message) { throw Error("@" + name_ + " forward: " + message); };
  const size_t bytes = static_cast<size_t>(tokenCount(a) * a.heads * kernels.front().first.intermediateBytesPerTokenHead);
  if (a.workspace && a.workspaceBytes < bytes)
    fail("workspace: expected at least " + std::to_string(bytes) + " bytes (forwardWorkspaceBytes) for the intermediate of the two " +
         "phases; got " + std::to_string(a.workspaceBytes));
  const cuda::Driver* d = cuda::driver();
  CUdeviceptr owned = 0;
  char* base = static_cast<char*>(a.workspace);
  if (!base) {
    cuda::check(d->cuMemAllocAsync(&owned, bytes, a.stream), "cuMemAllocAsync",
                "the two phases' intermediate of " + std::to_string(bytes) + " bytes");
    base = reinterpret_cast<char*>(owned);
  }
  p.snapshots[0] = reinterpret_cast<float*>(base);
  try {
    for (const auto& [kernel, loaded] : kernels) runtime::launchKernel(kernel, loaded, counts, p, a.stream);
  } catch (...) {
    if (owned) (void)d->cuMemFreeAsync(owned, a.stream);
    throw;
  }
  if (owned) cuda::check(d->cuMemFreeAsync(owned, a.stream), "cuMemFreeAsync");
}

std::vector<std::pair<codegen::EmittedKernel, Program::LoadedKernel>> Program::launchesFor(
    const ForwardArgs& args, int device, const cuda::DeviceInfo& info) const {
  // A launch that leaves the schedule to lina takes the tuning database's entry for its shape
  // bucket when there is one (runtime/tuning/tuned_config.h), looked up once per bucket.
  ForwardArgs a = args;
#if LINA_HAVE_TUNING
  if (tuning::choosesFreely(args) && tuning::tuneMode() != tuning::TuneMode::Off) {
    const std::string bucket = std::to_string(device) + "/" + a.dtype + "/" + tuning::bucketOf(a).text();
    std::optional<KernelConfig> tuned;
    bool looked = false;
    {
      std::lock_guard<std::mutex> lock(emitted_->mutex);
      auto it = emitted_->tuned.find(bucket);
      looked = it != emitted_->tuned.end();
      if (looked) tuned = it->second;
    }
    if (!looked) {  // outside the lock: reads files (two threads may both look; same answer)
      std::string why;
      tuned = tuning::tunedConfig(*this, a, info, &why);
      // LINA_TUNE_VERBOSE=1: one line per (device, dtype, bucket) saying where the schedule came from.
      if (const char* v = std::getenv("LINA_TUNE_VERBOSE"); v && std::string(v) == "1")
        std::fprintf(stderr, "lina: @%s %s %s: %s\n", name_.c_str(), a.dtype.c_str(), tuning::bucketOf(a).text().c_str(), why.c_str());
      std::lock_guard<std::mutex> lock(emitted_->mutex);
      emitted_->tuned[bucket] = tuned;
    }
    a.config = tuned;
  }
#endif
  // Repeat calls with the same request skip config selection (which lowers and plans every
  // candidate), emission and the cache-key hash: the launch is looked up by what decides it.
  std::string request = std::to_string(device) + "/" + a.dtype + "/" + a.strategy + "/" + std::to_string(a.chunk) + "/" +
                        std::to_string(a.tile) + "/" + std::to_string(a.warps) + "/" + std::to_string(a.stages) + "/" + a.kernels + "/" +
                        std::to_string(lina::prefersRecurrent(a)) + std::to_string(updatesInPlaceAcrossTiles(a)) + "/" +
                        a.layout.key();
  for (const auto& [dname, n] : a.dims) request += "/" + dname + "=" + std::to_string(n);
  if (a.config)
    request += "/config:" + std::string(cir::strategyName(a.config->strategy)) + "," + std::to_string(a.config->chunk) + "," +
               std::to_string(a.config->tile) + "," + std::to_string(a.config->warps) + "," + std::to_string(a.config->stages) + "," +
               std::to_string(a.config->registerTiles);
  // What the shape-dependent rules read (the register tiles' width and the split choice): the
  // walks, and whether the sequences are long enough to split at each chunk size.
  const int64_t N = sequenceCount(a), tokens = tokenCount(a);
  request += "/N" + std::to_string(N) + "H" + std::to_string(a.heads) + "/";
  for (int64_t c : rir_->chunkSizes) request += tokens >= 8 * c * std::max<int64_t>(N, 1) ? '1' : '0';
  std::lock_guard<std::mutex> lock(emitted_->mutex);
  auto it = emitted_->launches.find(request);
  if (it == emitted_->launches.end()) {
    const KernelRequest r = requestFor(a, info.maxSharedPerBlockOptin, info.multiprocessors);
    std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>> loaded;
    for (codegen::EmittedKernel& emitted : compileKernels(*rir_, r)) {
      if (emitted.smem.totalBytes > info.maxSharedPerBlockOptin)
        throw Error("@" + name_ + " forward: kernel " + emitted.name + " with stages " + std::to_string(r.stages) +
                    " needs " + std::to_string(emitted.smem.totalBytes) + " bytes of shared memory; the device allows " +
                    std::to_string(info.maxSharedPerBlockOptin) + "; use stages 1 or 0 (choose)");
      LoadedKernel l = runtime::loadKernel(device, emitted, info.arch);
      loaded.emplace_back(std::move(emitted), l);
    }
    it = emitted_->launches.emplace(request, std::move(loaded)).first;
  }
  return it->second;
}

size_t Program::forwardWorkspaceBytes(const ForwardArgs& a, int device) const {
  if (sequenceCount(a) == 0) return 0;
  // The launch forward(a) makes (cached): the split strategy's walk carries the chunk size.
  const auto kernels = launchesFor(a, device, runtime::cachedDeviceInfo(device));
  const codegen::EmittedKernel& walk = kernels.front().first;
  if (walk.intermediateBytesPerTokenHead > 0) return static_cast<size_t>(tokenCount(a) * a.heads * walk.intermediateBytesPerTokenHead);
  if (kernels.size() == 3) return segmentWorkspaceOffsets(*rir_, a, walk.chunk * walk.segmentChunks).back();
  if (kernels.size() != 2) return 0;
  return splitSnapshotOffsets(*rir_, a, walk.chunk).back();
}

}  // namespace lina
