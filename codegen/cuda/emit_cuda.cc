#include "codegen/cuda/emit_cuda.h"

#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "codegen/device/lina/device/params.h"
#include "support/error.h"

namespace lina::codegen {

namespace {

using cir::GateKind;
using cir::Op;
using cir::OpKind;

// Sizes of one specialization: full dim sizes, per-CTA extents (the tiled dim is cut to `tile`).
struct Extents {
  const cir::Kernel& k;
  const cir::Specialization& spec;
  int tile = 0;

  int64_t full(const std::string& d) const {
    auto it = spec.dims.find(d);
    if (it == spec.dims.end() || it->second < 1)
      throw Error("kernel " + k.name + ": dim '" + d + "' has no size; pass it, e.g. " + d + "=64");
    return it->second;
  }
  int64_t extent(const std::string& d) const { return d == k.tiledDim && tile ? tile : full(d); }
  int64_t extent(const rir::Shape& s) const { return s.empty() ? 1 : extent(s[0]); }
};

std::string ident(const std::string& name) {
  std::string s = "v_";
  for (char c : name) s += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return s;
}

std::string floatLiteral(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9gf", x);
  std::string s = buf;
  if (s.find_first_of(".en") == std::string::npos) s.insert(s.size() - 1, ".0");
  if (s == "inff") return "__int_as_float(0x7f800000)";
  if (s == "-inff") return "__int_as_float(0xff800000)";
  if (s == "nanf") return "__int_as_float(0x7fc00000)";
  return s;
}

const char* kindConstant(GateKind k) {
  return k == GateKind::None ? "lina::kNoGate" : k == GateKind::Scalar ? "lina::kScalarGate" : "lina::kVectorGate";
}

int indexOf(const std::vector<rir::Decl>& decls, const std::string& name) {
  for (size_t i = 0; i < decls.size(); ++i)
    if (decls[i].name == name) return static_cast<int>(i);
  return -1;
}

// The bytes of one element of a per-step input or output.
int elementBytes(const cir::Specialization& spec, const std::string& name) {
  return spec.layout.fp32Tensors.count(name) || spec.dtype == "fp32" ? 4 : 2;
}

// Whether a load is prefetched with cp.async (stages = 2): a per-step vector input whose rows are
// whole 16-byte pieces at 16-byte aligned offsets.
bool prefetched(const Op& op, const Extents& e) {
  if (e.spec.stages < 2 || op.kind != OpKind::Load || op.shape.empty()) return false;
  if (e.spec.layout.perSequenceInputs.count(op.symbol)) return false;
  const int bytes = elementBytes(e.spec, op.symbol);
  return (e.extent(op.shape) * bytes) % 16 == 0 && (e.full(op.shape[0]) * bytes) % 16 == 0;
}

// Shared-memory buffers: name -> size in floats, with the op range in which each is alive.
struct BufferUse {
  int64_t floats = 0;
  int first = 0, last = 0;  // op indices; persistent buffers span the whole kernel
  bool persistent = false;
};

// Whether a gate cumsum's gates decay an anchored state (the derived backward's pass A): the
// anchor step's raw log gates are then kept in a persistent buffer `anchor.<cumsum>`.
bool feedsAnchor(const cir::Kernel& k, const cir::Specialization& spec, const std::string& cumsum) {
  for (const Op& op : k.ops)
    if (op.kind == OpKind::Carry && spec.layout.anchorSnapshots.count(op.symbol) &&
        ((op.rows.kind != GateKind::None && op.rows.inclusive == cumsum) ||
         (op.cols.kind != GateKind::None && op.cols.inclusive == cumsum)))
      return true;
  return false;
}

std::map<std::string, BufferUse> collectBuffers(const cir::Kernel& k, const Extents& e) {
  std::map<std::string, BufferUse> buffers;
  const int64_t C = k.chunk;
  const int end = static_cast<int>(k.ops.size());
  for (const rir::Decl& s : k.states) buffers["S." + s.name] = {e.extent(s.shape[0]) * e.extent(s.shape[1]), 0, end, true};
  for (const Op& op : k.ops)
    if (op.kind == OpKind::GateCumsum && feedsAnchor(k, e.spec, op.result))
      buffers["anchor." + op.result] = {e.extent(op.shape), 0, end, true};
  for (const Op& op : k.ops)
    if (op.kind == OpKind::RunningSum)  // the sum and its compensation (running_sum is Kahan-summed)
      buffers["carry." + op.result] = {2 * e.extent(op.shape), 0, end, true};
  for (const Op& op : k.ops)
    if (prefetched(op, e))  // two staging buffers: this chunk's rows and the next one's
      buffers["stage." + op.result] = {2 * C * (e.extent(op.shape) + 16 / elementBytes(e.spec, op.symbol)) *
                                           elementBytes(e.spec, op.symbol) / 4, 0, end, true};
  auto use = [&](const std::string& name, int i) {
    auto it = buffers.find(name);
    if (it != buffers.end() && !it->second.persistent) it->second.last = std::max(it->second.last, i);
  };
  for (int i = 0; i < end; ++i) {
    const Op& op = k.ops[i];
    for (const std::string& name : cir::valuesRead(op)) use(name, i);
    if (op.result.empty()) continue;
    int64_t perStep = e.extent(op.shape);
    if (op.kind == OpKind::Uniform) {
      buffers[op.result] = {perStep, 0, end, true};
    } else {
      buffers[op.result] = {C * perStep, i, i, false};
      if (!op.exclusive.empty()) buffers[op.exclusive] = {C * perStep, i, i, false};
    }
    // Scratch of attend: P [C][C] and the gated queries [C][R]. (Carry's is added below.)
    if (op.kind == OpKind::Attend)
      buffers["scratch." + std::to_string(i)] = {C * C + C * e.extent(op.dim), i, i, false};
  }
  // A store of a per-head value broadcasts it into a chunk-shaped temporary first.
  for (int i = 0; i < end; ++i) {
    const Op& op = k.ops[i];
    if (op.kind != OpKind::Store) continue;
    for (const Op& d : k.ops)
      if (d.result == op.operands[0] && d.kind == OpKind::Uniform)
        buffers["store." + std::to_string(i)] = {C * e.extent(d.shape), i, i, false};
  }
  // Scratch of carry: u~ [C][rows] and w~ [C][cols].
  for (int i = 0; i < end; ++i) {
    const Op& op = k.ops[i];
    if (op.kind != OpKind::Carry) continue;
    for (const rir::Decl& s : k.states)
      if (s.name == op.symbol)
        buffers["scratch." + std::to_string(i)] = {C * (e.extent(s.shape[0]) + e.extent(s.shape[1])), i, i, false};
  }
  return buffers;
}

SharedMemoryPlan plan(const cir::Kernel& k, const Extents& e) {
  std::map<std::string, BufferUse> buffers = collectBuffers(k, e);
  SharedMemoryPlan p;
  // Persistent buffers first, then chunk buffers by first-fit over their live ranges.
  int64_t persistentEnd = 0;
  for (auto& [name, b] : buffers) {
    if (!b.persistent) continue;
    p.offset[name] = persistentEnd;
    p.size[name] = b.floats;
    persistentEnd += (b.floats + 3) / 4 * 4;  // 16-byte aligned
  }
  struct Placed {
    int64_t offset, floats;
    int first, last;
  };
  std::vector<Placed> placed;
  std::vector<std::pair<std::string, BufferUse>> order;
  for (auto& [name, b] : buffers)
    if (!b.persistent) order.emplace_back(name, b);
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second.first < b.second.first; });
  int64_t high = persistentEnd;
  for (auto& [name, b] : order) {
    int64_t size = (b.floats + 3) / 4 * 4;
    // Candidate offsets: the start of the region and the end of every live overlapping buffer.
    std::vector<int64_t> candidates = {persistentEnd};
    for (const Placed& q : placed)
      if (!(q.last < b.first || b.last < q.first)) candidates.push_back(q.offset + q.floats);
    std::sort(candidates.begin(), candidates.end());
    for (int64_t at : candidates) {
      bool clash = false;
      for (const Placed& q : placed)
        if (!(q.last < b.first || b.last < q.first) && at < q.offset + q.floats && q.offset < at + size) clash = true;
      if (clash) continue;
      placed.push_back({at, size, b.first, b.last});
      p.offset[name] = at;
      p.size[name] = b.floats;
      high = std::max(high, at + size);
      break;
    }
  }
  p.totalBytes = high * 4;
  return p;
}

