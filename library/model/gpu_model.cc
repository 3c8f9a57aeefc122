#include "library/model/gpu_model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "codegen/device/lina/device/model_params.h"
#include "library/model/cublas_gemm.h"
#include "library/model/float_convert.h"
#include "runtime/cuda_driver.h"
#include "runtime/module_loader.h"
#include "runtime/program.h"
#include "support/error.h"

namespace lina::model {

namespace mk = lina::model_kernels;

namespace {

const cuda::Driver& drv() {
  std::string why;
  const cuda::Driver* d = cuda::driver(&why);
  if (!d) throw Error("the GPU model runner needs a CUDA device: " + why + " (run on the CPU with --device cpu)");
  return *d;
}

int featureCode(const ModelConfig& c) {
  const std::string& f = c.featureMap;
  if (f.empty()) return mk::kNone;
  if (f == "relu") return mk::kRelu;
  if (f == "sigmoid") return mk::kSigmoid;
  if (f == "logsigmoid") return mk::kLogSigmoid;
  if (f == "swish" || f == "silu") return mk::kSwish;
  if (f == "sqrelu") return mk::kSqRelu;
  if (f == "gelu") return mk::kGelu;
  if (f == "t2r") return mk::kT2r;
  throw Error("config.json: feature_map: expected relu, sigmoid, logsigmoid, swish, sqrelu, gelu or t2r; got '" + f + "'");
}

double seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

const char* kernelSuffix(const std::string& dtype) { return dtype == "bf16" ? "bf16" : dtype == "fp16" ? "f16" : "f32"; }

}  // namespace

std::string gpuModelKernelSource(const std::string& dtype) {
  if (dtype != "bf16" && dtype != "fp16" && dtype != "fp32")
    throw Error("dtype: expected bf16, fp16 or fp32; got '" + dtype + "'");
  const std::string type = dtype == "bf16" ? "lina::bf16" : dtype == "fp16" ? "lina::f16" : "float";
  return "#include \"lina/device/model_blocks.cuh\"\nLINA_MODEL_KERNELS(" + type + ", " + kernelSuffix(dtype) + ")\n";
}

struct GpuModel::Impl {
  ModelConfig cfg;
  GpuModelOptions opt;
  cuda::DeviceInfo info;
  CUstream stream = nullptr;
  std::unique_ptr<CublasGemm> blas;
  GemmType gemmType = GemmType::BF16;
  size_t elem = 2;
  CUfunction fAddNorm = nullptr, fPre = nullptr, fPost = nullptr, fSwiglu = nullptr, fSample = nullptr, fToF32 = nullptr,
             fGemv = nullptr, fGemvFused = nullptr;
  size_t fusedSmemLimit = 0;  // the most shared memory lina_model_gemv_fused may take (0: never fused)
  std::unique_ptr<Program> attention;

  struct Layer {
    CUdeviceptr attnNorm = 0, win = 0, wo = 0, mlpNorm = 0, wgu = 0, wdown = 0, gNorm = 0, lowRank = 0, lowRankBias = 0,
                t2r = 0;
    CUdeviceptr conv[3] = {0, 0, 0};
  };
  std::vector<Layer> layers;
  CUdeviceptr embed = 0, norm = 0, lmHead = 0;
  int64_t D = 0, I = 0, vocab = 0, H = 0, Hkv = 0, K = 0, V = 0, M = 0, nIn = 0, convChannels = 0;
  int64_t kOff = 0, vOff = 0, gOff = -1, gateOff = 0;
  int featureMap = 0;  // model_kernels::FeatureMap of config.feature_map
  size_t weightBytes = 0, deviceBytes = 0;
  std::vector<CUdeviceptr> allocations;

  // Activations, for up to maxRows rows (tokens).
  int64_t maxRows = 0, logitRows = 0;
  // The residual lives in r or r2: a fused GEMV's add + norm reads one and writes the other
  // (every block reads the rows, block 0 writes them); rCur is where it is now.
  CUdeviceptr r = 0, r2 = 0, rCur = 0, x = 0, y = 0, q = 0, k = 0, v = 0, gate = 0, slots = 0, o = 0, on = 0, a = 0, gu = 0, act = 0, m = 0;
  CUdeviceptr xf = 0, logits = 0, logitsF32 = 0;
  CUdeviceptr tokens = 0, rowSeq = 0, rowPos = 0, cu = 0, rowMap = 0, iota = 0, positions = 0, steps = 0, history = 0;
  int64_t historySteps = 0;
  std::vector<CUdeviceptr> state1, state2, conv;  // per layer, for maxBatch sequences
  int64_t active = 0;  // sequences since the last prefill

