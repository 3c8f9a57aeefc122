#include "runtime/program.h"

#include <algorithm>
#include <mutex>
#include <sstream>

#include "codegen/device/lina/device/params.h"
#include "compiler/cir/lower.h"
#include "compiler/pipeline.h"
#include "compiler/rir/verify.h"
#include "library/library.h"
#include "runtime/cuda_driver.h"
#include "runtime/error.h"
#include "runtime/kernel_cache.h"

namespace lina {

namespace {

// Loaded modules, per (device, kernel source): lazily, once, under a lock.
Program::LoadedKernel loadKernel(int device, const codegen::EmittedKernel& kernel, const std::string& arch) {
  static std::mutex mutex;
  static std::map<std::pair<int, std::string>, Program::LoadedKernel> loaded;
  std::string key = runtime::KernelCache::global().key(kernel.source, arch);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find({device, key});
  if (it != loaded.end()) return it->second;
  std::vector<char> cubin = runtime::KernelCache::global().cubin(kernel.source, kernel.name + ".cu", arch);
  const cuda::Driver* d = cuda::driver();
  Program::LoadedKernel k;
  cuda::check(d->cuModuleLoadData(&k.module, cubin.data()), "cuModuleLoadData", "kernel " + kernel.name);
  cuda::check(d->cuModuleGetFunction(&k.function, k.module, kernel.name.c_str()), "cuModuleGetFunction", kernel.name);
  if (kernel.smem.totalBytes > 48 * 1024)
    cuda::check(d->cuFuncSetAttribute(k.function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                      static_cast<int>(kernel.smem.totalBytes)),
                "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", kernel.name);
  loaded[{device, key}] = k;
  return k;
}

// Device attributes, read once per device.
cuda::DeviceInfo cachedDeviceInfo(int device) {
  static std::mutex mutex;
  static std::map<int, cuda::DeviceInfo> infos;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = infos.find(device);
  if (it == infos.end()) it = infos.emplace(device, cuda::deviceInfo(device)).first;
  return it->second;
}

// Snapshot buffers start 256-byte aligned in the workspace.
size_t alignUp(size_t bytes) { return (bytes + 255) / 256 * 256; }

int64_t sequenceCount(const ForwardArgs& a) { return a.cuSeqlens ? a.numSequences : a.batch; }
int64_t tokenCount(const ForwardArgs& a) { return a.cuSeqlens ? a.time : a.batch * a.time; }

// The split strategy's chunk slots (see chunk_of_slot in device/common.cuh).
int64_t chunkSlots(const ForwardArgs& a, int chunk) { return (tokenCount(a) + chunk - 1) / chunk + sequenceCount(a); }

// Where each state's snapshots start in the split strategy's workspace; the last entry is the
// total size.
std::vector<size_t> snapshotOffsets(const rir::Recurrence& rec, const ForwardArgs& a, int chunk) {
  std::vector<size_t> offsets = {0};
  for (const rir::Decl& st : rec.states)
    offsets.push_back(offsets.back() + alignUp(static_cast<size_t>(chunkSlots(a, chunk) * a.heads *
                                                                   a.dims.at(st.shape[0]) * a.dims.at(st.shape[1])) *
                                               sizeof(float)));
  return offsets;
}

std::string shapeText(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

}  // namespace

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

Program Program::fromRecurrence(const rir::Recurrence& recurrence) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  if (!rir::verify(recurrence, diags, {.requireKnownStateShapes = true, .requireLogGates = true})) {
    std::ostringstream os;
    diags.print(os);
    throw Error(os.str());
  }
  Program p;
  p.name_ = recurrence.name;
  p.sourceName_ = "";
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

cir::Kernel Program::kernel(cir::Strategy strategy, int chunk, int warps, cir::Phase phase) const {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<cir::Kernel> k = cir::lowerRirToCir(*rir_, strategy, chunk, diags, phase);
  if (!k) {
    std::ostringstream os;
    diags.print(os);
    throw Error(os.str());
  }
  if (!tiledDimOverride_.empty()) {
    k->tiledDim = tiledDimOverride_;
    k->name += "_" + tiledDimOverride_ + "blocks";
  }
  if (warps != k->warps) {
    if (warps < 1 || warps > 32) throw Error("warps: expected 1 to 32 warps per CTA; got " + std::to_string(warps));
    k->warps = warps;
    k->name += "_w" + std::to_string(warps);
  }
  return *k;
}

std::vector<codegen::EmittedKernel> Program::emitKernels(const KernelConfig& config,
                                                         const std::map<std::string, int64_t>& dims,
                                                         const std::string& dtype, const cir::TensorLayout& layout) const {
  cir::Specialization spec;
  spec.layout = layout;
  spec.dims = dims;
  spec.dtype = dtype;
  spec.tile = config.tile;
  spec.stages = config.stages;
  std::vector<cir::Phase> phases = {cir::Phase::Whole};
  if (config.strategy == cir::Strategy::Split) phases = {cir::Phase::States, cir::Phase::Outputs};
  std::vector<codegen::EmittedKernel> out;
  for (cir::Phase phase : phases)
    out.push_back(codegen::emitCuda(kernel(config.strategy, config.chunk, config.warps, phase), spec, sourceName_));
  return out;
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
  std::vector<KernelConfig> out;
  std::string tiled = tiledDim();
  std::vector<int> tiles = {0};
  if (!tiled.empty()) {
    tiles.clear();
    int64_t full = dims.count(tiled) ? dims.at(tiled) : 0;
    // Blocked derived passes also take 128: their state tile holds the whole other dim.
    for (int t : {128, 64, 32, 16})
      if (full % t == 0 && t <= full && (t < 128 || !tiledDimOverride_.empty())) tiles.push_back(t);
    // The whole dim as one tile: one CTA per (sequence, head), needed for in-place updates of
    // states that every tile would otherwise read and write.
    if (full > 0 && std::find(tiles.begin(), tiles.end(), static_cast<int>(full)) == tiles.end())
      tiles.push_back(static_cast<int>(full));
  }
  // The SIMT path caps chunks at 64. The derived backward's passes in fp32 cap them at 32: simple
  // GLA's fp32 dg at chunk 64 measured 1.1-1.5e-5 against fla's 1e-5 bound, at chunks <= 32
  // below 7e-6 (bench/results/2026-11-25-h100-gate-gradients), and no configuration that fails
  // the bound may be chosen.
  const int64_t maxChunk = layout.preciseProducts && dtype == "fp32" ? 32 : 64;
  std::vector<std::pair<cir::Strategy, int>> shapes = {{cir::Strategy::Recurrent, 1}};
  for (int64_t c : rir_->chunkSizes)
    if (c <= maxChunk) shapes.push_back({cir::Strategy::Fused, static_cast<int>(c)});
  for (int64_t c : rir_->chunkSizes)
    if (c <= maxChunk) shapes.push_back({cir::Strategy::Split, static_cast<int>(c)});
  for (auto [strategy, chunk] : shapes) {
    std::vector<cir::Kernel> kernels;
    if (strategy == cir::Strategy::Split) {
      try {
        kernels = {kernel(strategy, chunk, 16, cir::Phase::States), kernel(strategy, chunk, 16, cir::Phase::Outputs)};
      } catch (const Error&) {
        continue;  // the program cannot be split (a running sum): fused and recurrent remain
      }
    } else {
      kernels = {kernel(strategy, chunk)};
    }
    for (int tile : tiles) {
      if (tile == 0 && !tiled.empty()) continue;
      KernelConfig config{strategy, chunk, tile};
      cir::Specialization spec;
      spec.dims = dims;
      spec.dtype = dtype;
      spec.tile = tile;
      spec.layout = layout;
      // The largest shared memory among the configuration's kernels at `stages` (0: too big).
      auto bytesAt = [&](int stages) {
        spec.stages = stages;
        int64_t most = 0;
        for (const cir::Kernel& k : kernels) most = std::max(most, codegen::planSharedMemory(k, spec).totalBytes);
        return most <= sharedMemoryBytes ? most : 0;
      };
      if (int64_t oneStage = bytesAt(1)) {
        // Prefetching costs a second staging buffer per input. It is taken when it fits and keeps
        // as many CTAs per SM (1 KB reserved per CTA): hiding load latency is not worth losing a
        // resident CTA. At 512 threads a CTA, registers (64K per SM) leave room for at most 2.
        // Measured on H100: prefetching made GLA and retention (2 CTAs either way) 14-19% faster
        // and GSA (2 CTAs -> 1) 7% slower (bench/results/2026-11-25-h100-prefetch). The recurrent
        // kernel's one-step chunks have nothing to overlap.
        auto perSm = [&](int64_t bytes) { return std::min<int64_t>(2, (sharedMemoryBytes + 1024) / (bytes + 1024)); };
        int64_t twoStages = strategy == cir::Strategy::Recurrent ? 0 : bytesAt(2);
        if (twoStages && perSm(twoStages) >= perSm(oneStage)) config.stages = 2;
        out.push_back(config);
        if (!requireWholeTile) break;  // the largest tile that fits
      }
    }
  }
  return out;
}

bool Program::prefersRecurrent(const ForwardArgs& a) {
  return a.time <= 16 * std::max<int64_t>(1, a.cuSeqlens ? a.numSequences : 1);
}

int Program::preferredChunk() const {
  for (const rir::Inst& read : rir_->body) {
    if (read.op != rir::Op::Read) continue;
    for (const rir::Inst& update : rir_->body) {
      if (update.op != rir::Op::Update || update.symbol != read.symbol) continue;
      const rir::Decl* s = rir_->state(read.symbol);
      const rir::Gate& contracted = read.dim == s->shape[0] ? update.rows : update.cols;
      const rir::Inst* g = contracted.present() ? rir_->definition(contracted.value) : nullptr;
      if (g && !g->shape.empty()) return 16;
    }
  }
  return 32;
}

bool Program::updatesInPlaceAcrossTiles(const ForwardArgs& args) const {
  std::string tiled = tiledDim();
  for (const rir::Decl& s : rir_->states) {
    auto in = args.initialStates.find(s.name);
    auto out = args.finalStates.find(s.name);
    bool aliased = in != args.initialStates.end() && out != args.finalStates.end() && in->second == out->second;
    bool sharedByTiles = s.shape[0] != tiled && s.shape[1] != tiled;
    if (aliased && sharedByTiles && !tiled.empty()) return true;
  }
  return false;
}

size_t Program::splitSnapshotBytes(const ForwardArgs& a, int chunk) const {
  return snapshotOffsets(*rir_, a, chunk).back();
}

KernelConfig Program::chooseConfig(const ForwardArgs& args, int64_t sharedMemoryBytes, int multiprocessors) const {
  // A state updated in place that every tile reads and writes (GSA's Sk) needs one CTA per
  // (sequence, head): otherwise a tile could read a block another tile already overwrote.
  bool wholeTile = updatesInPlaceAcrossTiles(args);
  ForwardArgs a = args;
  if (wholeTile) a.tile = static_cast<int>(args.dims.at(tiledDim()));
  // A requested tile is looked for among every tile that fits, not only the largest.
  std::vector<KernelConfig> candidates = candidateConfigs(a.dims, a.dtype, sharedMemoryBytes, wholeTile || a.tile != 0, a.layout);
  auto pick = [&](cir::Strategy strategy, int chunk) -> const KernelConfig* {
    for (const KernelConfig& c : candidates)
      if (c.strategy == strategy && (chunk == 0 || c.chunk == chunk) && (a.tile == 0 || c.tile == a.tile)) return &c;
    return nullptr;
  };
  // A chunked strategy without a chunk takes it from a table measured on H100
  // (bench/results/2026-11-25-h100-forward): 16 when a read contracts a vector-gated dim (the
  // pairwise gated scores cost C^2 R exps), else 32; smaller if that does not fit.
  auto pickChunked = [&](cir::Strategy strategy) -> const KernelConfig* {
    if (a.chunk) return pick(strategy, a.chunk);
    int preferred = preferredChunk();
    // A forward that can prefetch at chunk 16 takes it: retention's forward at B4_T4096_H64 ran
    // 8.29 ms at chunk 16 with prefetching against 9.20 ms at chunk 32 without
    // (bench/results/2026-11-25-h100-prefetch). The backward passes keep the table.
    if (a.layout.key() == cir::TensorLayout().key())
      for (const KernelConfig& c : candidates)
        if (c.strategy == strategy && c.chunk == 16 && c.stages == 2 && (a.tile == 0 || c.tile == a.tile)) preferred = 16;
    for (auto it = candidates.rbegin(); it != candidates.rend(); ++it)
      if (it->strategy == strategy && it->chunk <= preferred && (a.tile == 0 || it->tile == a.tile)) return &*it;
    return pick(strategy, 0);
  };
  const KernelConfig* chosen = nullptr;
  if (a.strategy == "recurrent") {
    chosen = pick(cir::Strategy::Recurrent, 0);
  } else if (a.strategy == "fused") {
    chosen = pickChunked(cir::Strategy::Fused);
  } else if (a.strategy == "split") {
    chosen = pickChunked(cir::Strategy::Split);
  } else if (a.strategy == "auto") {
    // Short sequences (decode) step through time; longer ones walk the chunks.
    if (prefersRecurrent(a)) chosen = pick(cir::Strategy::Recurrent, 0);
    if (!chosen) chosen = pickChunked(cir::Strategy::Fused);
    // Few long sequences leave most SMs idle when one CTA walks each (sequence, head, tile):
    // then the split strategy computes the chunks' outputs in parallel, from snapshots of the
    // walk's states. A forward only: the derived backward passes keep their layouts fused.
    if (chosen && chosen->strategy == cir::Strategy::Fused && multiprocessors > 0 && a.layout.key() == cir::TensorLayout().key()) {
      const int64_t N = sequenceCount(a), tokens = tokenCount(a);
      std::string tiled = tiledDim();
      const int64_t tiles = tiled.empty() || chosen->tile == 0 ? 1 : a.dims.at(tiled) / chosen->tile;
      const bool fewWalks = N * a.heads * tiles < multiprocessors;
      const bool longWalks = tokens >= 8LL * chosen->chunk * std::max<int64_t>(N, 1);
      if (fewWalks && longWalks)
        for (const KernelConfig& c : candidates)
          if (c.strategy == cir::Strategy::Split && c.chunk == chosen->chunk && c.tile == chosen->tile) chosen = &c;
    }
    if (!chosen) chosen = pick(cir::Strategy::Recurrent, 0);
  } else {
    throw Error("strategy: expected auto, fused, split or recurrent; got '" + a.strategy + "'");
  }
  if (!chosen && a.chunk > 32 && a.layout.preciseProducts && a.dtype == "fp32")
    throw Error("@" + name_ + ": chunk " + std::to_string(a.chunk) + " is not run by the derived backward in fp32 " +
                "(its gate gradients miss the 1e-5 bound there); pass chunk 0 (choose), 16 or 32");
  if (!chosen) {
    std::string dimText;
    for (const auto& [d, n] : a.dims) dimText += " " + d + "=" + std::to_string(n);
    throw Error("@" + name_ + ": no " + a.strategy + " kernel" +
                (a.chunk ? " with chunk " + std::to_string(a.chunk) : std::string()) + " fits in " +
                std::to_string(sharedMemoryBytes) + " bytes of shared memory for" + dimText +
                "; use smaller dims or another strategy");
  }
  // The caller's overrides of the block size and the prefetching.
  KernelConfig config = *chosen;
  if (a.warps) config.warps = a.warps;
  if (a.stages < 0 || a.stages > 2) throw Error("stages: expected 0 (choose), 1 or 2; got " + std::to_string(a.stages));
  if (a.stages && config.strategy != cir::Strategy::Recurrent) config.stages = a.stages;
  return config;
}

void Program::forward(const ForwardArgs& a, int device) const {
  const rir::Recurrence& rec = *rir_;
  auto fail = [&](const std::string& message) { throw Error("@" + name_ + " forward: " + message); };
  if (a.dtype != "bf16" && a.dtype != "fp16" && a.dtype != "fp32")
    fail("dtype: expected bf16, fp16 or fp32; got '" + a.dtype + "'");
  if (a.batch < 1 || a.time < 0 || a.heads < 1)
    fail("shape (B, T, H) = (" + std::to_string(a.batch) + ", " + std::to_string(a.time) + ", " +
         std::to_string(a.heads) + ") is invalid; expected B >= 1, T >= 0, H >= 1");
  for (const std::string& d : rec.dims) {
    auto it = a.dims.find(d);
    if (it == a.dims.end() || it->second < 1) fail("dim '" + d + "' needs a size >= 1 in ForwardArgs::dims");
  }
  for (const auto& [d, n] : a.dims)
    if (std::find(rec.dims.begin(), rec.dims.end(), d) == rec.dims.end()) {
      (void)n;
      fail("dims: '" + d + "' is not a dim of @" + name_);
    }
  if (a.cuSeqlens) {
    if (a.batch != 1) fail("cu_seqlens needs batch size 1 (packed sequences); got B = " + std::to_string(a.batch));
    if (a.numSequences < 0) fail("numSequences must be >= 0 with cu_seqlens");
  }
  const int64_t N = sequenceCount(a);
  auto checkKnown = [&](const auto& map, const std::vector<rir::Decl>& decls, const char* what) {
    for (const auto& [name, ptr] : map) {
      (void)ptr;
      bool found = false;
      for (const rir::Decl& d : decls) found = found || d.name == name;
      if (!found) fail(std::string(what) + " '" + name + "' is not declared by @" + name_);
    }
  };
  checkKnown(a.inputs, rec.inputs, "input");
  checkKnown(a.outputs, rec.outputs, "output");
  checkKnown(a.initialStates, rec.states, "initial state");
  checkKnown(a.finalStates, rec.states, "final state");
  if (rec.inputs.size() > kMaxInputs || rec.outputs.size() > kMaxOutputs || rec.states.size() > kMaxStates ||
      rec.params.size() > kMaxParams)
    fail("the program has " + std::to_string(rec.inputs.size()) + " inputs, " + std::to_string(rec.outputs.size()) +
         " outputs, " + std::to_string(rec.states.size()) + " states and " + std::to_string(rec.params.size()) +
         " params; one kernel takes at most " + std::to_string(kMaxInputs) + ", " + std::to_string(kMaxOutputs) + ", " +
         std::to_string(kMaxStates) + " and " + std::to_string(kMaxParams) + " (codegen/device/lina/device/params.h)");

  KernelParams p{};
  for (size_t i = 0; i < rec.inputs.size(); ++i) {
    auto it = a.inputs.find(rec.inputs[i].name);
    if (it == a.inputs.end() || !it->second) fail("input '" + rec.inputs[i].name + "' is missing");
    p.inputs[i] = it->second;
  }
  for (size_t i = 0; i < rec.outputs.size(); ++i) {
    auto it = a.outputs.find(rec.outputs[i].name);
    bool discarded = a.layout.discardedOutputs.count(rec.outputs[i].name) > 0;
    if (!discarded && (it == a.outputs.end() || !it->second)) fail("output '" + rec.outputs[i].name + "' is missing");
    p.outputs[i] = it == a.outputs.end() ? nullptr : it->second;
  }
  for (size_t i = 0; i < rec.states.size(); ++i) {
    auto in = a.initialStates.find(rec.states[i].name);
    p.initialStates[i] = in == a.initialStates.end() ? nullptr : in->second;
    auto out = a.finalStates.find(rec.states[i].name);
    p.finalStates[i] = out == a.finalStates.end() ? nullptr : out->second;
  }
  int scalar = 0, vector = 0;
  for (const rir::Decl& prm : rec.params) {
    // A param the body never reads (a derived pass may not need one the forward reads) need not
    // be given.
    bool used = false, hasDefault = false;
    for (const rir::Inst& inst : rec.body)
      if (inst.op == rir::Op::Param && inst.symbol == prm.name) {
        used = true;
        hasDefault = !inst.operands.empty();
      }
    if (prm.shape.empty()) {
      auto it = a.scalarParams.find(prm.name);
      p.scalarParamSet[scalar] = it != a.scalarParams.end();
      p.scalarParams[scalar] = it != a.scalarParams.end() ? static_cast<float>(it->second) : 0.f;
      if (used && !hasDefault && it == a.scalarParams.end()) fail("param '" + prm.name + "' has no default and is missing");
      ++scalar;
    } else {
      auto it = a.vectorParams.find(prm.name);
      if (!used) {
        p.vectorParams[vector++] = it == a.vectorParams.end() ? nullptr : it->second;
        continue;
      }
      if (it == a.vectorParams.end() || !it->second)
        fail("param '" + prm.name + "' is missing; expected an fp32 device tensor " +
             shapeText({a.heads, a.dims.at(prm.shape[0])}));
      p.vectorParams[vector++] = it->second;
    }
  }
  for (const auto& [name, v] : a.scalarParams) {
    (void)v;
    const rir::Decl* d = rec.param(name);
    if (!d || !d->shape.empty()) fail("'" + name + "' is not a scalar param of @" + name_);
  }
  for (const auto& [name, v] : a.vectorParams) {
    (void)v;
    const rir::Decl* d = rec.param(name);
    if (!d || d->shape.empty()) fail("'" + name + "' is not a vector param of @" + name_);
  }
  const std::vector<std::string> snapshots = a.layout.snapshotNames();
  for (size_t j = 0; j < snapshots.size() && j < static_cast<size_t>(kMaxStates); ++j) {
    auto it = a.snapshotBuffers.find(snapshots[j]);
    if (it == a.snapshotBuffers.end() || !it->second)
      fail("snapshotBuffers: the layout's anchors need a buffer for state '" + snapshots[j] + "'");
    p.snapshots[j] = it->second;
  }
  p.cuSeqlens = a.cuSeqlens;
  p.cuSeqlens64 = a.cuSeqlens64 ? 1 : 0;
  p.numSequences = static_cast<int>(N);
  p.time = a.time;
  p.heads = static_cast<int>(a.heads);
  if (N == 0) return;

  cuda::DeviceInfo info = cachedDeviceInfo(device);
  cuda::useDevice(device);
  const std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>> kernels = launchesFor(a, device, info);
  const cuda::Driver* d = cuda::driver();
  auto launch = [&](const codegen::EmittedKernel& kernel, const LoadedKernel& loaded, unsigned x, unsigned y, unsigned z) {
    void* kernelArgs[] = {&p};
    cuda::check(d->cuLaunchKernel(loaded.function, x, y, z, static_cast<unsigned>(kernel.threads), 1, 1,
                                  static_cast<unsigned>(kernel.smem.totalBytes), a.stream, kernelArgs, nullptr),
                "cuLaunchKernel",
                "kernel " + kernel.name + ", grid (" + std::to_string(x) + ", " + std::to_string(y) + ", " +
                    std::to_string(z) + "), block " + std::to_string(kernel.threads) + ", shared memory " +
                    std::to_string(kernel.smem.totalBytes) + " bytes");
  };
  if (kernels.size() == 1) {
    const auto& [kernel, loaded] = kernels.front();
    unsigned tiles = static_cast<unsigned>(kernel.tiles);
    if (a.layout.oneTilePerLaunch) {
      if (a.tileIndex < 0 || a.tileIndex >= kernel.tiles)
        fail("tileIndex: expected 0 to " + std::to_string(kernel.tiles - 1) + " (the tiles of " + kernel.tiledDim +
             "); got " + std::to_string(a.tileIndex));
      p.tileBase = a.tileIndex;
      tiles = 1;
    }
    launch(kernel, loaded, tiles, static_cast<unsigned>(a.heads), static_cast<unsigned>(N));
    return;
  }
  // The split strategy: the walk stores every chunk's starting state, then one CTA per
  // (chunk slot, head, tile) computes the outputs.
  const auto& [walk, walkLoaded] = kernels[0];
  const auto& [outputs, outputsLoaded] = kernels[1];
  const std::vector<size_t> offsets = snapshotOffsets(rec, a, walk.chunk);
  const size_t bytes = offsets.back();
  if (a.workspace && a.workspaceBytes < bytes)
    fail("workspace: expected at least " + std::to_string(bytes) + " bytes (forwardWorkspaceBytes) for the split " +
         "strategy's snapshots; got " + std::to_string(a.workspaceBytes));
  const int64_t slots = chunkSlots(a, walk.chunk);
  if (slots > 0x7fffffff) fail("the split strategy numbers " + std::to_string(slots) + " chunks; at most 2^31 - 1");
  CUdeviceptr owned = 0;
  char* base = static_cast<char*>(a.workspace);
  if (!base) {
    cuda::check(d->cuMemAllocAsync(&owned, bytes, a.stream), "cuMemAllocAsync",
                "the split strategy's snapshots of " + std::to_string(bytes) + " bytes");
    base = reinterpret_cast<char*>(owned);
  }
  for (size_t i = 0; i < rec.states.size(); ++i) p.snapshots[i] = reinterpret_cast<float*>(base + offsets[i]);
  try {
    launch(walk, walkLoaded, static_cast<unsigned>(walk.tiles), static_cast<unsigned>(a.heads), static_cast<unsigned>(N));
    launch(outputs, outputsLoaded, static_cast<unsigned>(slots), static_cast<unsigned>(a.heads),
           static_cast<unsigned>(outputs.tiles));
  } catch (...) {
    if (owned) (void)d->cuMemFreeAsync(owned, a.stream);
    throw;
  }
  if (owned) cuda::check(d->cuMemFreeAsync(owned, a.stream), "cuMemFreeAsync");
}

std::vector<std::pair<codegen::EmittedKernel, Program::LoadedKernel>> Program::launchesFor(
    const ForwardArgs& a, int device, const cuda::DeviceInfo& info) const {
  // Repeat calls with the same request skip config selection (which lowers and plans every
  // candidate), emission and the cache-key hash: the launch is looked up by what decides it.
  std::string request = std::to_string(device) + "/" + a.dtype + "/" + a.strategy + "/" + std::to_string(a.chunk) + "/" +
                        std::to_string(a.tile) + "/" + std::to_string(a.warps) + "/" + std::to_string(a.stages) + "/" +
                        std::to_string(prefersRecurrent(a)) + std::to_string(updatesInPlaceAcrossTiles(a)) + "/" +
                        a.layout.key();
  for (const auto& [dname, n] : a.dims) request += "/" + dname + "=" + std::to_string(n);
  std::lock_guard<std::mutex> lock(emitted_->mutex);
  auto it = emitted_->launches.find(request);
  if (it == emitted_->launches.end()) {
    KernelConfig config = chooseConfig(a, info.maxSharedPerBlockOptin, info.multiprocessors);
    std::vector<std::pair<codegen::EmittedKernel, LoadedKernel>> loaded;
    for (codegen::EmittedKernel& emitted : emitKernels(config, a.dims, a.dtype, a.layout)) {
      if (emitted.smem.totalBytes > info.maxSharedPerBlockOptin)
        throw Error("@" + name_ + " forward: kernel " + emitted.name + " with stages " + std::to_string(config.stages) +
                    " needs " + std::to_string(emitted.smem.totalBytes) + " bytes of shared memory; the device allows " +
                    std::to_string(info.maxSharedPerBlockOptin) + "; use stages 1 or 0 (choose)");
      LoadedKernel l = loadKernel(device, emitted, info.arch);
      loaded.emplace_back(std::move(emitted), l);
    }
    it = emitted_->launches.emplace(request, std::move(loaded)).first;
  }
  return it->second;
}

size_t Program::forwardWorkspaceBytes(const ForwardArgs& a, int device) const {
  if (sequenceCount(a) == 0) return 0;
  // The launch forward(a) makes (cached): the split strategy's walk carries the chunk size.
  const auto kernels = launchesFor(a, device, cachedDeviceInfo(device));
  return kernels.size() == 2 ? splitSnapshotBytes(a, kernels.front().first.chunk) : 0;
}

}  // namespace lina