class Emitter {
 public:
  Emitter(const cir::Kernel& k, const cir::Specialization& spec, const Extents& e, const SharedMemoryPlan& smem,
          const std::string& sourceName)
      : k_(k), spec_(spec), e_(e), smem_(smem), sourceName_(sourceName) {}

  std::string run() {
    std::string type = spec_.dtype == "fp32" ? "float" : spec_.dtype == "fp16" ? "lina::f16" : "lina::bf16";
    os_ << "// Generated by lina from @" << k_.program << ": " << k_.name << ", dtype " << spec_.dtype;
    for (const std::string& d : k_.dims) os_ << ", " << d << "=" << e_.full(d);
    if (!k_.tiledDim.empty()) os_ << ", " << k_.tiledDim << " tiled by " << e_.extent(k_.tiledDim);
    if (spec_.layout.key() != cir::TensorLayout().key()) os_ << "\n// Layout: " << spec_.layout.key();
    os_ << "\n// Shared memory: " << smem_.totalBytes << " bytes.\n";
    os_ << "#include \"lina/device/chunk.cuh\"\n\n";
    os_ << "extern \"C\" __global__ void __launch_bounds__(" << k_.warps * 32 << ") " << k_.name
        << "(const lina::KernelParams p) {\n";
    os_ << "  using T = " << type << ";\n";
    os_ << "  constexpr int C = " << k_.chunk << ";\n";
    for (const std::string& d : k_.dims)
      os_ << "  constexpr int D_" << d << " = " << e_.full(d) << ", E_" << d << " = " << e_.extent(d) << ";\n";
    os_ << "  extern __shared__ float4 smem4[];\n  float* smem = reinterpret_cast<float*>(smem4);\n";
    for (const auto& [name, offset] : smem_.offset)
      os_ << "  float* const " << ident(name) << " = smem + " << offset << ";  // " << smem_.size.at(name)
          << " floats\n";
    for (const Op& op : k_.ops)
      if (prefetched(op, e_))
        os_ << "  " << elementType(op.symbol) << "* const " << ident("stage16." + op.result) << " = reinterpret_cast<"
            << elementType(op.symbol) << "*>(" << ident("stage." + op.result) << ");\n";
    const bool outputsPhase = k_.phase == cir::Phase::Outputs;
    const LaunchGrid grid = planLaunchGrid(k_, spec_);
    const std::string tile = spec_.layout.oneTilePerLaunch ? "p.tileBase" : grid.component(GridAxis::Tiles);
    if (outputsPhase) {
      // One CTA per (chunk slot, head, tile); its state is the walk's snapshot of that chunk.
      os_ << "  const int tile = " << tile << ", h = " << grid.component(GridAxis::Heads) << ", H = p.heads;\n";
      os_ << "  const long long slot = " << grid.component(GridAxis::ChunkSlots) << ";\n  int n;\n  long long bos, len, c0;\n";
      os_ << "  if (!lina::chunk_of_slot(p, C, slot, n, bos, len, c0)) return;  // a spare slot\n";
    } else {
      os_ << "  const int tile = " << tile << ", h = " << grid.component(GridAxis::Heads)
          << ", n = " << grid.component(GridAxis::Sequences) << ", H = p.heads;\n";
      os_ << "  long long bos, len;\n  lina::sequence_bounds(p, n, bos, len);\n";
    }
    for (const std::string& d : k_.dims)
      os_ << "  const int O_" << d << " = " << (d == k_.tiledDim ? "tile * E_" + d : std::string("0")) << ";\n";
    os_ << "  (void)tile;\n";
    for (size_t i = 0; i < k_.states.size(); ++i) {
      const rir::Decl& s = k_.states[i];
      os_ << "  lina::load_state<E_" << s.shape[0] << ", E_" << s.shape[1] << ">(" << ident("S." + s.name) << ", "
          << (outputsPhase ? "p.snapshots[" : "p.initialStates[") << i << "], " << (outputsPhase ? "slot" : "n")
          << ", h, H, D_" << s.shape[0] << ", D_" << s.shape[1] << ", O_" << s.shape[0] << ", O_" << s.shape[1] << ");\n";
    }
    for (const Op& op : k_.ops)
      if (op.kind == OpKind::RunningSum)
        os_ << "  for (int e = threadIdx.x; e < 2 * " << ext(op.shape) << "; e += blockDim.x) " << ident("carry." + op.result)
            << "[e] = 0.f;\n";
    for (size_t i = 0; i < k_.ops.size(); ++i)
      if (k_.ops[i].kind == OpKind::Uniform) emitUniform(k_.ops[i]);
    os_ << "  __syncthreads();\n";
    const bool prefetching = std::any_of(k_.ops.begin(), k_.ops.end(), [&](const Op& op) { return prefetched(op, e_); });
    if (prefetching) {
      // cp.async needs 16-byte aligned tensors; a caller's view at an odd offset loads synchronously.
      os_ << "  const bool async_ok = true";
      for (const Op& op : k_.ops)
        if (prefetched(op, e_)) os_ << " && lina::aligned16(p.inputs[" << indexOf(k_.inputs, op.symbol) << "])";
      os_ << ";\n";
      emitPrefetch("  ", outputsPhase ? "c0" : "0");
    }
    os_ << (outputsPhase ? "  {\n" : "  for (long long c0 = 0; c0 < len; c0 += C) {\n");
    if (prefetching) {
      // This chunk's rows have landed; the next chunk's go into the other staging buffer.
      os_ << "    lina::cp_async_wait_all();\n    __syncthreads();\n";
      if (!outputsPhase) emitPrefetch("    ", "c0 + C");
    }
    os_ << "    const int L = static_cast<int>(len - c0 < C ? len - c0 : C);\n";
    os_ << "    const lina::Rows rows = "
        << (spec_.layout.reverseTime ? "lina::Rows{bos + len - 1 - c0, -1}" : "lina::Rows{bos + c0, 1}") << ";\n";
    os_ << "    (void)rows;\n";
    if (!spec_.layout.anchorSnapshots.empty())  // pass A: the chunk row of its anchor step (if < L)
      os_ << "    const int anchor_row = static_cast<int>((len - 1 - c0) % lina::kAnchorSpacing);\n";
    emitAnchors();
    if (k_.phase == cir::Phase::States) {
      // The state at the start of this chunk, for the outputs phase. A state without the tiled
      // dim is the same in every tile: tile 0 stores it.
      os_ << "    const long long slot = bos / C + n + c0 / C;\n";
      for (size_t i = 0; i < k_.states.size(); ++i) {
        const rir::Decl& s = k_.states[i];
        bool shared = !k_.tiledDim.empty() && s.shape[0] != k_.tiledDim && s.shape[1] != k_.tiledDim;
        os_ << "    " << (shared ? "if (tile == 0) " : "") << "lina::store_state<E_" << s.shape[0] << ", E_"
            << s.shape[1] << ">(p.snapshots[" << i << "], " << ident("S." + s.name) << ", slot, h, H, D_" << s.shape[0]
            << ", D_" << s.shape[1] << ", O_" << s.shape[0] << ", O_" << s.shape[1] << ");\n";
      }
    }
    for (size_t i = 0; i < k_.ops.size(); ++i)
      if (k_.ops[i].kind != OpKind::Uniform) emitChunkOp(k_.ops[i], static_cast<int>(i));
    os_ << "  }\n";
    for (size_t i = 0; i < k_.states.size() && !outputsPhase; ++i) {
      const rir::Decl& s = k_.states[i];
      os_ << "  lina::store_state<E_" << s.shape[0] << ", E_" << s.shape[1] << ">(p.finalStates[" << i << "], "
          << ident("S." + s.name) << ", n, h, H, D_" << s.shape[0] << ", D_" << s.shape[1] << ", O_" << s.shape[0]
          << ", O_" << s.shape[1] << ");\n";
    }
    os_ << "}\n";
    return os_.str();
  }