  CUdeviceptr alloc(size_t bytes) {
    CUdeviceptr p = 0;
    cuda::check(drv().cuMemAlloc(&p, std::max<size_t>(bytes, 16)), "cuMemAlloc",
                std::to_string(bytes) + " bytes for the model runner (a smaller --max-batch or --max-prefill-tokens?)");
    allocations.push_back(p);
    deviceBytes += bytes;
    return p;
  }
  // Uploads fp32 values as the compute dtype.
  CUdeviceptr upload(const std::vector<float>& values) {
    std::vector<uint16_t> half;
    const void* src = values.data();
    if (gemmType != GemmType::F32) {
      half.resize(values.size());
      for (size_t i = 0; i < values.size(); ++i)
        half[i] = gemmType == GemmType::BF16 ? floatToBf16(values[i]) : floatToHalf(values[i]);
      src = half.data();
    }
    const size_t bytes = values.size() * elem;
    CUdeviceptr p = alloc(bytes);
    cuda::check(drv().cuMemcpyHtoD(p, src, bytes), "cuMemcpyHtoD", "model weights");
    weightBytes += bytes;
    return p;
  }
  CUdeviceptr weight(const Checkpoint& c, const std::string& name) { return upload(tensorToFloat(c.tensor(name))); }
  CUdeviceptr stacked(const Checkpoint& c, const std::vector<std::string>& names) {
    std::vector<float> all;
    for (const std::string& n : names) {
      std::vector<float> t = tensorToFloat(c.tensor(n));
      all.insert(all.end(), t.begin(), t.end());
    }
    return upload(all);
  }
  void copyIn(CUdeviceptr dst, const std::vector<int>& values) {
    cuda::check(drv().cuMemcpyHtoDAsync(dst, values.data(), values.size() * sizeof(int), stream), "cuMemcpyHtoDAsync");
    cuda::check(drv().cuStreamSynchronize(stream), "cuStreamSynchronize");  // `values` is the caller's
  }

  void launch(CUfunction f, unsigned gx, unsigned gy, unsigned threads, size_t smem, void** args, const char* what) {
    cuda::check(drv().cuLaunchKernel(f, gx, gy, 1, threads, 1, 1, static_cast<unsigned>(smem), stream, args, nullptr),
                "cuLaunchKernel", what);
  }

