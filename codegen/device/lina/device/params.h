// The kernel parameter block shared by the host runtime and the generated kernels. Plain,
// fixed-size fields only, so the layout is identical on both sides.
#pragma once

namespace lina {

constexpr int kMaxInputs = 24;
constexpr int kMaxOutputs = 16;
constexpr int kMaxStates = 8;
constexpr int kMaxParams = 8;
// The derived backward re-anchors its gate-gradient running sums every kAnchorSpacing steps,
// counted from each sequence's last token (a multiple of every chunk size). Pass A stores its
// states at those steps in slots bos / kAnchorSpacing + n + j (j-th anchor from the end).
constexpr int kAnchorSpacing = 64;
// The adjoint states one anchor sums (lina::anchor_sum's K0..K3): a state read at most 4 times.
constexpr int kMaxAnchorStates = 4;

struct KernelParams {
  const void* inputs[kMaxInputs];    // [B, T, H] or [B, T, H, d], element type of the kernel
  void* outputs[kMaxOutputs];        // like inputs
  const float* initialStates[kMaxStates];  // [N, H, rows, cols] fp32, or null (zeros)
  float* finalStates[kMaxStates];          // [N, H, rows, cols] fp32, or null (not written)
  float* snapshots[kMaxStates];            // split strategy: [slots, H, rows, cols] fp32, each chunk's
                                           // starting state (see chunk_of_slot); the derived
                                           // backward: the states at its anchor steps
  const float* vectorParams[kMaxParams];   // [H, d] fp32
  float scalarParams[kMaxParams];
  int scalarParamSet[kMaxParams];          // 0: use the program's default
  const void* cuSeqlens;                   // [N + 1] int32 or int64, or null (fixed length)
  int cuSeqlens64;                         // 1: int64 entries
  int numSequences;                        // N
  long long time;                          // T (fixed length) or total tokens (varlen)
  int heads;                               // H
  int tileBase;                            // TensorLayout::oneTilePerLaunch: the launch's tile
};

}  // namespace lina