 private:
  // Issues the cp.async copies of chunk `c0Expr`'s prefetched inputs into staging buffer
  // (chunk index & 1), when that chunk exists, and commits them as one group.
  void emitPrefetch(const std::string& in, const std::string& c0Expr) {
    os_ << in << "{\n" << in << "  const long long pc0 = " << c0Expr << ";\n";
    os_ << in << "  if (async_ok && pc0 < len) {\n";
    os_ << in << "    const int pL = static_cast<int>(len - pc0 < C ? len - pc0 : C);\n";
    os_ << in << "    const lina::Rows prows = "
        << (spec_.layout.reverseTime ? "lina::Rows{bos + len - 1 - pc0, -1}" : "lina::Rows{bos + pc0, 1}") << ";\n";
    for (const Op& op : k_.ops) {
      if (!prefetched(op, e_)) continue;
      os_ << in << "    lina::prefetch_rows<C, " << ext(op.shape) << ">(" << ident("stage16." + op.result) << " + ((pc0 / C) & 1) * C * "
          << stageStride(op) << ", static_cast<const " << elementType(op.symbol) << "*>(p.inputs["
          << indexOf(k_.inputs, op.symbol) << "]), prows, pL, h, H, D_" << op.shape[0] << ", O_" << op.shape[0] << ");\n";
    }
    os_ << in << "  }\n" << in << "  lina::cp_async_commit();\n" << in << "}\n";
  }