  // lina_model_gemv_fused's shared memory for `rows` rows of Din in groups of n (model_blocks.cuh).
  size_t fusedSmem(int64_t rows, int64_t Din, int64_t n) const {
    return (static_cast<size_t>(rows * Din) * elem + 15) / 16 * 16 + static_cast<size_t>(rows * Din) * sizeof(float) +
           static_cast<size_t>(rows * Din / n) * 8 * sizeof(float);
  }
  // lina's GEMV takes one row only: at batch 4 cuBLAS decoded faster (3032 against 1680 tok/s for
  // GLA-340M on an H200, bench/results/2026-12-07-h200-decode-profile); at batch 1 they tie
  // (776 / 784). The kernels handle up to kGemvRows.
  static constexpr int64_t kGemvUseRows = 1;
  bool gemvFits(int64_t rows, int64_t Din) const {
    return opt.gemv && rows <= kGemvUseRows && Din % (16 / static_cast<int64_t>(elem)) == 0;
  }
  // Blocks of 8 warps for N output columns: one column per warp, at most 8 blocks per SM
  // (warps then stride over the columns: the fused prologue is computed once per block).
  unsigned gemvBlocks(int64_t N) const {
    return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((N + 7) / 8, 8LL * std::max(info.multiprocessors, 1))));
  }

  // y[rows][N] = x[rows][Din] W^T: lina's GEMV for a few rows (decode), cuBLAS for the rest.
  // swigluI > 0: W is the MLP's [gate; up] (N = 2 swigluI rows) and y gets silu(gate) * up.
  void linear(CUdeviceptr W, CUdeviceptr xIn, CUdeviceptr yOut, int64_t rows, int64_t N, int64_t Din, int64_t swigluI = 0) {
    if (gemvFits(rows, Din)) {
      const void* w = reinterpret_cast<const void*>(W);
      const void* xp = reinterpret_cast<const void*>(xIn);
      void* yp = reinterpret_cast<void*>(yOut);
      int r = static_cast<int>(rows), n = static_cast<int>(swigluI > 0 ? swigluI : N), d = static_cast<int>(Din),
          sw = static_cast<int>(swigluI);
      void* args[] = {&w, &xp, &yp, &r, &n, &d, &sw};
      launch(fGemv, gemvBlocks(n), 1, 256, 0, args, "lina_model_gemv");
      return;
    }
    if (swigluI <= 0) {
      blas->linear(reinterpret_cast<void*>(W), reinterpret_cast<void*>(xIn), reinterpret_cast<void*>(yOut), rows, N, Din, gemmType);
      return;
    }
    blas->linear(reinterpret_cast<void*>(W), reinterpret_cast<void*>(xIn), reinterpret_cast<void*>(gu), rows, N, Din, gemmType);
    const void* guPtr = reinterpret_cast<const void*>(gu);
    void* actPtr = reinterpret_cast<void*>(yOut);
    long long rowsLL = rows;
    int Iv = static_cast<int>(swigluI);
    void* swArgs[] = {&guPtr, &actPtr, &rowsLL, &Iv};
    const int64_t blocksNeeded = (rows * swigluI + 255) / 256;
    launch(fSwiglu, static_cast<unsigned>(std::min<int64_t>(blocksNeeded, 8192)), 1, 256, 0, swArgs, "lina_model_swiglu");
  }

  // The add + norm of `rows` rows (mk::AddNormArgs: `in` added to the residual, or the
  // embeddings of tokenIds, then RMSNorm with weightPtr) and the projection W of its output:
  // one fused GEMV for a few rows (the residual moves to the other buffer), else the norm into
  // normOut in place and then `linear`.
  void addNormLinear(CUdeviceptr in, CUdeviceptr weightPtr, int flags, CUdeviceptr tokenIds, CUdeviceptr map,
                     CUdeviceptr normOut, CUdeviceptr W, CUdeviceptr yOut, int64_t rows, int64_t N, int64_t swigluI = 0) {
    mk::AddNormArgs p{};
    p.a = in ? reinterpret_cast<const void*>(in) : nullptr;
    p.rIn = reinterpret_cast<const void*>(rCur);
    p.w = reinterpret_cast<const void*>(weightPtr);
    p.D = static_cast<int>(D);
    p.eps = static_cast<float>(cfg.normEps);
    p.flags = flags;
    p.tokens = tokenIds ? reinterpret_cast<const int*>(tokenIds) : nullptr;
    p.embed = reinterpret_cast<const void*>(embed);
    p.rowMap = map ? reinterpret_cast<const int*>(map) : nullptr;
    const bool writes = tokenIds || (in && !(flags & 2));
    const size_t smem = fusedSmem(rows, D, D);
    if (gemvFits(rows, D) && smem <= fusedSmemLimit) {
      const CUdeviceptr next = writes ? (rCur == r ? r2 : r) : rCur;
      p.rOut = reinterpret_cast<void*>(next);
      mk::GemvFusedArgs g{};
      g.W = reinterpret_cast<const void*>(W);
      g.y = reinterpret_cast<void*>(yOut);
      g.rows = static_cast<int>(rows);
      g.N = static_cast<int>(swigluI > 0 ? swigluI : N);
      g.Din = static_cast<int>(D);
      g.swigluI = static_cast<int>(swigluI);
      g.prologue = mk::kGemvAddNorm;
      g.norm = p;
      void* args[] = {&g};
      launch(fGemvFused, gemvBlocks(g.N), 1, 256, smem, args, "lina_model_gemv_fused (add + norm)");
      rCur = next;
      return;
    }
    p.rOut = reinterpret_cast<void*>(rCur);
    void* xPtr = reinterpret_cast<void*>(normOut);
    void* args[] = {&p, &xPtr};
    launch(fAddNorm, static_cast<unsigned>(rows), 1, 256, (D + 8) * sizeof(float), args, "lina_model_add_norm");
    linear(W, normOut, yOut, rows, N, D, swigluI);
  }

  // The gated norm after the attention (mk::PostAttentionArgs, its output in `on`) and o_proj:
  // one fused GEMV for a few rows, else the two kernels.
  void postAttentionLinear(mk::PostAttentionArgs po, CUdeviceptr W, CUdeviceptr yOut, int64_t rows, int64_t N) {
    const int64_t Din = H * V, n = cfg.type == ModelType::GSA ? Din : V;
    const size_t smem = fusedSmem(rows, Din, n);
    if (gemvFits(rows, Din) && smem <= fusedSmemLimit) {
      mk::GemvFusedArgs g{};
      g.W = reinterpret_cast<const void*>(W);
      g.y = reinterpret_cast<void*>(yOut);
      g.rows = static_cast<int>(rows);
      g.N = static_cast<int>(N);
      g.Din = static_cast<int>(Din);
      g.prologue = mk::kGemvPostAttention;
      g.post = po;
      void* args[] = {&g};
      launch(fGemvFused, gemvBlocks(N), 1, 256, smem, args, "lina_model_gemv_fused (post-attention)");
      return;
    }
    po.out = reinterpret_cast<void*>(on);
    void* postArgs[] = {&po};
    launch(fPost, static_cast<unsigned>(rows), cfg.type == ModelType::GSA ? 1 : static_cast<unsigned>(H), 256,
           (n + 8) * sizeof(float), postArgs, "lina_model_post_attention");
    linear(W, on, yOut, rows, N, Din);
  }

  // The attention of `rows` rows: a prefill over packed prompts (cu) or one decode step.
  void attend(size_t l, int64_t rows, bool decode) {
    ForwardArgs fa;
    fa.dtype = opt.dtype;
    fa.heads = H;
    fa.stream = stream;
    fa.dims = {{"K", K}, {"V", V}};
    fa.inputs = {{"q", reinterpret_cast<const void*>(q)}, {"k", reinterpret_cast<const void*>(k)},
                 {"v", reinterpret_cast<const void*>(v)}};
    fa.outputs = {{"o", reinterpret_cast<void*>(o)}};
    float* s1 = reinterpret_cast<float*>(state1[l]);
    if (cfg.type == ModelType::GSA) {
      fa.dims["M"] = M;
      fa.inputs["s"] = reinterpret_cast<const void*>(slots);
      fa.inputs["g"] = reinterpret_cast<const void*>(gate);
      fa.scalarParams["scale"] = 1.0;  // fla's GSA layer
      float* s2 = reinterpret_cast<float*>(state2[l]);
      fa.finalStates = {{"Sk", s1}, {"Sv", s2}};
      if (decode) fa.initialStates = {{"Sk", s1}, {"Sv", s2}};
    } else {
      if (cfg.type == ModelType::GLA) fa.inputs["g"] = reinterpret_cast<const void*>(gate);
      fa.finalStates = {{"S", s1}};
      if (decode) fa.initialStates = {{"S", s1}};
    }
    if (decode) {
      fa.batch = rows;
      fa.time = 1;
      fa.strategy = "recurrent";
      // Narrow state tiles when the step has few (sequence, head) walks: a decode step at batch 1
      // has H of them, and one 64-column CTA each leaves most SMs idle. Each CTA owns its columns,
      // so the in-place update stays race-free (GSA keeps the default: its slots couple columns).
      if (cfg.type != ModelType::GSA) {
        int tile = 64;
        while (tile > 16 && rows * H * (V / tile) < 2 * info.multiprocessors) tile /= 2;
        if (V % tile == 0) fa.tile = tile;
      }
    } else {
      fa.batch = 1;
      fa.time = rows;
      fa.cuSeqlens = reinterpret_cast<const void*>(cu);
      fa.numSequences = active;
    }
    attention->forward(fa, opt.device);
  }

  // Every block over `rows` rows whose token ids are in `tokenIds`; leaves the last block's MLP
  // output in m and the residual in r.
  void blocks(int64_t rows, CUdeviceptr tokenIds, bool decode) {
    const int64_t qC = H * K;
    for (size_t l = 0; l < layers.size(); ++l) {
      const Layer& L = layers[l];
      if (l == 0)
        addNormLinear(0, L.attnNorm, 0, tokenIds, 0, x, L.win, y, rows, nIn);
      else
        addNormLinear(m, L.attnNorm, 1, 0, 0, x, L.win, y, rows, nIn);
      mk::PreAttentionArgs p{};
      p.y = reinterpret_cast<const void*>(y);
      p.ldy = nIn;
      p.q = reinterpret_cast<void*>(q);
      p.k = reinterpret_cast<void*>(k);
      p.v = reinterpret_cast<void*>(v);
      p.gate = reinterpret_cast<void*>(gate);
      p.slots = reinterpret_cast<void*>(slots);
      for (int i = 0; i < 3; ++i) p.convWeight[i] = L.conv[i] ? reinterpret_cast<const void*>(L.conv[i]) : nullptr;
      p.convCache = conv[l] ? reinterpret_cast<void*>(conv[l]) : nullptr;
      p.rowSeq = reinterpret_cast<const int*>(decode ? iota : rowSeq);
      p.cuSeqlens = reinterpret_cast<const int*>(decode ? iota : cu);
      p.rowPos = reinterpret_cast<const int*>(decode ? positions : rowPos);
      p.lowRank = L.lowRank ? reinterpret_cast<const void*>(L.lowRank) : nullptr;
      p.lowRankBias = L.lowRankBias ? reinterpret_cast<const void*>(L.lowRankBias) : nullptr;
      p.t2r = L.t2r ? reinterpret_cast<const void*>(L.t2r) : nullptr;
      p.decode = decode ? 1 : 0;
      p.model = cfg.type == ModelType::GLA ? mk::kGla : cfg.type == ModelType::RetNet ? mk::kRetNet : mk::kGsa;
      p.H = static_cast<int>(H);
      p.Hkv = static_cast<int>(Hkv);
      p.K = static_cast<int>(K);
      p.V = static_cast<int>(V);
      p.M = static_cast<int>(M);
      p.convW = static_cast<int>(cfg.convSize);
      p.featureMap = featureMap;
      p.lowRankDim = 16;
      p.gateNormalizer = static_cast<float>(cfg.gateLogitNormalizer);
      p.hasClamp = cfg.clampMin.has_value() ? 1 : 0;
      p.clampMin = cfg.clampMin ? static_cast<float>(*cfg.clampMin) : 0.f;
      p.kOffset = static_cast<int>(kOff);
      p.vOffset = static_cast<int>(vOff);
      p.gateOffset = static_cast<int>(gateOff);
      void* preArgs[] = {&p};
      launch(fPre, static_cast<unsigned>(rows), static_cast<unsigned>(Hkv), 256,
             static_cast<size_t>(qC / Hkv + K + V) * sizeof(float), preArgs, "lina_model_pre_attention");
      attend(l, rows, decode);
      mk::PostAttentionArgs po{};
      po.o = reinterpret_cast<const void*>(o);
      po.y = reinterpret_cast<const void*>(y);
      po.ldy = nIn;
      po.gOffset = static_cast<int>(gOff);
      po.normWeight = L.gNorm ? reinterpret_cast<const void*>(L.gNorm) : nullptr;
      po.model = p.model;
      po.H = p.H;
      po.V = p.V;
      po.eps = cfg.type == ModelType::GSA ? 1e-5f : static_cast<float>(cfg.normEps);  // fla's rms_norm_linear default
      postAttentionLinear(po, L.wo, a, rows, D);
      addNormLinear(a, L.mlpNorm, 0, 0, 0, x, L.wgu, act, rows, 2 * I, I);
      linear(L.wdown, act, m, rows, D, I);
    }
  }

  // The final norm of `count` rows picked by `map` (null: rows 0..count) and their logits.
  void head(int64_t count, CUdeviceptr map) {
    addNormLinear(m, norm, 3, 0, map, xf, lmHead, logits, count, vocab);
  }

  void sample(int64_t n, const GenerateOptions& g, bool advancePositions) {
    mk::SampleArgs s{};
    s.logits = reinterpret_cast<const void*>(logits);
    s.vocab = vocab;
    s.tokens = reinterpret_cast<int*>(tokens);
    s.history = reinterpret_cast<int*>(history);
    s.steps = reinterpret_cast<int*>(steps);
    s.positions = advancePositions ? reinterpret_cast<int*>(positions) : nullptr;
    s.numSequences = static_cast<int>(n);
    s.maxSteps = static_cast<int>(historySteps);
    s.temperature = static_cast<float>(g.sampling.greedy() ? 0.0 : g.sampling.temperature);
    s.topK = static_cast<int>(g.sampling.topK);
    s.topP = static_cast<float>(g.sampling.topP);
    s.seed = g.seed;
    void* args[] = {&s};
    launch(fSample, static_cast<unsigned>(n), 1, 1024, 0, args, "lina_model_sample");
  }

  std::vector<std::vector<float>> readLogits(int64_t count) {
    const void* in = reinterpret_cast<const void*>(logits);
    float* outPtr = reinterpret_cast<float*>(logitsF32);
    long long n = count * vocab;
    void* args[] = {&in, &outPtr, &n};
    launch(fToF32, static_cast<unsigned>(std::min<long long>((n + 255) / 256, 8192)), 1, 256, 0, args, "lina_model_to_f32");
    std::vector<float> all(static_cast<size_t>(n));
    cuda::check(drv().cuMemcpyDtoHAsync(all.data(), logitsF32, all.size() * sizeof(float), stream), "cuMemcpyDtoHAsync");
    cuda::check(drv().cuStreamSynchronize(stream), "cuStreamSynchronize", "model step");
    std::vector<std::vector<float>> out(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) out[i].assign(all.begin() + i * vocab, all.begin() + (i + 1) * vocab);
    return out;
  }

  void ensureHistory(int64_t steps) {
    if (steps <= historySteps) return;
    if (history) {  // no work in flight may still write the old one
      cuda::check(drv().cuStreamSynchronize(stream), "cuStreamSynchronize");
      drv().cuMemFree(history);
      allocations.erase(std::find(allocations.begin(), allocations.end(), history));
      deviceBytes -= static_cast<size_t>(historySteps * opt.maxBatch) * sizeof(int);
    }
    historySteps = steps;
    history = alloc(static_cast<size_t>(steps * opt.maxBatch) * sizeof(int));
  }

  // Validates and uploads the prompts, runs them through every block and samples each
  // sequence's first new token. Returns the rows (total prompt tokens).
  int64_t runPrefill(const std::vector<std::vector<int64_t>>& prompts, const GenerateOptions& g, bool allPositions,
                     std::vector<std::vector<float>>* out) {
    if (prompts.empty()) throw Error("prompts: expected at least one prompt; got none");
    if (static_cast<int64_t>(prompts.size()) > opt.maxBatch)
      throw Error("prompts: expected at most " + std::to_string(opt.maxBatch) + " (--max-batch); got " +
                  std::to_string(prompts.size()) + "; raise --max-batch");
    std::vector<int> ids, seqOf, pos, cuHost{0}, last;
    for (size_t n = 0; n < prompts.size(); ++n) {
      if (prompts[n].empty()) throw Error("prompt " + std::to_string(n) + ": expected at least one token; got an empty prompt");
      for (size_t t = 0; t < prompts[n].size(); ++t) {
        const int64_t id = prompts[n][t];
        if (id < 0 || id >= vocab)
          throw Error("prompt " + std::to_string(n) + ", token " + std::to_string(t) + ": expected a token id in 0.." +
                      std::to_string(vocab - 1) + " (vocab_size); got " + std::to_string(id));
        ids.push_back(static_cast<int>(id));
        seqOf.push_back(static_cast<int>(n));
        pos.push_back(static_cast<int>(t));
      }
      cuHost.push_back(static_cast<int>(ids.size()));
      last.push_back(cuHost.back() - 1);
    }
    const int64_t rows = static_cast<int64_t>(ids.size());
    if (rows > maxRows)
      throw Error("prompts: " + std::to_string(rows) + " tokens in all; expected at most " + std::to_string(maxRows) +
                  " (--max-prefill-tokens); raise --max-prefill-tokens or pass fewer or shorter prompts");
    active = static_cast<int64_t>(prompts.size());
    copyIn(tokens, ids);
    copyIn(rowSeq, seqOf);
    copyIn(rowPos, pos);
    copyIn(cu, cuHost);
    copyIn(rowMap, last);
    std::vector<int> lengths(prompts.size());
    for (size_t n = 0; n < prompts.size(); ++n) lengths[n] = static_cast<int>(prompts[n].size());
    copyIn(positions, lengths);
    cuda::check(drv().cuMemsetD8Async(steps, 0, static_cast<size_t>(opt.maxBatch) * sizeof(int), stream), "cuMemsetD8Async");
    blocks(rows, tokens, false);
    if (allPositions) {
      // Every position's logits, logitRows rows at a time (rows past the first block through rowMap).
      for (int64_t start = 0; start < rows; start += logitRows) {
        const int64_t count = std::min(logitRows, rows - start);
        head(count, iota + static_cast<CUdeviceptr>(start * sizeof(int)));
        for (auto& row : readLogits(count)) out->push_back(std::move(row));
      }
    }
    head(active, rowMap);
    if (out && !allPositions) *out = readLogits(active);
    ensureHistory(1);
    sample(active, g, false);
    return rows;
  }

  void decodeStep(const GenerateOptions& g) {
    blocks(active, tokens, true);
    head(active, 0);
    sample(active, g, true);
  }
};

