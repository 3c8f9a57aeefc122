// The GPU path of the model runner: fla's GLA, RetNet and GSA blocks on one device, with the
// projections through cuBLAS, the attention through lina's own kernels (prefill: the chunked
// forward over packed prompts with cu_seqlens, no padding; decode: the recurrent step in place
// on the per-sequence state cache) and the rest through the runner's kernels
// (codegen/device/lina/device/model_blocks.cuh: fused add + RMSNorm, the gates, short
// convolutions with their cache, RoPE, the gated output norm, SwiGLU, sampling). Decode runs as
// one CUDA graph replay per token, with the next token drawn on the device and fed back there.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "library/model/checkpoint.h"
#include "library/model/sampling.h"

namespace lina::model {

struct GpuModelOptions {
  std::string dtype = "bf16";      // the compute and weight dtype: bf16 | fp16 | fp32
  int64_t maxBatch = 64;           // sequences decoded together
  int64_t maxPrefillTokens = 16384;  // prompt tokens of one prefill, all sequences together
  bool graphs = true;              // decode under CUDA graphs
  bool gemv = true;                // lina's GEMV for <= 4 rows (decode), else cuBLAS for every projection
  int device = 0;
};

struct GenerateOptions {
  int64_t maxNewTokens = 64;
  SamplingOptions sampling;
  uint64_t seed = 0;
  bool stopAtEos = true;
};

struct GenerateResult {
  std::vector<std::vector<int64_t>> tokens;  // per prompt, the new tokens (EOS included)
  int64_t promptTokens = 0, decodeSteps = 0, decodedTokens = 0;
  double prefillSeconds = 0, decodeSeconds = 0;
};

// The CUDA source of the runner's kernels for a dtype (bf16 | fp16 | fp32): what GpuModel
// compiles through NVRTC, and what CI compiles without a GPU.
std::string gpuModelKernelSource(const std::string& dtype);

class GpuModel {
 public:
  // Uploads the checkpoint's weights in options.dtype. Throws lina::Error (no GPU, no cuBLAS,
  // a bad option) naming what is wrong.
  GpuModel(const Checkpoint& checkpoint, const GpuModelOptions& options);
  ~GpuModel();
  GpuModel(const GpuModel&) = delete;
  GpuModel& operator=(const GpuModel&) = delete;

  const ModelConfig& config() const;
  // Runs the prompts (fresh states) and returns fp32 logits: per prompt those after its last
  // token, or with `allPositions` those after every token ([T][vocab] flattened).
  std::vector<std::vector<float>> prefill(const std::vector<std::vector<int64_t>>& prompts, bool allPositions = false);
  // One decode step after prefill: feeds tokens[i] to sequence i, returns its logits.
  std::vector<std::vector<float>> step(const std::vector<int64_t>& tokens);
  // Prefill, then decode up to maxNewTokens per prompt; `onToken(sequence, token)` sees each new
  // token as it is drawn (in order per sequence) and returns true to end that sequence there (a
  // stop string). Stops when every sequence has ended (EOS, onToken, or maxNewTokens).
  GenerateResult generate(const std::vector<std::vector<int64_t>>& prompts, const GenerateOptions& options,
                          const std::function<bool(int64_t, int64_t)>& onToken = {});
  size_t weightBytes() const;
  // Device memory the runner holds (weights, caches, buffers).
  size_t deviceBytes() const;
  std::string deviceName() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lina::model