  // The row stride of a prefetched input's staging buffer (padded; see StageRow).
  std::string stageStride(const Op& load) const {
    return "lina::StageRow<" + ext(load.shape) + ", " + elementType(load.symbol) + ">::kStride";
  }
  // This chunk's rows of `operand` as bf16 in its staging buffer, for ldmatrix: when it is a raw
  // bf16 input that is prefetched (null at run time when the tensors were not aligned).
  std::string bf16Rows(const std::string& operand) const {
    const Op* d = def(operand);
    if (!d || !prefetched(*d, e_) || spec_.dtype != "bf16" || spec_.layout.fp32Tensors.count(d->symbol)) return "";
    return "(async_ok ? " + ident("stage16." + d->result) + " + ((c0 / C) & 1) * C * " + stageStride(*d) + " : nullptr)";
  }

  void line(const Op& op) {
    if (!sourceName_.empty() && op.loc.isValid()) os_ << "#line " << op.loc.begin.line << " \"" << sourceName_ << "\"\n";
  }
  std::string ext(const rir::Shape& s) const { return s.empty() ? "1" : "E_" + s[0]; }
  const Op* def(const std::string& name) const {
    for (const Op& op : k_.ops)
      if (op.result == name) return &op;
    return nullptr;
  }
  // How an elementwise loop at (t, e, i = t * E + e) reads `name`.
  std::string access(const std::string& name) const {
    const Op* d = def(name);
    std::string v = ident(name);
    if (d->kind == OpKind::Uniform) return d->shape.empty() ? v + "[0]" : v + "[e]";
    return d->shape.empty() ? v + "[t]" : v + "[i]";
  }
  static std::string expression(rir::Op op, const std::vector<std::string>& a) {
    switch (op) {
      case rir::Op::Neg: return "-" + a[0];
      case rir::Op::Add: return a[0] + " + " + a[1];
      case rir::Op::Sub: return a[0] + " - " + a[1];
      case rir::Op::Mul: return a[0] + " * " + a[1];
      case rir::Op::Div: return a[0] + " / " + a[1];
      case rir::Op::Pow: return "powf(" + a[0] + ", " + a[1] + ")";
      case rir::Op::Exp: return "expf(" + a[0] + ")";
      case rir::Op::Log: return "logf(" + a[0] + ")";
      default: return "0.f";
    }
  }

  void emitUniform(const Op& op) {
    line(op);
    std::string out = ident(op.result);
    std::string E = ext(op.shape);
    switch (op.rop) {
      case rir::Op::Const:
        os_ << "  if (threadIdx.x == 0) " << out << "[0] = " << floatLiteral(op.number) << ";\n";
        return;
      case rir::Op::Dim:
        os_ << "  if (threadIdx.x == 0) " << out << "[0] = static_cast<float>(D_" << op.symbol << ");\n";
        return;
      case rir::Op::Head:
        os_ << "  if (threadIdx.x == 0) " << out << "[0] = static_cast<float>(h);\n";
        return;
      case rir::Op::Param: {
        int scalarIndex = 0, vectorIndex = 0;
        for (const rir::Decl& d : k_.params) {
          if (d.name == op.symbol) break;
          (d.shape.empty() ? scalarIndex : vectorIndex)++;
        }
        if (!op.shape.empty()) {
          os_ << "  lina::load_head_vector<" << E << ">(" << out << ", p.vectorParams[" << vectorIndex << "], h, D_"
              << op.shape[0] << ", O_" << op.shape[0] << ");\n";
        } else {
          os_ << "  __syncthreads();\n  if (threadIdx.x == 0) " << out << "[0] = p.scalarParamSet[" << scalarIndex
              << "] ? p.scalarParams[" << scalarIndex << "] : "
              << (op.operands.empty() ? std::string("0.f") : ident(op.operands[0]) + "[0]") << ";\n";
        }
        return;
      }
      case rir::Op::Sum:
      case rir::Op::Dot:
        os_ << "  __syncthreads();\n  lina::row_sum<1, E_" << op.dim << ">(" << out << ", " << ident(op.operands[0])
            << ", 0, " << (op.rop == rir::Op::Dot ? ident(op.operands[1]) : std::string("nullptr")) << ", 0);\n";
        return;
      case rir::Op::Softmax:
        os_ << "  __syncthreads();\n  lina::row_softmax<1, E_" << op.dim << ">(" << out << ", "
            << ident(op.operands[0]) << ");\n";
        return;
      default: {
        std::vector<std::string> args;
        for (const std::string& o : op.operands) {
          const Op* d = def(o);
          args.push_back(ident(o) + (d->shape.empty() ? "[0]" : "[e]"));
        }
        os_ << "  __syncthreads();\n  for (int e = threadIdx.x; e < " << E << "; e += blockDim.x) " << out
            << "[e] = " << expression(op.rop, args) << ";\n";
      }
    }
  }