GpuModel::GpuModel(const Checkpoint& c, const GpuModelOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.cfg = c.config();
  m.opt = options;
  const ModelConfig& cfg = m.cfg;
  if (cfg.type == ModelType::RWKV6)
    throw Error("model_type 'rwkv6': the GPU runner covers gla, retnet and gsa; RWKV6 runs on the CPU engine "
                "(lina-run --device cpu, lina.Runner(device='cpu')) or in PyTorch (lina.models)");
  if (options.dtype == "bf16") {
    m.gemmType = GemmType::BF16;
  } else if (options.dtype == "fp16") {
    m.gemmType = GemmType::F16;
  } else if (options.dtype == "fp32") {
    m.gemmType = GemmType::F32;
    m.elem = 4;
  } else {
    throw Error("--dtype: expected bf16, fp16 or fp32; got '" + options.dtype + "'");
  }
  if (options.maxBatch < 1) throw Error("--max-batch: expected an integer >= 1; got " + std::to_string(options.maxBatch));
  if (options.maxPrefillTokens < 1)
    throw Error("--max-prefill-tokens: expected an integer >= 1; got " + std::to_string(options.maxPrefillTokens));
  if (cfg.useShortConv && cfg.convSize > 8)
    throw Error("config.json: conv_size: expected at most 8 on the GPU runner; got " + std::to_string(cfg.convSize));
  m.featureMap = featureCode(cfg);
  drv();
  cuda::useDevice(options.device);
  m.info = runtime::cachedDeviceInfo(options.device);
  cuda::check(drv().cuStreamCreate(&m.stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  m.blas = std::make_unique<CublasGemm>(m.stream);

  // The runner's kernels, one module for the dtype (compiled through the kernel cache).
  const std::string suffix = kernelSuffix(options.dtype);
  codegen::EmittedKernel ek;
  ek.name = "lina_model_add_norm_" + suffix;
  ek.source = gpuModelKernelSource(options.dtype);
  const runtime::LoadedKernel loaded = runtime::loadKernel(options.device, ek, m.info.arch);
  m.fAddNorm = loaded.function;
  auto fn = [&](const std::string& name) {
    CUfunction f = nullptr;
    cuda::check(drv().cuModuleGetFunction(&f, loaded.module, (name + "_" + suffix).c_str()), "cuModuleGetFunction", name);
    return f;
  };
  m.fPre = fn("lina_model_pre_attention");
  m.fPost = fn("lina_model_post_attention");
  m.fSwiglu = fn("lina_model_swiglu");
  m.fSample = fn("lina_model_sample");
  m.fGemv = fn("lina_model_gemv");
  m.fGemvFused = fn("lina_model_gemv_fused");
  m.fToF32 = fn("lina_model_to_f32");

  m.attention = std::make_unique<Program>(
      Program::fromLibrary(cfg.type == ModelType::GLA ? "gla" : cfg.type == ModelType::RetNet ? "retention" : "gsa"));

  m.D = cfg.hiddenSize;
  m.I = cfg.mlpSize();
  m.vocab = cfg.vocabSize;
  m.H = cfg.numHeads;
  m.Hkv = cfg.kvHeads();
  m.K = cfg.headK();
  m.V = cfg.headV();
  m.M = cfg.type == ModelType::GSA ? cfg.numSlots : 0;
  const int64_t qC = m.H * m.K, kC = m.Hkv * m.K, vC = m.Hkv * m.V;
  m.kOff = qC;
  m.vOff = qC + kC;
  m.nIn = qC + kC + vC;
  if (cfg.type != ModelType::GSA && cfg.useOutputGate) {
    m.gOff = m.nIn;
    m.nIn += m.H * m.V;
  }
  m.gateOff = m.nIn;
  if (cfg.type == ModelType::GLA) m.nIn += 16;
  if (cfg.type == ModelType::GSA) m.nIn += m.Hkv * m.M;
  const size_t preSmem = static_cast<size_t>(qC / m.Hkv + m.K + m.V) * sizeof(float);  // one kv head's group
  if (preSmem > 48 * 1024)
    cuda::check(drv().cuFuncSetAttribute(m.fPre, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(preSmem)),
                "cuFuncSetAttribute", "lina_model_pre_attention: " + std::to_string(preSmem) + " bytes of shared memory");
  // The fused GEMV's input rows: up to kGemvRows of D (add + norm) or H*V (before o_proj).
  const size_t fusedBytes = std::max(m.fusedSmem(mk::kGemvRows, m.D, m.D), m.fusedSmem(mk::kGemvRows, m.H * m.V, m.V));
  if (fusedBytes <= 48 * 1024) {
    m.fusedSmemLimit = fusedBytes;
  } else if (fusedBytes <= static_cast<size_t>(m.info.maxSharedPerBlockOptin)) {
    cuda::check(drv().cuFuncSetAttribute(m.fGemvFused, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(fusedBytes)),
                "cuFuncSetAttribute", "lina_model_gemv_fused: " + std::to_string(fusedBytes) + " bytes of shared memory");
    m.fusedSmemLimit = fusedBytes;
  } else {
    m.fusedSmemLimit = 48 * 1024;  // wider rows take the separate norm kernels
  }
  const size_t postSmem = static_cast<size_t>(m.H * m.V + 8) * sizeof(float);
  if (postSmem > 48 * 1024)
    cuda::check(drv().cuFuncSetAttribute(m.fPost, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(postSmem)),
                "cuFuncSetAttribute", "lina_model_post_attention");
  const size_t normSmem = static_cast<size_t>(m.D + 8) * sizeof(float);
  if (normSmem > 48 * 1024)
    cuda::check(drv().cuFuncSetAttribute(m.fAddNorm, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, static_cast<int>(normSmem)),
                "cuFuncSetAttribute", "lina_model_add_norm");

  // Weights: the projections that read the same input fused into one matrix per layer.
  m.embed = m.weight(c, "model.embeddings.weight");
  m.norm = m.weight(c, "model.norm.weight");
  m.lmHead = c.lmHeadTied() ? m.embed : m.weight(c, "lm_head.weight");
  const bool conv = cfg.useShortConv && cfg.type != ModelType::RetNet;
  m.convChannels = conv ? qC + kC + vC : 0;
  for (int64_t i = 0; i < cfg.numLayers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    Impl::Layer L;
    L.attnNorm = m.weight(c, p + "attn_norm.weight");
    std::vector<std::string> in = {p + "attn.q_proj.weight", p + "attn.k_proj.weight", p + "attn.v_proj.weight"};
    if (cfg.type == ModelType::GSA) {
      in.push_back(p + "attn.f_proj.weight");
      if (cfg.featureMap == "t2r") L.t2r = m.weight(c, p + "attn.feature_map.layer.weight");
      if (cfg.elementwiseAffine) L.gNorm = m.weight(c, p + "attn.g_norm.weight");
    } else {
      if (cfg.useOutputGate) in.push_back(p + "attn.g_proj.weight");
      if (cfg.type == ModelType::GLA) {
        in.push_back(p + "attn.gk_proj.0.weight");
        L.lowRank = m.weight(c, p + "attn.gk_proj.1.weight");
        L.lowRankBias = m.weight(c, p + "attn.gk_proj.1.bias");
      }
      if (cfg.elementwiseAffine)
        L.gNorm = m.weight(c, p + (cfg.useOutputGate && cfg.fuseNorm ? "attn.g_norm_swish_gate.weight" : "attn.g_norm.weight"));
    }
    L.win = m.stacked(c, in);
    if (conv) {
      L.conv[0] = m.weight(c, p + "attn.q_conv1d.weight");
      L.conv[1] = m.weight(c, p + "attn.k_conv1d.weight");
      L.conv[2] = m.weight(c, p + "attn.v_conv1d.weight");
    }
    L.wo = m.weight(c, p + "attn.o_proj.weight");
    L.mlpNorm = m.weight(c, p + "mlp_norm.weight");
    L.wgu = m.stacked(c, {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"});
    L.wdown = m.weight(c, p + "mlp.down_proj.weight");
    m.layers.push_back(L);
  }

  // Activations and caches.
  const int64_t B = options.maxBatch;
  m.maxRows = std::max(options.maxPrefillTokens, B);
  m.logitRows = std::max<int64_t>(B, 256);
  const size_t e = m.elem;
  const int64_t R = m.maxRows;
  m.r = m.alloc(R * m.D * e);
  m.r2 = m.alloc(R * m.D * e);
  m.rCur = m.r;
  m.x = m.alloc(R * m.D * e);
  m.y = m.alloc(R * m.nIn * e);
  m.q = m.alloc(R * m.H * m.K * e);
  m.k = m.alloc(R * m.H * m.K * e);
  m.v = m.alloc(R * m.H * m.V * e);
  m.gate = m.alloc(R * m.H * std::max(m.K, m.M) * e);
  m.slots = m.alloc(R * m.H * std::max<int64_t>(m.M, 1) * e);
  m.o = m.alloc(R * m.H * m.V * e);
  m.on = m.alloc(R * m.H * m.V * e);
  m.a = m.alloc(R * m.D * e);
  m.gu = m.alloc(R * 2 * m.I * e);
  m.act = m.alloc(R * m.I * e);
  m.m = m.alloc(R * m.D * e);
  m.xf = m.alloc(m.logitRows * m.D * e);
  m.logits = m.alloc(m.logitRows * m.vocab * e);
  m.logitsF32 = m.alloc(m.logitRows * m.vocab * sizeof(float));
  m.tokens = m.alloc(R * sizeof(int));
  m.rowSeq = m.alloc(R * sizeof(int));
  m.rowPos = m.alloc(R * sizeof(int));
  m.cu = m.alloc((B + 1) * sizeof(int));
  m.rowMap = m.alloc(B * sizeof(int));
  m.positions = m.alloc(B * sizeof(int));
  m.steps = m.alloc(B * sizeof(int));
  m.iota = m.alloc((R + 1) * sizeof(int));  // 0, 1, ...: decode's rows and cu_seqlens, all-position row maps
  std::vector<int> iota(static_cast<size_t>(R + 1));
  for (int64_t i = 0; i <= R; ++i) iota[i] = static_cast<int>(i);
  m.copyIn(m.iota, iota);
  for (int64_t l = 0; l < cfg.numLayers; ++l) {
    if (cfg.type == ModelType::GSA) {
      m.state1.push_back(m.alloc(B * m.H * m.K * m.M * sizeof(float)));
      m.state2.push_back(m.alloc(B * m.H * m.M * m.V * sizeof(float)));
    } else {
      m.state1.push_back(m.alloc(B * m.H * m.K * m.V * sizeof(float)));
      m.state2.push_back(0);
    }
    m.conv.push_back(conv ? m.alloc(B * m.convChannels * cfg.convSize * e) : 0);
  }
}

GpuModel::~GpuModel() {
  if (!impl_) return;
  const cuda::Driver* d = cuda::driver();
  if (!d) return;
  if (impl_->stream) d->cuStreamSynchronize(impl_->stream);
  impl_->blas.reset();
  for (CUdeviceptr p : impl_->allocations) d->cuMemFree(p);
  if (impl_->stream) d->cuStreamDestroy(impl_->stream);
}

const ModelConfig& GpuModel::config() const { return impl_->cfg; }
size_t GpuModel::weightBytes() const { return impl_->weightBytes; }
size_t GpuModel::deviceBytes() const { return impl_->deviceBytes; }
std::string GpuModel::deviceName() const { return impl_->info.name; }

std::vector<std::vector<float>> GpuModel::prefill(const std::vector<std::vector<int64_t>>& prompts, bool allPositions) {
  std::vector<std::vector<float>> out;
  impl_->runPrefill(prompts, GenerateOptions{}, allPositions, &out);
  return out;
}

std::vector<std::vector<float>> GpuModel::step(const std::vector<int64_t>& tokens) {
  Impl& m = *impl_;
  if (m.active == 0) throw Error("step: no sequences; call prefill first");
  if (static_cast<int64_t>(tokens.size()) != m.active)
    throw Error("step: expected " + std::to_string(m.active) + " tokens (one per sequence of the prefill); got " +
                std::to_string(tokens.size()));
  std::vector<int> ids;
  for (int64_t t : tokens) {
    if (t < 0 || t >= m.vocab)
      throw Error("step: token id " + std::to_string(t) + ": expected 0.." + std::to_string(m.vocab - 1) + " (vocab_size)");
    ids.push_back(static_cast<int>(t));
  }
  m.copyIn(m.tokens, ids);
  m.blocks(m.active, m.tokens, true);
  m.head(m.active, 0);
  std::vector<std::vector<float>> out = m.readLogits(m.active);
  m.sample(m.active, GenerateOptions{}, true);  // advances the positions
  cuda::check(drv().cuStreamSynchronize(m.stream), "cuStreamSynchronize", "model step");
  return out;
}

GenerateResult GpuModel::generate(const std::vector<std::vector<int64_t>>& prompts, const GenerateOptions& g,
                                  const std::function<bool(int64_t, int64_t)>& onToken) {
  Impl& m = *impl_;
  g.sampling.validate();
  if (g.maxNewTokens < 1) throw Error("--max-new-tokens: expected an integer >= 1; got " + std::to_string(g.maxNewTokens));
  GenerateResult res;
  const auto t0 = std::chrono::steady_clock::now();
  m.ensureHistory(g.maxNewTokens);
  res.promptTokens = m.runPrefill(prompts, g, false, nullptr);
  const int64_t N = m.active;
  res.tokens.assign(static_cast<size_t>(N), {});
  std::vector<char> done(static_cast<size_t>(N), 0);
  std::vector<int> row(static_cast<size_t>(N));
  auto take = [&](int64_t stepIndex) {  // the tokens of `stepIndex`, already on the host in `row`
    bool all = true;
    for (int64_t n = 0; n < N; ++n) {
      if (done[n]) continue;
      res.tokens[n].push_back(row[n]);
      const bool stopped = onToken && onToken(n, row[n]);
      if (stopped || (g.stopAtEos && row[n] == m.cfg.eosTokenId) || stepIndex + 1 >= g.maxNewTokens) done[n] = 1;
      all = all && done[n];
    }
    return all;
  };
  auto fetch = [&](int64_t stepIndex) {
    cuda::check(drv().cuMemcpyDtoHAsync(row.data(), m.history + static_cast<CUdeviceptr>(stepIndex * N * sizeof(int)),
                                        static_cast<size_t>(N) * sizeof(int), m.stream),
                "cuMemcpyDtoHAsync");
    cuda::check(drv().cuStreamSynchronize(m.stream), "cuStreamSynchronize", "generation");
  };
  fetch(0);
  const auto t1 = std::chrono::steady_clock::now();
  res.prefillSeconds = seconds(t0, t1);
  bool finished = take(0);
  CUgraphExec exec = nullptr;
  for (int64_t s = 1; s < g.maxNewTokens && !finished; ++s) {
    if (m.opt.graphs && s >= 2 && !exec) {  // step 1 ran eagerly (kernels loaded); capture step 2 on
      CUgraph graph = nullptr;
      cuda::check(drv().cuStreamBeginCapture(m.stream, CU_STREAM_CAPTURE_MODE_RELAXED), "cuStreamBeginCapture");
      try {
        m.decodeStep(g);
      } catch (...) {
        drv().cuStreamEndCapture(m.stream, &graph);
        if (graph) drv().cuGraphDestroy(graph);
        throw;
      }
      cuda::check(drv().cuStreamEndCapture(m.stream, &graph), "cuStreamEndCapture", "decode step");
      cuda::check(drv().cuGraphInstantiate(&exec, graph, 0), "cuGraphInstantiate", "decode step");
      drv().cuGraphDestroy(graph);
    }
    if (exec)
      cuda::check(drv().cuGraphLaunch(exec, m.stream), "cuGraphLaunch", "decode step");
    else
      m.decodeStep(g);
    fetch(s);
    ++res.decodeSteps;
    finished = take(s);
  }
  if (exec) drv().cuGraphExecDestroy(exec);
  const auto t2 = std::chrono::steady_clock::now();
  res.decodeSeconds = seconds(t1, t2);
  for (const auto& t : res.tokens) res.decodedTokens += static_cast<int64_t>(t.size());
  res.decodedTokens -= N;  // the first token of each came from the prefill
  return res;
}

}  // namespace lina::model
