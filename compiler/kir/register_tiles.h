// KIR, the kernel level between CIR and CUDA (shared/DESIGN.md): a kernel whose chunk values live
// in registers as tensor-core fragments. lowerToRegisterTiles matches a canonical recurrence of
// the single-state family
//
//   S = a_t (.)rows S + outer(k_t, v_t),   o_t = c * (q_t @ S)   (read after the update)
//
// with a_t = exp(g_t) a vector gate g [K], a scalar gate g [], a uniform (per-head) log decay or
// none, and c any uniform scalar (params, dims, head), and plans its register-tile kernel: the
// work split over warps, the fragment layouts, the shared buffers, the per-chunk schedule with its
// barriers and what is fused into which fragment. The plan is printable (`linac --emit=kir`) and
// is what emit-cuda instantiates (codegen/cuda/emit_register_tiles.cc, the device template
// lina/device/fused_chunk_skeleton.cuh). Programs outside the family keep the CIR (SIMT) path;
// the reason is reported.
//
// Two-phase plans (two_phase.cc) cover two states chained through the read of the first
// (GSA):   A = A (.)cols exp(g1) + outer(k1, v1),  p = epilogue(c1 * (q @ A_t))  [M]
//          B = exp(g2) (.)rows B + outer(k2, v2),  o = c2 * (p @ B_t)
// as two kernels: a column-gated one (gate on the read's output dim, the epilogue a softmax or
// none, lina/device/column_gated_chunk.cuh) writing p as a bf16 intermediate [tokens, H, M],
// then the row-gated kernel above with that intermediate as its query.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "compiler/cir/ir.h"
#include "compiler/rir/ir.h"

namespace lina::kir {

enum class GateKind {
  Vector,        // g [K] per step: fla's GLA
  Scalar,        // g [] per step: simple GLA
  HeadConstant,  // a uniform log decay (depends on the head, params, dims): RetNet
  None,          // no decay: linear attention
};
const char* gateKindName(GateKind g);

// Which kernel of a plan: the fused walk, or one of the three of the segmented strategy (the
// runtime's "split" on register tiles): local states of every segment in parallel, the scan over
// segments, then every segment's outputs from its starting state in parallel.
enum class Part { Whole, SegmentLocal, SegmentScan, SegmentOutputs };
// What follows a column-gated read before it is stored (over the read's output dim).
enum class Epilogue { None, Softmax };
const char* partName(Part p);  // "whole", "segment-local", "segment-scan", "segment-outputs"
// Segment lengths in chunks (of 64 tokens), measured on an H100 at B2_T16384_H16_D128
// (bench/results/2026-12-07-h100-row-gate-fragments): row gates 32 (2048 tokens: 0.41-0.46 ms
// against 0.54-0.57 at 16 and 0.77-0.81 at 8), vector gates 16 (their walks cost more per chunk).
constexpr int kSegmentChunksRowGate = 32, kSegmentChunksVectorGate = 16;
// The segment length the plan uses for a gate kind, or LINA_KIR_SEGMENT_CHUNKS (4, 8, 16, 32 or
// 64) for tuning experiments; any other value throws naming the variable.
int segmentChunks(GateKind gate);

// One buffer in dynamic shared memory (bytes).
struct SharedBuffer {
  std::string name, type, shape, why;
  int64_t offset = 0, bytes = 0;
};

struct RegisterTileKernel {
  std::string name, program;
  GateKind gate = GateKind::None;
  // The tensors, with their KernelParams slots (the program's declaration order). slotQ or
  // slotO -1: the two-phase plan's intermediate (`intermediate`, bf16 [tokens, H, width]).
  std::string q, k, v, g, o, state;
  int slotQ = 0, slotK = 0, slotV = 0, slotG = -1, slotO = 0, slotState = 0;
  // A column-gated kernel (the first of a two-phase plan): the gate g [colDim] acts on the
  // state's columns, the read's output dim; `epilogue` follows the read.
  bool columnGate = false;
  Epilogue epilogue = Epilogue::None;
  int phase = -1;  // 0 or 1 in a two-phase plan, -1 otherwise
  std::string intermediate;
  int intermediateWidth = 0;  // elements per (token, head) of the intermediate, 0: none
  std::string rowDim, colDim;  // the state's [K, V]
  int K = 0, V = 0, BV = 0;    // head dims and the V columns per CTA
  int chunk = 64, subChunk = 16;
  int warps = 0;
  int stages = 2;  // the chunk inputs are double-buffered (cp.async one chunk ahead)
  Part part = Part::Whole;
  int segment = 0;  // chunks per segment (the segmented parts)
  int blocksPerSm = 1;  // __launch_bounds__' minimum blocks per SM
  // The derived backward's kernels (adjoint.h): walk each sequence from its end, take the gate of
  // the next token (none at the walk's first step), keep the states transposed, write fp32.
  bool reverse = false, gateShift = false, stateTransposed = false, outF32 = false, initDivScale = false;
  // Uniform scalars as C++ double expressions over `p` (KernelParams), `h` and `H`, and as RIR
  // text for the listing: the output scale and, for HeadConstant, the natural-log decay.
  std::string scaleCode = "1.0", scaleText = "1";
  std::string logDecayCode, logDecayText;
  std::vector<SharedBuffer> shared;
  int64_t sharedBytes = 0;
  // KernelParams order (as codegen::EmittedKernel lists them).
  std::vector<std::string> inputs, outputs, states, scalarParams, vectorParams;
  int threads() const { return warps * 32; }
  int tiles() const { return part == Part::SegmentScan ? K * V / 256 : V / BV; }
  int64_t intermediateBytesPerTokenHead() const { return 2LL * intermediateWidth; }
};

// Why `rec` with this request has no register-tile kernel (empty: it has one).
std::string registerTilesUnsupported(const rir::Recurrence& rec, cir::Strategy strategy, int chunk,
                                     const cir::Specialization& spec);

// The register-tile kernels of `rec` for a chunk-64 request: one (fused) or three (split: the
// segmented strategy); throws lina::Error with the reason when the program or the
// request is outside what the kernel level handles.
std::vector<RegisterTileKernel> lowerToRegisterTiles(const rir::Recurrence& rec, cir::Strategy strategy, int chunk,
                                        const cir::Specialization& spec);

// The listing `linac --emit=kir` prints: launch, fragments, buffers, the per-chunk schedule with
// its barriers, and the fusions.
void print(std::ostream& os, const RegisterTileKernel& kernel);

// Two-phase plans (two_phase.cc): the reason `rec` has none (empty: it has one), and its two
// kernels (fused only).
std::string twoPhaseUnsupported(const rir::Recurrence& rec, cir::Strategy strategy, int chunk, const cir::Specialization& spec);
std::vector<RegisterTileKernel> lowerTwoPhase(const rir::Recurrence& rec, cir::Strategy strategy, int chunk,
                                              const cir::Specialization& spec);
void printColumnGated(std::ostream& os, const RegisterTileKernel& kernel);

}  // namespace lina::kir
