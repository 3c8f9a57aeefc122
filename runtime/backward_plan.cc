#include "runtime/backward_plan.h"

#include <algorithm>
#include <set>

#include "codegen/device/lina/device/params.h"
#include "support/error.h"

namespace lina::runtime {

namespace {

bool declares(const std::vector<rir::Decl>& decls, const std::string& name) {
  return std::any_of(decls.begin(), decls.end(), [&](const rir::Decl& d) { return d.name == name; });
}

}  // namespace

BackwardPlan planBackward(const rir::Recurrence& f, const Program::DerivedBackward& derived, const BackwardArgs& args,
                          char* base) {
  // Every tensor of the passes is found by its role in the derived signature, never by name.
  const ForwardArgs& fw = args.forward;
  const rir::Recurrence& a = derived.passA.recurrence();
  const rir::Recurrence& b = derived.passB.recurrence();
  BackwardPlan plan;
  plan.workspace.base = base;
  Workspace& ws = plan.workspace;
  const int64_t N = fw.cuSeqlens ? fw.numSequences : fw.batch;
  const int64_t tokens = fw.batch * fw.time;
  const int64_t elementBytes = fw.dtype == "fp32" ? 4 : 2;
  auto dim = [&](const std::string& d) { return fw.dims.at(d); };
  auto perStep = [&](const rir::Shape& shape) { return tokens * fw.heads * (shape.empty() ? 1 : dim(shape[0])); };
  auto stateSize = [&](const rir::Decl& s) { return N * fw.heads * dim(s.shape[0]) * dim(s.shape[1]); };

  ForwardArgs common = fw;
  common.outputs.clear();
  common.finalStates.clear();
  common.initialStates.clear();
  common.tile = 0;
  common.layout = {};
  common.layout.preciseProducts = true;
  // fp32 passes run chunks <= 32 (their gate gradients' precision, Program::candidateConfigs): a
  // forward's chunk 64 (fla's chunk_size) runs the backward at 32.
  if (fw.dtype == "fp32" && common.chunk > 32) common.chunk = 32;

  // A state whose block dim exceeds 128 does not fit one CTA: the passes then run block by block
  // (64 wide, or the forward's tile), each block an independent problem. 64: a 256 x 64 fp32
  // state tile (64 KB) leaves room for the chunked kernels; at 128 only the recurrent ones fit.
  // Gradients without the block dim add up over blocks in fp32 accumulators, converted at the end.
  const bool blocked = !derived.blockDim.empty() && dim(derived.blockDim) > 128;
  if (blocked) {
    const int64_t full = dim(derived.blockDim);
    const int64_t block = fw.tile ? fw.tile : 64;
    if (block < 16 || full % block != 0)
      throw Error("@" + f.name + " backward: " + derived.blockDim + " = " + std::to_string(full) +
                  " runs in blocks of 64 (or forward.tile); got a block of " + std::to_string(block) +
                  "; pass a forward.tile of at least 16 that divides it");
    plan.blocks = static_cast<int>(full / block);
    common.tile = static_cast<int>(block);
    common.layout.oneTilePerLaunch = true;
  }
  plan.programA = blocked ? &derived.blockedA : &derived.passA;
  plan.programB = blocked ? &derived.blockedB : &derived.passB;
  auto hasBlockDim = [&](const rir::Shape& shape) { return !shape.empty() && shape[0] == derived.blockDim; };
  // Blocked: an input gradient without the block dim goes to an fp32 accumulator (cleared),
  // converted into the caller's buffer after the last block.
  std::map<std::string, float*> accumulators;
  auto accumulatorFor = [&](const std::string& input, const rir::Shape& shape, void* callerBuffer) {
    auto it = accumulators.find(input);
    if (it != accumulators.end()) return it->second;
    float* acc = ws.takeFloats(perStep(shape));
    plan.clears.push_back({acc, static_cast<size_t>(perStep(shape)) * sizeof(float)});
    GlueLaunch g;
    g.kind = GlueLaunch::Convert;
    g.a = acc;
    g.converted = callerBuffer;
    g.rows = perStep(shape);
    g.dtypeCode = fw.dtype == "fp32" ? 0 : fw.dtype == "bf16" ? 1 : 2;
    plan.conversions.push_back(g);
    return accumulators[input] = acc;
  };

  // The gate gradients' running sums restart every kAnchorSpacing steps from snapshots of the
  // forward state that pass A writes (GateSum): they then sum at most that many steps of terms,
  // whatever T (docs/backward-design.md, "Precision"). Their initial values crow/ccol (pass B's
  // first step is an anchor) are then not needed.
  std::set<std::string> anchored;
  for (const passes::GateSum& g : derived.gateSums)
    if (g.adjointStates.size() <= static_cast<size_t>(kMaxAnchorStates)) anchored.insert(g.state);
  const passes::BackwardSignature& sig = derived.signature;
  auto readsInput = [&](const std::string& name) {
    return !name.empty() && std::any_of(b.body.begin(), b.body.end(), [&](const rir::Inst& i) {
      return i.op == rir::Op::Input && i.symbol == name;
    });
  };
  auto rowSumsOf = [&](const std::string& state) { return sig.tensorFor(sig.passB, passes::TensorRole::StateRowSums, state); };
  auto columnSumsOf = [&](const std::string& state) {
    return sig.tensorFor(sig.passB, passes::TensorRole::StateColumnSums, state);
  };
  auto needsRowColSums = [&](const rir::Decl& s) {
    return !anchored.count(s.name) && (readsInput(rowSumsOf(s.name)) || readsInput(columnSumsOf(s.name)));
  };

  // Final states for the d(final state) sums: the caller's, else one more forward.
  std::map<std::string, const float*> finalStates;
  for (const rir::Decl& s : f.states) {
    if (!args.finalStateGrads.count(s.name) || !needsRowColSums(s)) continue;
    auto it = args.finalStates.find(s.name);
    if (it != args.finalStates.end() && it->second) {
      finalStates[s.name] = it->second;
      continue;
    }
    if (!plan.recompute) {
      plan.recompute = true;
      plan.recomputeArgs = fw;
      plan.recomputeArgs.outputs.clear();
      plan.recomputeArgs.finalStates.clear();
      plan.recomputeArgs.layout = {};
      for (const rir::Decl& o : f.outputs) plan.recomputeArgs.layout.discardedOutputs.insert(o.name);
    }
    float* buffer = ws.takeFloats(stateSize(s));
    plan.recomputeArgs.finalStates[s.name] = buffer;
    finalStates[s.name] = buffer;
  }

  // Pass A: the forward recomputed with the output cotangents.
  ForwardArgs& pa = plan.passA;
  pa = common;
  for (const auto& [name, state] : fw.initialStates)
    if (declares(a.states, name)) pa.initialStates[name] = state;
  for (const rir::Decl& o : f.outputs) {
    const std::string cotangent = sig.tensorFor(sig.passA, passes::TensorRole::OutputCotangent, o.name);
    auto it = args.outputGrads.find(o.name);
    if (it != args.outputGrads.end() && it->second) {
      pa.inputs[cotangent] = it->second;
    } else {
      void* zeros = ws.take(static_cast<size_t>(perStep(o.shape) * elementBytes));
      plan.clears.push_back({zeros, static_cast<size_t>(perStep(o.shape) * elementBytes)});
      pa.inputs[cotangent] = zeros;
    }
  }
  std::set<std::string> inputGradWritten;
  std::map<std::string, const float*> paramPartA, paramPartB;
  std::map<std::string, const float*> intermediates;  // pass A outputs pass B reads
  for (const rir::Decl& o : a.outputs) {
    const passes::SignatureEntry* role = sig.find(sig.passA, o.name);
    if (!role) throw Error("@" + f.name + " backward: internal: pass A output '" + o.name + "' has no signature entry");
    if (role->role == passes::TensorRole::InputGradient) {
      auto it = args.inputGrads.find(role->of);
      if (it != args.inputGrads.end() && it->second) {
        if (blocked && !hasBlockDim(o.shape)) {
          pa.outputs[o.name] = accumulatorFor(it->first, o.shape, it->second);
          pa.layout.fp32Tensors.insert(o.name);
          pa.layout.accumulateOutputs.insert(o.name);
        } else {
          pa.outputs[o.name] = it->second;
        }
        inputGradWritten.insert(role->of);
        continue;
      }
    } else if (role->role == passes::TensorRole::ParamGradient) {
      if (args.paramGrads.count(role->of)) {
        float* part = ws.takeFloats(perStep(o.shape));
        pa.outputs[o.name] = part;
        pa.layout.fp32Tensors.insert(o.name);
        if (blocked) {  // the blocks' parts add up
          pa.layout.accumulateOutputs.insert(o.name);
          plan.clears.push_back({part, static_cast<size_t>(perStep(o.shape)) * sizeof(float)});
        }
        paramPartA[role->of] = part;
        continue;
      }
    } else if (role->role == passes::TensorRole::ReadIntermediate && declares(b.inputs, o.name)) {
      float* buffer = ws.takeFloats(perStep(o.shape));
      pa.outputs[o.name] = buffer;
      pa.layout.fp32Tensors.insert(o.name);
      intermediates[o.name] = buffer;
      continue;
    }
    pa.layout.discardedOutputs.insert(o.name);
  }

  // The per-sequence row/column sums of dht (.) final state (zero without a dht).
  std::map<std::string, std::pair<float*, float*>> rowColSums;
  for (const rir::Decl& s : f.states) {
    if (!declares(b.inputs, rowSumsOf(s.name)) && !declares(b.inputs, columnSumsOf(s.name))) continue;
    int64_t R = dim(s.shape[0]), C = dim(s.shape[1]);
    float* crow = ws.takeFloats(N * fw.heads * R);
    float* ccol = ws.takeFloats(N * fw.heads * C);
    rowColSums[s.name] = {crow, ccol};
    auto dht = args.finalStateGrads.find(s.name);
    if (dht != args.finalStateGrads.end() && dht->second && needsRowColSums(s)) {
      GlueLaunch g;
      g.kind = GlueLaunch::RowColSums;
      g.a = dht->second;
      g.b = finalStates.at(s.name);
      g.out = crow;
      g.out2 = ccol;
      g.rows = R;
      g.cols = C;
      g.heads = static_cast<int>(fw.heads);
      g.sequences = static_cast<int>(N);
      plan.stateSums.push_back(g);
    } else {
      plan.clears.push_back({crow, static_cast<size_t>(N * fw.heads * R) * sizeof(float)});
      plan.clears.push_back({ccol, static_cast<size_t>(N * fw.heads * C) * sizeof(float)});
    }
  }

  // Pass B: the adjoint states on reversed time.
  ForwardArgs& pb = plan.passB;
  pb = common;
  pb.layout.reverseTime = true;
  // The anchor snapshots: pass A stores the states, pass B re-anchors its running sums with them.
  const int64_t slots = tokens / kAnchorSpacing + N + 1;
  for (const std::string& state : anchored) {
    const rir::Decl* s = f.state(state);
    float* buffer = ws.takeFloats(slots * fw.heads * dim(s->shape[0]) * dim(s->shape[1]));
    pa.layout.anchorSnapshots.insert(state);
    pa.snapshotBuffers[state] = buffer;
    pb.snapshotBuffers[state] = buffer;
  }
  for (const passes::GateSum& g : derived.gateSums)
    if (anchored.count(g.state))
      pb.layout.anchoredSums[g.runningSum] = cir::TensorLayout::Anchor{g.state, g.adjointStates, g.rows};
  for (const auto& [name, buffer] : intermediates) {
    pb.inputs[name] = buffer;
    pb.layout.fp32Tensors.insert(name);
  }
  for (const auto& [state, sums] : rowColSums) {
    for (const auto& [name, buffer] : {std::pair{rowSumsOf(state), sums.first}, std::pair{columnSumsOf(state), sums.second}})
      if (declares(b.inputs, name)) {
        pb.inputs[name] = buffer;
        pb.layout.fp32Tensors.insert(name);
        pb.layout.perSequenceInputs.insert(name);
      }
  }
  for (const auto& [state, holder] : derived.initialHolder) {
    auto dht = args.finalStateGrads.find(state);
    if (dht != args.finalStateGrads.end() && dht->second) pb.initialStates[holder] = dht->second;
  }
  for (const rir::Decl& o : b.outputs) {
    const passes::SignatureEntry* role = sig.find(sig.passB, o.name);
    if (!role) throw Error("@" + f.name + " backward: internal: pass B output '" + o.name + "' has no signature entry");
    const std::string& target = role->of;
    if (role->role == passes::TensorRole::InputGradient) {
      auto it = args.inputGrads.find(target);
      if (it != args.inputGrads.end() && it->second) {
        if (blocked && !hasBlockDim(o.shape)) {
          pb.outputs[o.name] = accumulatorFor(target, o.shape, it->second);
          pb.layout.fp32Tensors.insert(o.name);
          pb.layout.accumulateOutputs.insert(o.name);
          inputGradWritten.insert(target);
          continue;
        }
        pb.outputs[o.name] = it->second;
        if (inputGradWritten.count(target)) pb.layout.accumulateOutputs.insert(o.name);
        inputGradWritten.insert(target);
        continue;
      }
    } else if (role->role == passes::TensorRole::ParamGradient && args.paramGrads.count(target)) {
      float* part = ws.takeFloats(perStep(o.shape));
      pb.outputs[o.name] = part;
      pb.layout.fp32Tensors.insert(o.name);
      if (blocked) {
        pb.layout.accumulateOutputs.insert(o.name);
        plan.clears.push_back({part, static_cast<size_t>(perStep(o.shape)) * sizeof(float)});
      }
      paramPartB[target] = part;
      continue;
    }
    pb.layout.discardedOutputs.insert(o.name);
  }
  // d(initial state) = the sum of the final adjoint states of that state.
  for (const rir::Decl& s : f.states) {
    auto out = args.initialStateGrads.find(s.name);
    if (out == args.initialStateGrads.end() || !out->second) continue;
    const std::vector<std::string> parts = sig.adjointStatesOf(s.name);
    int64_t size = stateSize(s);
    if (parts.empty()) {
      plan.clears.push_back({out->second, static_cast<size_t>(size) * sizeof(float)});
    } else if (parts.size() == 1) {
      pb.finalStates[parts[0]] = out->second;
    } else {
      float* all = ws.takeFloats(size * static_cast<int64_t>(parts.size()));
      for (size_t i = 0; i < parts.size(); ++i) pb.finalStates[parts[i]] = base ? all + size * i : nullptr;
      GlueLaunch g;
      g.a = all;
      g.out = out->second;
      g.rows = static_cast<long long>(parts.size());
      g.cols = size;
      plan.reductions.push_back(g);
    }
  }
  // Input gradients neither pass writes are zero.
  for (const rir::Decl& in : f.inputs) {
    auto it = args.inputGrads.find(in.name);
    if (it != args.inputGrads.end() && it->second && !inputGradWritten.count(in.name))
      plan.clears.push_back({it->second, static_cast<size_t>(perStep(in.shape) * elementBytes)});
  }
  // Param gradients: the per-step parts of both passes summed over tokens (and heads for a
  // scalar).
  for (const auto& [name, out] : args.paramGrads) {
    const rir::Decl* p = f.param(name);
    const float* partA = paramPartA.count(name) ? paramPartA[name] : nullptr;
    const float* partB = paramPartB.count(name) ? paramPartB[name] : nullptr;
    int64_t width = p->shape.empty() ? 1 : fw.heads * dim(p->shape[0]);
    if (!partA && !partB) {
      plan.clears.push_back({out, static_cast<size_t>(width) * sizeof(float)});
      continue;
    }
    GlueLaunch g;
    g.a = partA ? partA : partB;
    g.b = partA ? partB : nullptr;
    g.rows = tokens;
    if (p->shape.empty()) {
      float* perHead = ws.takeFloats(fw.heads);
      g.out = perHead;
      g.cols = fw.heads;
      plan.reductions.push_back(g);
      GlueLaunch overHeads;
      overHeads.a = perHead;
      overHeads.out = out;
      overHeads.rows = fw.heads;
      overHeads.cols = 1;
      plan.reductions.push_back(overHeads);
    } else {
      g.out = out;
      g.cols = width;
      plan.reductions.push_back(g);
    }
  }
  // Each pass gets only the inputs and params it declares.
  for (ForwardArgs* pass : {&pa, &pb}) {
    const rir::Recurrence& r = pass == &pa ? a : b;
    std::erase_if(pass->inputs, [&](const auto& e) { return !declares(r.inputs, e.first); });
    std::erase_if(pass->scalarParams, [&](const auto& e) { return !r.param(e.first); });
    std::erase_if(pass->vectorParams, [&](const auto& e) { return !r.param(e.first); });
  }
  return plan;
}

}  // namespace lina::runtime
