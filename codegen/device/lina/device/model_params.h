// The argument blocks of the model runner's kernels (model_blocks.cuh), shared by the host
// (library/model/gpu_model.cc) and the device: plain fields only, so the layout is the same.
#pragma once

namespace lina::model_kernels {

enum ModelKind { kGla = 0, kRetNet = 1, kGsa = 2 };
// Feature maps on q and k (fla's ACT2FN names; t2r is GSA's Linear + ReLU).
enum FeatureMap { kNone = 0, kRelu, kSigmoid, kLogSigmoid, kSwish, kSqRelu, kGelu, kT2r };

// Rows are tokens: a prefill packs every prompt's tokens (sequence n owns rows
// cuSeqlens[n] .. cuSeqlens[n+1]); a decode step has one row per sequence.
struct PreAttentionArgs {
  const void* y;        // the fused projection [rows][ldy]: q | k | v | (g) | gk low-rank input or f
  long long ldy;
  void* q;              // [rows][H][K]
  void* k;              // [rows][H][K] (kv heads repeated for GQA)
  void* v;              // [rows][H][V]
  void* gate;           // GLA: gk [rows][H][K]; GSA: f [rows][H][M]
  void* slots;          // GSA: s = 1 - exp(f) [rows][H][M]
  const void* convWeight[3];  // q, k, v: [channels][W], or null (no short convolution)
  void* convCache;      // [N][qC + kC + vC][W]: the last W pre-activation inputs
  const int* rowSeq;    // [rows]: the row's sequence
  const int* cuSeqlens; // [N + 1]
  const int* rowPos;    // [rows]: the token's position in its sequence (RetNet's RoPE)
  const void* lowRank;  // GLA: gk_proj.1.weight [Hkv*K][lowRankDim]
  const void* lowRankBias;  // [Hkv*K]
  const void* t2r;      // GSA t2r: [K][K]
  int decode;           // 1: one row per sequence, the window comes from convCache
  int model, H, Hkv, K, V, M, convW, featureMap, lowRankDim;
  float gateNormalizer, clampMin;
  int hasClamp;
  int kOffset, vOffset, gateOffset;  // columns of k, v and of the gate input (gk low rank or f) in y
};

struct PostAttentionArgs {
  const void* o;        // [rows][H][V]
  const void* y;        // the fused projection (the output gate's columns)
  long long ldy;
  int gOffset;          // -1: no output gate
  const void* normWeight;  // [V] (GLA, RetNet) or [H*V] (GSA), or null
  void* out;            // [rows][H*V]
  int model, H, V;
  float eps;
};

// The most rows (tokens) lina_model_gemv computes; more go to cuBLAS.
constexpr int kGemvRows = 4;

// A residual add + RMSNorm over rows of D: with `tokens`, r = embed[token] (the first block);
// else with `a`, r = a + r (fp32, stored in T); then x = RMSNorm(r) * w. flags: 1 normalises the
// stored sum (a plain add, then the norm), 2 leaves the residual unwritten (the final norm).
// The residual is read from rIn and written to rOut (the same buffer when one block owns a row;
// another when every block of a fused GEMV reads the row). rowMap (or null) picks each output
// row's input row.
struct AddNormArgs {
  const void* a;
  const void* rIn;
  void* rOut;
  const void* w;
  int D;
  float eps;
  int flags;
  const int* tokens;
  const void* embed;
  const int* rowMap;
};

// lina_model_gemv_fused: the GEMV of a few rows whose input it computes itself into shared
// memory, so the decode step has no separate norm or output-gate kernel before a projection.
enum GemvPrologue { kGemvAddNorm = 1, kGemvPostAttention = 2 };
struct GemvFusedArgs {
  const void* W;  // [N (or 2 swigluI)][Din]
  void* y;        // [rows][N]
  int rows, N, Din, swigluI;
  int prologue;
  AddNormArgs norm;       // kGemvAddNorm: x = the norm's output (Din = D)
  PostAttentionArgs post; // kGemvPostAttention: x = the gated norm's output (Din = H*V; `out` unused)
};

struct SampleArgs {
  const void* logits;   // [N][vocab]
  long long vocab;
  int* tokens;          // [N]: the next input token of each sequence
  int* history;         // [steps][N]: every token drawn
  int* steps;           // [N]: tokens drawn so far per sequence
  int* positions;       // [N] or null: advanced by one
  int numSequences, maxSteps;
  float temperature;    // 0: greedy
  int topK;             // 0: off
  float topP;           // 1: off
  unsigned long long seed;
};

}  // namespace lina::model_kernels