  void emitChunkOp(const Op& op, int index) {
    line(op);
    std::string out = op.result.empty() ? "" : ident(op.result);
    std::string E = ext(op.shape);
    switch (op.kind) {
      case OpKind::Load: {
        int i = indexOf(k_.inputs, op.symbol);
        std::string D = op.shape.empty() ? "1" : "D_" + op.shape[0];
        std::string O = op.shape.empty() ? "0" : "O_" + op.shape[0];
        std::string rows = spec_.layout.perSequenceInputs.count(op.symbol) ? "lina::Rows{n, 0}" : "rows";
        if (prefetched(op, e_))
          os_ << "    if (async_ok) lina::convert_rows<C, " << E << ">(" << out << ", " << ident("stage16." + op.result)
              << " + ((c0 / C) & 1) * C * " << stageStride(op) << ");\n    else\n  ";
        os_ << "    lina::load_rows<C, " << E << ">(" << out << ", static_cast<const " << elementType(op.symbol)
            << "*>(p.inputs[" << i << "]), " << rows << ", L, h, H, " << D << ", " << O << ");\n";
        break;
      }
      case OpKind::Store: {
        if (spec_.layout.discardedOutputs.count(op.symbol)) break;
        int i = indexOf(k_.outputs, op.symbol);
        std::string store = std::string(", ") + (spec_.layout.accumulateOutputs.count(op.symbol) ? "true" : "false") + ">(static_cast<" +
                            elementType(op.symbol) + "*>(p.outputs[" + std::to_string(i) + "]), ";
        const Op* d = def(op.operands[0]);
        const rir::Shape& shape = d->shape;
        std::string D = shape.empty() ? "1" : "D_" + shape[0];
        std::string O = shape.empty() ? "0" : "O_" + shape[0];
        std::string Es = ext(shape);
        if (d->kind == OpKind::Uniform) {
          // A per-head value stored at every step: broadcast it into a chunk-shaped temporary.
          os_ << "    for (int i = threadIdx.x; i < C * " << Es << "; i += blockDim.x) { int e = i % " << Es
              << "; (void)e; " << ident("store." + std::to_string(index)) << "[i] = " << access(op.operands[0])
              << "; }\n    __syncthreads();\n";
          os_ << "    lina::store_rows<C, " << Es << store << ident("store." + std::to_string(index))
              << ", rows, L, h, H, " << D << ", " << O << ");\n";
        } else {
          os_ << "    lina::store_rows<C, " << Es << store << ident(op.operands[0]) << ", rows, L, h, H, " << D
              << ", " << O << ");\n";
        }
        break;
      }
      case OpKind::Elementwise: {
        std::vector<std::string> args;
        for (const std::string& o : op.operands) args.push_back(access(o));
        os_ << "    for (int i = threadIdx.x; i < C * " << E << "; i += blockDim.x) {\n      const int t = i / " << E
            << ", e = i - t * " << E << ";\n      (void)t; (void)e;\n      " << out << "[i] = "
            << expression(op.rop, args) << ";\n    }\n";
        break;
      }
      case OpKind::Reduce: {
        std::string D = "E_" + op.dim;
        if (op.rop == rir::Op::Softmax) {
          os_ << "    lina::row_softmax<C, " << D << ">(" << out << ", " << ident(op.operands[0]) << ");\n";
        } else {
          // A per-head vector operand has no step axis: its row stride is 0.
          auto stride = [&](const std::string& name) { return def(name)->kind == OpKind::Uniform ? "0" : D; };
          os_ << "    lina::row_sum<C, " << D << ">(" << out << ", " << ident(op.operands[0]) << ", "
              << stride(op.operands[0]) << ", "
              << (op.rop == rir::Op::Dot ? ident(op.operands[1]) + ", " + stride(op.operands[1]) : std::string("nullptr, 0"))
              << ");\n";
        }
        break;
      }
      case OpKind::GateCumsum: {
        std::string exc = op.exclusive.empty() ? "nullptr" : ident(op.exclusive);
        os_ << "    lina::gate_cumsum" << (op.uniform ? "_uniform" : "") << "<C, " << E << ">(" << out << ", " << exc
            << ", " << ident(op.operands[0]) << ", L);\n";
        if (feedsAnchor(k_, spec_, op.result)) {
          // The anchor step's raw log gates, for store_decayed_state (see there why).
          os_ << "    if (anchor_row < L)\n      for (int e = threadIdx.x; e < " << E << "; e += blockDim.x) "
              << ident("anchor." + op.result) << "[e] = " << ident(op.operands[0])
              << (op.uniform ? "[e]" : "[anchor_row * " + E + " + e]") << ";\n";
        }
        break;
      }
      case OpKind::Attend: {
        const rir::Decl* s = state(op.symbol);
        bool overRows = op.dim == s->shape[0];
        const cir::GateRef& rg = overRows ? op.rows : op.cols;  // contracted side
        const cir::GateRef& ng = overRows ? op.cols : op.rows;  // output side
        std::string key = ident(overRows ? op.u : op.w), val = ident(overRows ? op.w : op.u);
        auto q = [&](const cir::GateRef& g) {
          if (g.kind == GateKind::None) return std::string("nullptr");
          return ident(op.afterUpdate ? g.inclusive : g.exclusive);
        };
        auto kk = [&](const cir::GateRef& g) { return g.kind == GateKind::None ? std::string("nullptr") : ident(g.inclusive); };
        std::string R = "E_" + op.dim, N = "E_" + (overRows ? s->shape[1] : s->shape[0]);
        std::string scratch = ident("scratch." + std::to_string(index));
        bool tc = tensorCores(e_.extent(op.dim), e_.extent(overRows ? s->shape[1] : s->shape[0]));
        os_ << "    lina::attend<C, " << R << ", " << N << ", " << kindConstant(rg.kind) << ", " << kindConstant(ng.kind)
            << ", " << (op.afterUpdate ? "true" : "false") << ", " << (overRows ? "false" : "true") << ", "
            << (tc ? "true" : "false") << ", " << (spec_.layout.preciseProducts ? "true" : "false") << ">(" << out
            << ", " << ident(op.operands[0]) << ", " << key << ", " << val << ", " << kk(rg) << ", " << q(rg) << ", "
            << kk(ng) << ", " << q(ng) << ", " << ident("S." + op.symbol) << ", " << scratch << ", " << scratch
            << " + C * C, L";
        // The scores x . key^T read bf16 fragments with ldmatrix when both are prefetched raw inputs.
        std::string x16 = bf16Rows(op.operands[0]), key16 = bf16Rows(overRows ? op.u : op.w);
        if (tc && !spec_.layout.preciseProducts && rg.kind != GateKind::Vector && !x16.empty() && !key16.empty())
          os_ << ", " << x16 << ", " << key16;
        os_ << ");\n";
        break;
      }
      case OpKind::Carry: {
        const rir::Decl* s = state(op.symbol);
        auto g = [&](const cir::GateRef& r) { return r.kind == GateKind::None ? std::string("nullptr") : ident(r.inclusive); };
        std::string scratch = ident("scratch." + std::to_string(index));
        bool tc = tensorCores(e_.extent(s->shape[0]), e_.extent(s->shape[1]));
        std::ostringstream call;
        call << "lina::carry<C, E_" << s->shape[0] << ", E_" << s->shape[1] << ", " << kindConstant(op.rows.kind)
             << ", " << kindConstant(op.cols.kind) << ", " << (tc ? "true" : "false") << ", "
             << (splits(op.u, op.rows) ? "true" : "false") << ", " << (splits(op.w, op.cols) ? "true" : "false") << ", "
             << (spec_.layout.preciseProducts ? "true" : "false") << ">(" << ident("S." + op.symbol) << ", "
             << ident(op.u) << ", " << ident(op.w) << ", " << g(op.rows) << ", " << g(op.cols) << ", " << scratch
             << ", " << scratch << " + C * E_" << s->shape[0] << ", ";
        if (!spec_.layout.anchorSnapshots.count(op.symbol)) {
          os_ << "    " << call.str() << "L);\n";
          break;
        }
        // The derived backward's pass A: the chunk's anchor step a (if any) splits the carry, and
        // the state before step a's write, decayed by its gates, is stored for pass B.
        os_ << "    if (anchor_row < L) {\n      if (anchor_row > 0) " << call.str() << "anchor_row);\n"
            << "      __syncthreads();\n";
        auto anchorRow = [&](const cir::GateRef& r) {
          return r.kind == GateKind::None ? std::string("nullptr") : ident("anchor." + r.inclusive);
        };
        os_ << "      lina::store_decayed_state<E_" << s->shape[0] << ", E_" << s->shape[1] << ", "
            << kindConstant(op.rows.kind) << ", " << kindConstant(op.cols.kind) << ">(p.snapshots["
            << snapshotIndex(op.symbol) << "], " << ident("S." + op.symbol) << ", " << anchorRow(op.rows) << ", "
            << anchorRow(op.cols)
            << ", bos / lina::kAnchorSpacing + n + (len - 1 - c0 - anchor_row) / lina::kAnchorSpacing, h, H);\n"
            << "      __syncthreads();\n";
        os_ << "      " << call.str() << "L, anchor_row);\n";
        os_ << "    } else {\n      " << call.str() << "L);\n    }\n";
        break;
      }
      case OpKind::RunningSum:
        if (op.operands.size() > 1 && !spec_.layout.anchoredSums.count(op.result)) {
          // The initial value at the sequence's first chunk (an anchored sum gets it from its anchor).
          const Op* init = def(op.operands[1]);
          os_ << "    if (c0 == 0) {\n      for (int e = threadIdx.x; e < " << E << "; e += blockDim.x) { "
              << ident("carry." + op.result) << "[e] = " << ident(op.operands[1]) << (init->shape.empty() ? "[0]" : "[e]")
              << "; " << ident("carry." + op.result) << "[" << E << " + e] = 0.f; }\n      __syncthreads();\n    }\n";
        }
        os_ << "    lina::running_sum<C, " << E << ">(" << out << ", " << ident(op.operands[0]) << ", "
            << ident("carry." + op.result) << ", L";
        if (op.operands.size() > 2)
          os_ << ", " << ident(op.operands[2]) << ", "
              << (spec_.layout.anchoredSums.count(op.result) ? "c0 % lina::kAnchorSpacing == 0" : "false");
        os_ << ");\n";
        break;
      case OpKind::Uniform:
        break;
    }
    os_ << "    __syncthreads();\n";
  }

