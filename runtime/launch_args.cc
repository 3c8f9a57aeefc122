// Argument validation and packing: ForwardArgs checked against a program and turned into the
// KernelParams block every emitted kernel takes.
#include "runtime/launch_args.h"

#include <algorithm>

#include "support/error.h"

namespace lina {

namespace {

std::string shapeText(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) t += ", ";
    t += std::to_string(s[i]);
  }
  return t + "]";
}

}  // namespace

std::vector<size_t> splitSnapshotOffsets(const rir::Recurrence& rec, const ForwardArgs& a, int chunk, size_t elementBytes) {
  std::vector<size_t> offsets = {0};
  auto alignUp = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  for (const rir::Decl& st : rec.states)
    offsets.push_back(offsets.back() + alignUp(static_cast<size_t>(chunkSlots(a, chunk) * a.heads *
                                                                   a.dims.at(st.shape[0]) * a.dims.at(st.shape[1])) *
                                               elementBytes));
  return offsets;
}

std::vector<size_t> segmentWorkspaceOffsets(const rir::Recurrence& rec, const ForwardArgs& a, int64_t segmentTokens) {
  auto alignUp = [](size_t bytes) { return (bytes + 255) / 256 * 256; };
  const rir::Decl& st = rec.states.at(0);
  const size_t rows = static_cast<size_t>(chunkSlots(a, static_cast<int>(segmentTokens)) * a.heads * a.dims.at(st.shape[0]));
  const size_t states = alignUp(rows * static_cast<size_t>(a.dims.at(st.shape[1])) * sizeof(float));
  return {0, states, states + alignUp(rows * sizeof(float))};
}

KernelParams packForwardParams(const rir::Recurrence& rec, const ForwardArgs& a) {
  const std::string& name_ = rec.name;
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
  p.numSequences = static_cast<int>(sequenceCount(a));
  p.time = a.time;
  p.heads = static_cast<int>(a.heads);
  return p;
}

}  // namespace lina
