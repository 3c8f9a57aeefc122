// Config choice: which kernel configurations a program may run and which one a launch takes.
// This is where the tuner's database will be consulted (today: rules measured on an H100).
#include "runtime/config_choice.h"

#include <algorithm>

#include "compiler/kir/register_tiles.h"
#include "support/error.h"

namespace lina {

KernelRequest ProgramView::request(const KernelConfig& config, const std::map<std::string, int64_t>& dims,
                                   const std::string& dtype, const cir::TensorLayout& layout) const {
  KernelRequest r;
  r.strategy = config.strategy;
  r.chunk = config.chunk;
  r.warps = config.warps;
  r.tile = config.tile;
  r.stages = config.stages;
  r.dims = dims;
  r.dtype = dtype;
  r.layout = layout;
  r.tiledDimOverride = blockedPass ? tiledDim : "";
  r.sourceName = sourceName;
  r.registerTiles = config.registerTiles;
  return r;
}

std::vector<KernelConfig> candidateConfigs(const ProgramView& program, const std::map<std::string, int64_t>& dims,
                                           const std::string& dtype, int64_t sharedMemoryBytes, bool requireWholeTile,
                                           const cir::TensorLayout& layout) {
  std::vector<KernelConfig> out;
  const std::string& tiled = program.tiledDim;
  std::vector<int> tiles = {0};
  if (!tiled.empty()) {
    tiles.clear();
    int64_t full = dims.count(tiled) ? dims.at(tiled) : 0;
    // Blocked derived passes also take 128: their state tile holds the whole other dim.
    for (int t : {128, 64, 32, 16})
      if (full % t == 0 && t <= full && (t < 128 || program.blockedPass)) tiles.push_back(t);
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
  for (int64_t c : program.recurrence.chunkSizes)
    if (c <= maxChunk) shapes.push_back({cir::Strategy::Fused, static_cast<int>(c)});
  for (int64_t c : program.recurrence.chunkSizes)
    if (c <= maxChunk) shapes.push_back({cir::Strategy::Split, static_cast<int>(c)});
  for (auto [strategy, chunk] : shapes) {
    std::vector<cir::Kernel> kernels;
    try {
      kernels = lowerToKernels(program.recurrence, program.request({strategy, chunk, 0, 16, 1}, dims, dtype, layout));
    } catch (const Error&) {
      if (strategy == cir::Strategy::Split) continue;  // cannot be split (a running sum): fused and recurrent remain
      throw;
    }
    for (int tile : tiles) {
      if (tile == 0 && !tiled.empty()) continue;
      KernelConfig config{strategy, chunk, tile};
      // The same specialization the pipeline gives the request (stages varied below).
      cir::Specialization spec = program.request(config, dims, dtype, layout).specialization();
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
  // The register-tile kernels (KIR): fused or split, chunk 64, one CTA per 64 or 128 columns of
  // the state. Both widths are candidates: 128 loads q, k, g once per head, 64 doubles the CTAs.
  // A split config's tile is its outputs kernel's; its walk always runs 64 columns per CTA.
  const bool chunk64 = std::find(program.recurrence.chunkSizes.begin(), program.recurrence.chunkSizes.end(), 64) !=
                       program.recurrence.chunkSizes.end();
  if (chunk64 && !program.blockedPass)
    for (cir::Strategy strategy : {cir::Strategy::Fused, cir::Strategy::Split})
      for (int bv : {128, 64}) {
        cir::Specialization spec = program.request({strategy, 64, bv, 0, 2}, dims, dtype, layout).specialization();
        if (!kir::registerTilesUnsupported(program.recurrence, strategy, 64, spec).empty()) continue;
        const std::vector<kir::RegisterTileKernel> kernels = kir::lowerToRegisterTiles(program.recurrence, strategy, 64, spec);
        bool fits = true;
        for (const kir::RegisterTileKernel& k : kernels) fits = fits && k.sharedBytes <= sharedMemoryBytes;
        if (fits) out.push_back({strategy, 64, bv, kernels.back().warps, kernels.back().stages, true});
      }
  return out;
}

// `auto` takes the register-tile split (segmented) for few long walks: at B2_T16384_H16_D128 on
// an H100 it ran 0.84 ms against the fused walk's 1.26-1.29 ms for GLA, simple GLA and retention
// (bench/results/2026-12-07-h100-gsa-kir-segmented-fused-gemv), and with the row gates on the
// fragments 0.41-0.46 ms against the fused walk's 0.60-0.68 for simple GLA, retention and linear attention
// (2048-token segments; bench/results/2026-12-07-h100-row-gate-fragments). Long means at least
// kAutoSplitTokens tokens per sequence on average (4 segments of the longest plan): with fewer,
// the three launches and the scan cost more than the parallelism gives.
constexpr bool kAutoSplitRegisterTiles = true;
constexpr int64_t kAutoSplitTokens = 4 * 64 * kir::kSegmentChunksRowGate;

std::string registerTilesUnsupported(const ProgramView& program, const ForwardArgs& args, int tile) {
  if (program.blockedPass) return "a blocked derived-backward pass";
  const auto& sizes = program.recurrence.chunkSizes;
  if (std::find(sizes.begin(), sizes.end(), 64) == sizes.end()) return "the program's chunk sizes do not include 64";
  cir::Specialization spec = program.request({cir::Strategy::Fused, 64, tile, 0, 2}, args.dims, args.dtype, args.layout).specialization();
  return kir::registerTilesUnsupported(program.recurrence, cir::Strategy::Fused, 64, spec);
}

bool prefersRecurrent(const ForwardArgs& a) {
  return a.time <= 16 * std::max<int64_t>(1, a.cuSeqlens ? a.numSequences : 1);
}

int preferredChunk(const rir::Recurrence& rec) {
  for (const rir::Inst& read : rec.body) {
    if (read.op != rir::Op::Read) continue;
    for (const rir::Inst& update : rec.body) {
      if (update.op != rir::Op::Update || update.symbol != read.symbol) continue;
      const rir::Decl* s = rec.state(read.symbol);
      const rir::Gate& contracted = read.dim == s->shape[0] ? update.rows : update.cols;
      const rir::Inst* g = contracted.present() ? rec.definition(contracted.value) : nullptr;
      if (g && !g->shape.empty()) return 16;
    }
  }
  return 32;
}

bool updatesInPlaceAcrossTiles(const ProgramView& program, const ForwardArgs& args) {
  const std::string& tiled = program.tiledDim;
  for (const rir::Decl& s : program.recurrence.states) {
    auto in = args.initialStates.find(s.name);
    auto out = args.finalStates.find(s.name);
    bool aliased = in != args.initialStates.end() && out != args.finalStates.end() && in->second == out->second;
    bool sharedByTiles = s.shape[0] != tiled && s.shape[1] != tiled;
    if (aliased && sharedByTiles && !tiled.empty()) return true;
  }
  return false;
}

KernelConfig chooseConfig(const ProgramView& program, const ForwardArgs& args, int64_t sharedMemoryBytes, int multiprocessors) {
  const std::string& name_ = program.recurrence.name;
  if (args.config) return *args.config;  // the tuner's candidate, or a tuned database entry
  // A state updated in place that every tile reads and writes (GSA's Sk) needs one CTA per
  // (sequence, head): otherwise a tile could read a block another tile already overwrote.
  bool wholeTile = updatesInPlaceAcrossTiles(program, args);
  ForwardArgs a = args;
  if (a.tile < 0) throw Error("tile: expected 0 (choose) or a size of the tiled dim per CTA; got " + std::to_string(a.tile));
  if (a.tile && !program.tiledDim.empty()) {
    const auto dim = a.dims.find(program.tiledDim);
    if (dim != a.dims.end() && (dim->second % a.tile != 0 || a.tile > dim->second))
      throw Error("@" + name_ + ": tile " + std::to_string(a.tile) + " does not divide " + program.tiledDim + " = " +
                  std::to_string(dim->second) + "; pick a tile that divides it (or 0 to choose)");
  }
  if (wholeTile) a.tile = static_cast<int>(args.dims.at(program.tiledDim));
  // A requested tile is looked for among every tile that fits, not only the largest.
  std::vector<KernelConfig> candidates = candidateConfigs(program, a.dims, a.dtype, sharedMemoryBytes, wholeTile || a.tile != 0, a.layout);
  if (a.kernels != "auto" && a.kernels != "register" && a.kernels != "simt")
    throw Error("kernels: expected auto, register or simt; got '" + a.kernels + "'");
  // The register-tile kernels, kept apart: the rules below pick among the CIR kernels.
  std::vector<KernelConfig> registerTiles;
  for (auto it = candidates.begin(); it != candidates.end();)
    if (it->registerTiles) {
      registerTiles.push_back(*it);
      it = candidates.erase(it);
    } else {
      ++it;
    }
  // Each register-tile CTA owns whole columns of every state it updates (a two-phase plan's
  // column-gated state is one CTA per (sequence, head)), so in-place states need no whole tile.
  if (a.kernels == "register" || (a.kernels == "auto" && !registerTiles.empty())) {
    const bool strategyFits = a.strategy == "fused" || a.strategy == "split" || (a.strategy == "auto" && !prefersRecurrent(a));
    const bool chunkFits = a.chunk == 0 || a.chunk == 64;
    const KernelConfig* chosenTiles = nullptr;
    if (strategyFits && chunkFits) {
      const KernelConfig *wide = nullptr, *narrow = nullptr;
      for (const KernelConfig& c : registerTiles) {
        if (args.tile && c.tile != args.tile) continue;
        if (c.strategy != cir::Strategy::Fused) continue;
        (c.tile == 128 ? wide : narrow) = &c;
      }
      // 128 columns per CTA unless the 64-column CTAs (twice as many, one per SM) still run in
      // one wave: then they ran 8-14% faster (B2_T16384_H16_D128); in two waves 1.6x slower
      // (B8_T2048_H16_D128: 0.335 ms against 0.187; bench/results/2026-12-06-h100-kir-forward).
      chosenTiles = wide ? wide : narrow;
      if (wide && narrow && multiprocessors > 0) {
        const auto V = a.dims.find(program.tiledDim);
        const int64_t narrowCtas = sequenceCount(a) * a.heads * (V == a.dims.end() ? 1 : V->second / 64);
        if (narrowCtas <= multiprocessors) chosenTiles = narrow;
      }
      // Few long walks even at 64 columns per CTA: the split strategy (the walk without the
      // outputs at 64 columns per CTA, then one CTA per chunk slot). Its outputs kernel has CTAs
      // to spare: the widest tile (q, k, g loaded once per head).
      auto splitOf = [&](const KernelConfig* fused) -> const KernelConfig* {
        const KernelConfig* best = nullptr;
        for (const KernelConfig& c : registerTiles)
          if (c.strategy == cir::Strategy::Split && fused && (args.tile ? c.tile == args.tile : !best || c.tile > best->tile)) best = &c;
        return best;
      };
      if (a.strategy == "split") {
        chosenTiles = splitOf(chosenTiles);
      } else if (a.strategy == "auto" && chosenTiles && multiprocessors > 0 && kAutoSplitRegisterTiles) {
        const auto V = a.dims.find(program.tiledDim);
        const int64_t N = sequenceCount(a);
        const int64_t walks = N * a.heads * (V == a.dims.end() ? 1 : V->second / 64);
        const bool longWalks = tokenCount(a) >= kAutoSplitTokens * std::max<int64_t>(N, 1);
        if (walks < multiprocessors && longWalks)
          if (const KernelConfig* split = splitOf(chosenTiles)) chosenTiles = split;
      }
    }
    if (chosenTiles) {
      KernelConfig config = *chosenTiles;
      if (a.warps && a.warps != config.warps)
        throw Error("@" + name_ + ": the register-tile kernel with tile " + std::to_string(config.tile) + " runs " +
                    std::to_string(config.warps) + " warps; got warps " + std::to_string(a.warps) + " (pass 0, or kernels simt)");
      return config;
    }
    if (a.kernels == "register") {
      std::string why = registerTilesUnsupported(program, a, args.tile);
      if (why.empty() && !strategyFits) why = "strategy " + a.strategy + (prefersRecurrent(a) ? " (a decode-length launch)" : "");
      if (why.empty() && !chunkFits) why = "chunk " + std::to_string(a.chunk);
      if (why.empty()) why = "no register-tile kernel fits in " + std::to_string(sharedMemoryBytes) + " bytes of shared memory";
      throw Error("@" + name_ + ": kernels register: no register-tile kernel for this launch: " + why +
                  " (register tiles: fused or split, chunk 64, bf16, one state [K in {64, 128}, V a multiple of 64] or two chained through a column-gated read (GSA, M = 64); use kernels auto)");
    }
  }
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
    int preferred = preferredChunk(program.recurrence);
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
      const std::string& tiled = program.tiledDim;
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
  if (!chosen && a.strategy == "split") {
    // The split strategy may not apply at all (a running sum): the lowering's reason, not "no fit".
    const int chunk = a.chunk ? a.chunk : static_cast<int>(program.recurrence.chunkSizes.front());
    (void)lowerToKernels(program.recurrence, program.request({cir::Strategy::Split, chunk, 0, 16, 1}, a.dims, a.dtype, a.layout));
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

}  // namespace lina