  // The derived backward's pass B: at every anchor step the anchored running sums restart from
  // pass A's snapshot and the adjoint states (see anchor_sum), so each sums at most
  // kAnchorSpacing steps of terms.
  void emitAnchors() {
    if (spec_.layout.anchoredSums.empty()) return;
    os_ << "    if (c0 % lina::kAnchorSpacing == 0) {\n";
    os_ << "      const long long anchor = bos / lina::kAnchorSpacing + n + c0 / lina::kAnchorSpacing;\n";
    for (const auto& [sum, a] : spec_.layout.anchoredSums) {
      const rir::Decl* s = a.adjointStates.empty() ? nullptr : state(a.adjointStates.front());
      if (!s || a.adjointStates.size() > static_cast<size_t>(kMaxAnchorStates))
        throw Error("kernel " + k_.name + ": the anchor of %" + sum + " needs 1 to " + std::to_string(kMaxAnchorStates) +
                    " adjoint states of the kernel; got " + std::to_string(a.adjointStates.size()));
      std::vector<std::string> k;
      for (const std::string& name : a.adjointStates) {
        const rir::Decl* other = state(name);
        if (!other || other->shape != s->shape)
          throw Error("kernel " + k_.name + ": anchor state '" + name + "' is not a state shaped like '" + s->name + "'");
        k.push_back(ident("S." + name));
      }
      while (k.size() < static_cast<size_t>(kMaxAnchorStates)) k.push_back("nullptr");
      os_ << "      lina::anchor_sum<E_" << s->shape[0] << ", E_" << s->shape[1] << ", " << (a.rows ? "true" : "false")
          << ">(" << ident("carry." + sum) << ", p.snapshots[" << snapshotIndex(a.snapshot) << "], anchor, h, H, "
          << k[0] << ", " << k[1] << ", " << k[2] << ", " << k[3] << ");\n";
    }
    os_ << "      __syncthreads();\n    }\n";
  }
  int snapshotIndex(const std::string& name) const {
    std::vector<std::string> names = spec_.layout.snapshotNames();
    return static_cast<int>(std::find(names.begin(), names.end(), name) - names.begin());
  }

