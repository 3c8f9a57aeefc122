// Program::backward: the derived backward on the GPU. Pass A (forward time) and pass B
// (reversed time, docs/backward-design.md) are ordinary derived programs launched through
// Program::forward with a TensorLayout: pass B walks each sequence from its end, so nothing is
// flipped in memory; the per-read intermediates between the passes stay fp32; pass B adds its
// input gradients to pass A's in the caller's buffers. Glue kernels (gradient_glue.cuh) make
// the d(final state) row/column sums and reduce per-step param gradients. Everything is queued
// on the caller's stream; nothing synchronizes the host.
#include <algorithm>
#include <mutex>
#include <set>
#include <sstream>

#include "codegen/device/lina/device/params.h"
#include "compiler/cir/lower.h"
#include "compiler/passes/derive_backward.h"
#include "runtime/cuda_driver.h"
#include "runtime/error.h"
#include "runtime/kernel_cache.h"
#include "runtime/program.h"

namespace lina {

struct Program::DerivedBackward {
  Program passA, passB;
  // The same passes cut into blocks of `blockDim` (a dim every forward state has and nothing in
  // the forward reduces over: each block is an independent problem whose gradients add up),
  // for states too large for one CTA. Empty blockDim: not available.
  std::string blockDim;
  Program blockedA, blockedB;
  std::map<std::string, std::string> initialHolder;  // forward state -> pass-B adjoint state seeded with dht
  std::vector<passes::GateSum> gateSums;              // pass B's running sums, anchored on the GPU
};

const Program::DerivedBackward& Program::derivedBackward() const {
  std::call_once(backward_->once, [&] {
    SourceManager sources;
    DiagnosticEngine diags(sources);
    std::optional<rir::Recurrence> a = passes::deriveBackwardPassA(*rir_, diags);
    std::optional<passes::DerivedPassB> b = a ? passes::deriveBackwardPassB(*rir_, diags) : std::nullopt;
    if (!a || !b) {
      std::ostringstream os;
      diags.print(os);
      throw Error("@" + name_ + " backward: the backward cannot be derived: " + os.str());
    }
    DerivedBackward derived{fromRecurrence(*a), fromRecurrence(b->program), "", {}, {}, b->initialHolder, b->gateSums};
    std::string separable = cir::tileableDim(*rir_);
    bool everyState = !separable.empty();
    for (const rir::Decl& st : rir_->states)
      everyState = everyState && (st.shape[0] == separable || st.shape[1] == separable);
    if (everyState) {
      derived.blockDim = separable;
      derived.blockedA = derived.passA;
      derived.blockedB = derived.passB;
      derived.blockedA.tiledDimOverride_ = separable;
      derived.blockedB.tiledDimOverride_ = separable;
      derived.blockedA.emitted_ = std::make_shared<EmittedCache>();  // their own launches
      derived.blockedB.emitted_ = std::make_shared<EmittedCache>();
    }
    backward_->derived = std::make_shared<const DerivedBackward>(std::move(derived));
  });
  return *backward_->derived;
}

const Program& Program::backwardPassA() const { return derivedBackward().passA; }
const Program& Program::backwardPassB() const { return derivedBackward().passB; }

namespace {

bool startsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

bool declares(const std::vector<rir::Decl>& decls, const std::string& name) {
  return std::any_of(decls.begin(), decls.end(), [&](const rir::Decl& d) { return d.name == name; });
}

// Byte offsets of the scratch buffers in one workspace (256-byte aligned).
struct Workspace {
  char* base = nullptr;
  size_t bytes = 0;
  void* take(size_t size) {
    bytes = (bytes + 255) / 256 * 256;
    void* at = base ? base + bytes : nullptr;
    bytes += size;
    return at;
  }
  float* takeFloats(int64_t count) { return static_cast<float*>(take(static_cast<size_t>(count) * sizeof(float))); }
};

// A device memset of `bytes` zero bytes on `stream` (skipped when there is nothing to clear).
struct Clear {
  void* pointer;
  size_t bytes;
};

// One launch of a glue kernel.
struct GlueLaunch {
  enum Kind { RowColSums, SumRows, Convert } kind = SumRows;
  const float *a = nullptr, *b = nullptr;
  float *out = nullptr, *out2 = nullptr;
  long long rows = 0, cols = 0;  // SumRows; RowColSums: rows = R, cols = C; Convert: rows = count
  void* converted = nullptr;     // Convert: a's `rows` floats written here as `dtypeCode`
  int dtypeCode = 0;             // 0 fp32, 1 bf16, 2 fp16 (lina_convert)
  int heads = 0, sequences = 0;
};

// Everything backward() launches, in order. Built twice: with no workspace (to size it) and
// with the real one.
struct BackwardPlan {
  Workspace workspace;
  int blocks = 1;  // > 1: the blocked passes, one launch per block of derived.blockDim
  const Program *programA = nullptr, *programB = nullptr;  // the passes launched (blocked or not)
  std::vector<Clear> clears;
  bool recompute = false;
  ForwardArgs recomputeArgs;
  std::vector<GlueLaunch> stateSums;  // crow/ccol (before pass B)
  ForwardArgs passA, passB;
  std::vector<GlueLaunch> reductions;   // after pass B
  std::vector<GlueLaunch> conversions;  // blocked: the fp32 accumulators into the caller's buffers
};

struct GlueKernels {
  CUfunction rowColSums = nullptr, sumRows = nullptr, convert = nullptr;
};

// The glue module of a device, compiled (or read from the cache) and loaded once.
GlueKernels glueKernels(int device) {
  static std::mutex mutex;
  static std::map<int, GlueKernels> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = loaded.find(device);
  if (it != loaded.end()) return it->second;
  const std::string arch = cuda::deviceInfo(device).arch;
  const std::string source = "// lina: kernels around the derived backward passes\n#include \"lina/device/gradient_glue.cuh\"\n";
  std::vector<char> cubin = runtime::KernelCache::global().cubin(source, "lina_gradient_glue.cu", arch);
  const cuda::Driver* d = cuda::driver();
  CUmodule module = nullptr;
  cuda::check(d->cuModuleLoadData(&module, cubin.data()), "cuModuleLoadData", "lina_gradient_glue");
  GlueKernels k;
  cuda::check(d->cuModuleGetFunction(&k.rowColSums, module, "lina_state_row_col_sums"), "cuModuleGetFunction",
              "lina_state_row_col_sums");
  cuda::check(d->cuModuleGetFunction(&k.sumRows, module, "lina_sum_rows"), "cuModuleGetFunction", "lina_sum_rows");
  cuda::check(d->cuModuleGetFunction(&k.convert, module, "lina_convert"), "cuModuleGetFunction", "lina_convert");
  loaded[device] = k;
  return k;
}

}  // namespace

namespace {

BackwardPlan planBackward(const rir::Recurrence& f, const Program::DerivedBackward& derived, const BackwardArgs& args,
                          char* base) {
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
  auto readsInput = [&](const std::string& name) {
    return std::any_of(b.body.begin(), b.body.end(),
                       [&](const rir::Inst& i) { return i.op == rir::Op::Input && i.symbol == name; });
  };
  auto needsRowColSums = [&](const rir::Decl& s) {
    return !anchored.count(s.name) && (readsInput("crow_" + s.name) || readsInput("ccol_" + s.name));
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
    auto it = args.outputGrads.find(o.name);
    if (it != args.outputGrads.end() && it->second) {
      pa.inputs["d_" + o.name] = it->second;
    } else {
      void* zeros = ws.take(static_cast<size_t>(perStep(o.shape) * elementBytes));
      plan.clears.push_back({zeros, static_cast<size_t>(perStep(o.shape) * elementBytes)});
      pa.inputs["d_" + o.name] = zeros;
    }
  }
  std::set<std::string> inputGradWritten;
  std::map<std::string, const float*> paramPartA, paramPartB;
  std::map<std::string, const float*> intermediates;  // pass A outputs pass B reads
  for (const rir::Decl& o : a.outputs) {
    if (startsWith(o.name, "dA_") && declares(f.inputs, o.name.substr(3))) {
      auto it = args.inputGrads.find(o.name.substr(3));
      if (it != args.inputGrads.end() && it->second) {
        if (blocked && !hasBlockDim(o.shape)) {
          pa.outputs[o.name] = accumulatorFor(it->first, o.shape, it->second);
          pa.layout.fp32Tensors.insert(o.name);
          pa.layout.accumulateOutputs.insert(o.name);
        } else {
          pa.outputs[o.name] = it->second;
        }
        inputGradWritten.insert(o.name.substr(3));
        continue;
      }
    } else if (startsWith(o.name, "dA_") && f.param(o.name.substr(3))) {
      if (args.paramGrads.count(o.name.substr(3))) {
        float* part = ws.takeFloats(perStep(o.shape));
        pa.outputs[o.name] = part;
        pa.layout.fp32Tensors.insert(o.name);
        if (blocked) {  // the blocks' parts add up
          pa.layout.accumulateOutputs.insert(o.name);
          plan.clears.push_back({part, static_cast<size_t>(perStep(o.shape)) * sizeof(float)});
        }
        paramPartA[o.name.substr(3)] = part;
        continue;
      }
    } else if (declares(b.inputs, o.name)) {
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
    if (!declares(b.inputs, "crow_" + s.name) && !declares(b.inputs, "ccol_" + s.name)) continue;
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
    for (const auto& [name, buffer] : {std::pair{"crow_" + state, sums.first}, std::pair{"ccol_" + state, sums.second}})
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
    std::string target = o.name.substr(3);
    if (startsWith(o.name, "dB_") && declares(f.inputs, target)) {
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
    } else if (startsWith(o.name, "dB_") && f.param(target) && args.paramGrads.count(target)) {
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
    std::vector<std::string> parts;
    for (const rir::Decl& k : b.states)
      if (startsWith(k.name, "K_" + s.name + "_")) parts.push_back(k.name);
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

}  // namespace

size_t Program::backwardWorkspaceBytes(const BackwardArgs& args) const {
  return planBackward(*rir_, derivedBackward(), args, nullptr).workspace.bytes;
}

std::pair<const Program*, const Program*> Program::backwardPassesFor(const BackwardArgs& args) const {
  BackwardPlan plan = planBackward(*rir_, derivedBackward(), args, nullptr);
  return {plan.programA, plan.programB};
}

std::pair<ForwardArgs, ForwardArgs> Program::backwardPassArgs(const BackwardArgs& args) const {
  BackwardPlan plan = planBackward(*rir_, derivedBackward(), args, nullptr);
  return {plan.passA, plan.passB};
}

void Program::backward(const BackwardArgs& args, int device) const {
  const rir::Recurrence& f = *rir_;
  const ForwardArgs& fw = args.forward;
  auto fail = [&](const std::string& message) { throw Error("@" + name_ + " backward: " + message); };
  auto checkNames = [&](const auto& map, const std::vector<rir::Decl>& decls, const char* what, const char* field) {
    for (const auto& [name, pointer] : map) {
      (void)pointer;
      if (!declares(decls, name))
        fail(std::string(field) + ": '" + name + "' is not " + what + " of @" + name_ + "; remove it");
    }
  };
  checkNames(args.outputGrads, f.outputs, "an output", "outputGrads");
  checkNames(args.finalStateGrads, f.states, "a state", "finalStateGrads");
  checkNames(args.finalStates, f.states, "a state", "finalStates");
  checkNames(args.inputGrads, f.inputs, "an input", "inputGrads");
  checkNames(args.initialStateGrads, f.states, "a state", "initialStateGrads");
  checkNames(args.paramGrads, f.params, "a param", "paramGrads");
  for (const auto& [name, pointer] : args.paramGrads)
    if (!pointer) fail("paramGrads: '" + name + "' is null; pass a device buffer or leave it out");
  if (fw.strategy == "split")
    fail("strategy: the backward passes run fused or recurrent kernels; got 'split' (pass auto, fused or recurrent)");
  for (const rir::Decl& in : f.inputs)
    if (!fw.inputs.count(in.name) || !fw.inputs.at(in.name))
      fail("input '" + in.name + "' is missing from BackwardArgs::forward; pass the forward's inputs");
  for (const std::string& d : f.dims)
    if (!fw.dims.count(d) || fw.dims.at(d) < 1) fail("dim '" + d + "' needs a size >= 1 in BackwardArgs::forward.dims");
  if (fw.batch < 1 || fw.time < 0 || fw.heads < 1)
    fail("shape (B, T, H) = (" + std::to_string(fw.batch) + ", " + std::to_string(fw.time) + ", " +
         std::to_string(fw.heads) + ") is invalid; expected B >= 1, T >= 0, H >= 1");

  const DerivedBackward& derived = derivedBackward();
  // With the caller's workspace one plan both sizes and places the buffers; without one, the
  // sizing plan comes first and the placed plan after the allocation.
  BackwardPlan plan = planBackward(f, derived, args, static_cast<char*>(args.workspace));
  const size_t bytes = plan.workspace.bytes;
  if (args.workspace && args.workspaceBytes < bytes)
    fail("workspace: expected at least " + std::to_string(bytes) + " bytes (backwardWorkspaceBytes); got " +
         std::to_string(args.workspaceBytes));
  const int64_t N = fw.cuSeqlens ? fw.numSequences : fw.batch;
  cuda::useDevice(device);
  const cuda::Driver* d = cuda::driver();
  CUstream stream = fw.stream;
  if (N == 0) {
    // No sequence, no token: the param gradients (the only non-empty outputs) are zero.
    for (const auto& [name, out] : args.paramGrads) {
      const rir::Decl* p = f.param(name);
      size_t width = p->shape.empty() ? 1 : static_cast<size_t>(fw.heads * fw.dims.at(p->shape[0]));
      cuda::check(d->cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(out), 0, width * sizeof(float), stream),
                  "cuMemsetD8Async", "paramGrads '" + name + "'");
    }
    return;
  }
  CUdeviceptr owned = 0;
  if (!args.workspace && bytes > 0) {
    cuda::check(d->cuMemAllocAsync(&owned, bytes, stream), "cuMemAllocAsync",
                "the backward's workspace of " + std::to_string(bytes) + " bytes");
    plan = planBackward(f, derived, args, reinterpret_cast<char*>(owned));
  }
  try {
    for (const Clear& c : plan.clears)
      if (c.bytes > 0)
        cuda::check(d->cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(c.pointer), 0, c.bytes, stream), "cuMemsetD8Async");
    auto rethrow = [&](const char* what, const Error& e) { fail(std::string(what) + ": " + e.what()); };
    if (plan.recompute) {
      try {
        forward(plan.recomputeArgs, device);
      } catch (const Error& e) {
        rethrow("recomputing the final states", e);
      }
    }
    GlueKernels glue;
    if (!plan.stateSums.empty() || !plan.reductions.empty() || !plan.conversions.empty()) glue = glueKernels(device);
    auto launch = [&](const GlueLaunch& g) {
      if (g.kind == GlueLaunch::RowColSums) {
        int R = static_cast<int>(g.rows), C = static_cast<int>(g.cols), H = g.heads;
        void* params[] = {const_cast<float**>(&g.a), const_cast<float**>(&g.b), const_cast<float**>(&g.out),
                          const_cast<float**>(&g.out2), &H, &R, &C};
        cuda::check(d->cuLaunchKernel(glue.rowColSums, static_cast<unsigned>(H), static_cast<unsigned>(g.sequences), 1,
                                      128, 1, 1, 0, stream, params, nullptr),
                    "cuLaunchKernel", "lina_state_row_col_sums");
      } else if (g.kind == GlueLaunch::Convert) {
        long long count = g.rows;
        int code = g.dtypeCode;
        void* params[] = {const_cast<float**>(&g.a), const_cast<void**>(&g.converted), &count, &code};
        unsigned blocks = static_cast<unsigned>(std::min<long long>((count + 255) / 256, 65535));
        if (blocks > 0)
          cuda::check(d->cuLaunchKernel(glue.convert, blocks, 1, 1, 256, 1, 1, 0, stream, params, nullptr),
                      "cuLaunchKernel", "lina_convert");
      } else {
        long long rows = g.rows, cols = g.cols;
        void* params[] = {const_cast<float**>(&g.a), const_cast<float**>(&g.b), const_cast<float**>(&g.out), &rows,
                          &cols};
        unsigned blocks = static_cast<unsigned>((cols + 31) / 32);
        if (blocks > 0)
          cuda::check(d->cuLaunchKernel(glue.sumRows, blocks, 1, 1, 32, 8, 1, 0, stream, params, nullptr),
                      "cuLaunchKernel", "lina_sum_rows");
      }
    };
    for (const GlueLaunch& g : plan.stateSums) launch(g);
    for (int block = 0; block < plan.blocks; ++block) {  // each block of derived.blockDim in turn
      plan.passA.tileIndex = block;
      plan.passB.tileIndex = block;
      try {
        plan.programA->forward(plan.passA, device);
      } catch (const Error& e) {
        rethrow("pass A", e);
      }
      try {
        plan.programB->forward(plan.passB, device);
      } catch (const Error& e) {
        rethrow("pass B", e);
      }
    }
    for (const GlueLaunch& g : plan.reductions) launch(g);
    for (const GlueLaunch& g : plan.conversions) launch(g);
  } catch (...) {
    if (owned) (void)d->cuMemFreeAsync(owned, stream);
    throw;
  }
  if (owned) cuda::check(d->cuMemFreeAsync(owned, stream), "cuMemFreeAsync");
}

}  // namespace lina