  // Whether a carry operand must be split into bf16 hi + lo on tensor cores: it is exact in bf16
  // only when it is a bf16 input loaded as is and no gate scales it.
  bool splits(const std::string& operand, const cir::GateRef& gate) const {
    if (spec_.layout.preciseProducts || gate.kind != GateKind::None || spec_.dtype != "bf16") return true;
    const Op* d = def(operand);
    return !(d && d->kind == OpKind::Load && !spec_.layout.fp32Tensors.count(d->symbol));
  }

  // The element type a per-step input or output is stored in.
  std::string elementType(const std::string& name) const { return spec_.layout.fp32Tensors.count(name) ? "float" : "T"; }

  // Tensor cores for bf16/fp16 kernels whose tiles are multiples of 16; fp32 kernels keep the
  // exact fp32 path (their tolerance, 1e-5, is below bf16 rounding).
  bool tensorCores(int64_t a, int64_t b) const {
    return spec_.dtype != "fp32" && k_.chunk % 16 == 0 && a % 16 == 0 && b % 16 == 0;
  }

  const rir::Decl* state(const std::string& name) const {
    for (const rir::Decl& s : k_.states)
      if (s.name == name) return &s;
    return nullptr;
  }

  const cir::Kernel& k_;
  const cir::Specialization& spec_;
  const Extents& e_;
  const SharedMemoryPlan& smem_;
  std::string sourceName_;
  std::ostringstream os_;
};

Extents extentsFor(const cir::Kernel& kernel, const cir::Specialization& spec) {
  Extents e{kernel, spec, 0};
  if (!kernel.tiledDim.empty()) {
    int64_t full = e.full(kernel.tiledDim);
    int tile = spec.tile > 0 ? spec.tile : static_cast<int>(full);
    if (tile > full || full % tile != 0)
      throw Error("kernel " + kernel.name + ": tile " + std::to_string(tile) + " does not divide " + kernel.tiledDim +
                  " = " + std::to_string(full) + "; pick a tile that divides it");
    e.tile = tile;
  }
  for (const std::string& d : kernel.dims) e.full(d);  // every dim must have a size
  return e;
}

}  // namespace

SharedMemoryPlan planSharedMemory(const cir::Kernel& kernel, const cir::Specialization& spec) {
  return plan(kernel, extentsFor(kernel, spec));
}

EmittedKernel emitCuda(const cir::Kernel& kernel, const cir::Specialization& spec, const std::string& sourceName) {
  if (spec.dtype != "bf16" && spec.dtype != "fp16" && spec.dtype != "fp32")
    throw Error("dtype: expected bf16, fp16 or fp32; got '" + spec.dtype + "'");
  Extents e = extentsFor(kernel, spec);
  const cir::Kernel& k = kernel;
  auto declares = [](const std::vector<rir::Decl>& decls, const std::string& name) {
    return std::any_of(decls.begin(), decls.end(), [&](const rir::Decl& d) { return d.name == name; });
  };
  for (const std::string& name : spec.layout.fp32Tensors)
    if (!declares(k.inputs, name) && !declares(k.outputs, name))
      throw Error("kernel " + k.name + ": fp32 tensor '" + name + "' is not an input or output of @" + k.program);
  for (const std::string& name : spec.layout.perSequenceInputs)
    if (!declares(k.inputs, name))
      throw Error("kernel " + k.name + ": per-sequence input '" + name + "' is not an input of @" + k.program);
  for (const std::set<std::string>* outputs : {&spec.layout.accumulateOutputs, &spec.layout.discardedOutputs})
    for (const std::string& name : *outputs)
      if (!declares(k.outputs, name))
        throw Error("kernel " + k.name + ": '" + name + "' is not an output of @" + k.program);
  for (const std::string& name : spec.layout.accumulateOutputs)
    for (const rir::Decl& o : k.outputs)
      if (o.name == name && !k.tiledDim.empty() && e.tile < e.full(k.tiledDim) && !spec.layout.oneTilePerLaunch &&
          (o.shape.empty() || o.shape[0] != k.tiledDim))
        throw Error("kernel " + k.name + ": output '" + name + "' cannot accumulate: every tile of " + k.tiledDim +
                    " stores it; use the whole dim as one tile");
  const bool anchors = !spec.layout.anchorSnapshots.empty() || !spec.layout.anchoredSums.empty();
  if (anchors && !k.tiledDim.empty() && e.tile < e.full(k.tiledDim) && !spec.layout.oneTilePerLaunch)
    throw Error("kernel " + k.name + ": anchors need the whole " + k.tiledDim + " (" + std::to_string(e.full(k.tiledDim)) +
                ") in one CTA or one tile per launch; got tile " + std::to_string(e.tile));
  if (anchors && k.phase != cir::Phase::Whole)
    throw Error("kernel " + k.name + ": anchors are for the fused and recurrent strategies, not the split one");
  if (anchors && kAnchorSpacing % k.chunk != 0)
    throw Error("kernel " + k.name + ": anchors every " + std::to_string(kAnchorSpacing) + " steps need a chunk that divides " +
                std::to_string(kAnchorSpacing) + "; got chunk " + std::to_string(k.chunk));
  if (spec.layout.snapshotNames().size() > static_cast<size_t>(kMaxStates))
    throw Error("kernel " + k.name + ": " + std::to_string(spec.layout.snapshotNames().size()) +
                " anchor snapshots; one kernel takes at most " + std::to_string(kMaxStates));
  for (const std::string& name : spec.layout.anchorSnapshots)
    if (!declares(k.states, name)) throw Error("kernel " + k.name + ": anchor snapshot '" + name + "' is not a state of @" + k.program);
  for (const auto& anchored : spec.layout.anchoredSums) {
    const std::string& sum = anchored.first;  // a named copy: clang 14 cannot capture structured bindings
    if (!std::any_of(k.ops.begin(), k.ops.end(), [&](const Op& op) { return op.kind == OpKind::RunningSum && op.result == sum; }))
      throw Error("kernel " + k.name + ": anchored sum '" + sum + "' is not a running_sum of @" + k.program);
  }
  SharedMemoryPlan smem = plan(k, e);
  EmittedKernel out;
  out.name = k.name;
  out.smem = smem;
  out.threads = k.warps * 32;
  out.tiledDim = k.tiledDim;
  out.tile = e.tile;
  out.chunk = k.chunk;
  out.stages = spec.stages;
  out.tiles = k.tiledDim.empty() ? 1 : static_cast<int>(e.full(k.tiledDim) / e.tile);
  out.grid = planLaunchGrid(k, spec);
  auto names = [](const std::vector<rir::Decl>& decls, int scalar) {
    std::vector<std::string> n;
    for (const rir::Decl& d : decls)
      if (scalar < 0 || d.shape.empty() == (scalar == 1)) n.push_back(d.name);
    return n;
  };
  out.inputs = names(k.inputs, -1);
  out.outputs = names(k.outputs, -1);
  out.states = names(k.states, -1);
  out.scalarParams = names(k.params, 1);
  out.vectorParams = names(k.params, 0);
  out.source = Emitter(k, spec, e, smem, sourceName).run();
  return out;
}

const char* gridAxisName(GridAxis a) {
  switch (a) {
    case GridAxis::Tiles: return "tiles";
    case GridAxis::Heads: return "heads";
    case GridAxis::Sequences: return "sequences";
    case GridAxis::ChunkSlots: return "chunk-slots";
    case GridAxis::OneTile: return "one-tile";
  }
  return "?";
}

std::string LaunchGrid::component(GridAxis a) const {
  return x == a ? "blockIdx.x" : y == a ? "blockIdx.y" : z == a ? "blockIdx.z" : "";
}

std::string LaunchGrid::text() const {
  return std::string("x=") + gridAxisName(x) + " y=" + gridAxisName(y) + " z=" + gridAxisName(z);
}

LaunchGrid planLaunchGrid(const cir::Kernel& kernel, const cir::Specialization& spec) {
  // The outputs phase of the split strategy: one CTA per (chunk slot, head, tile), slots on x
  // (the only axis with 2^31 - 1 blocks). Every other kernel: one CTA per (tile, head, sequence).
  if (kernel.phase == cir::Phase::Outputs) return {GridAxis::ChunkSlots, GridAxis::Heads, GridAxis::Tiles};
  return {spec.layout.oneTilePerLaunch ? GridAxis::OneTile : GridAxis::Tiles, GridAxis::Heads, GridAxis::Sequences};
}

}  // namespace lina::codegen
