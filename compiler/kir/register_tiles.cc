// Matching a canonical recurrence to the register-tile kernel, and planning that kernel.
#include "compiler/kir/register_tiles.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <set>

#include "compiler/cir/lower.h"
#include "compiler/kir/internal.h"
#include "support/error.h"

namespace lina::kir {

const char* partName(Part p) {
  switch (p) {
    case Part::Whole: return "whole";
    case Part::SegmentLocal: return "segment-local";
    case Part::SegmentScan: return "segment-scan";
    case Part::SegmentOutputs: return "segment-outputs";
  }
  return "?";
}

const char* gateKindName(GateKind g) {
  switch (g) {
    case GateKind::Vector: return "vector";
    case GateKind::Scalar: return "scalar";
    case GateKind::HeadConstant: return "head-constant";
    case GateKind::None: return "none";
  }
  return "?";
}

namespace {

using detail::number;
using detail::UniformTranslator;

// The matched family, or a reason.
struct Match {
  RegisterTileKernel k;
  std::string why;
};

Match match(const rir::Recurrence& rec, cir::Strategy strategy, int chunk, const cir::Specialization& spec) {
  Match m;
  auto reject = [&](const std::string& why) {
    m.why = why;
    return m;
  };
  RegisterTileKernel& k = m.k;
  k.program = rec.name;
  if (strategy != cir::Strategy::Fused && strategy != cir::Strategy::Split)
    return reject(std::string("the ") + cir::strategyName(strategy) + " strategy (register tiles: fused or split)");
  if (chunk != 64) return reject("chunk " + std::to_string(chunk) + " (register tiles: chunk 64)");
  if (spec.dtype != "bf16") return reject("dtype " + spec.dtype + " (register tiles: bf16 tensor-core operands)");
  if (spec.layout.key() != cir::TensorLayout().key()) return reject("a derived-backward tensor layout (register tiles: the forward's)");
  if (rec.states.size() != 1) return reject(std::to_string(rec.states.size()) + " states (register tiles: one)");
  if (rec.outputs.size() != 1) return reject(std::to_string(rec.outputs.size()) + " outputs (register tiles: one)");
  const rir::Decl& S = rec.states[0];
  if (S.shape.size() != 2) return reject("state " + S.name + " is not a matrix");
  k.state = S.name;
  k.rowDim = S.shape[0];
  k.colDim = S.shape[1];
  auto size = [&](const std::string& d) -> int64_t { return spec.dims.count(d) ? spec.dims.at(d) : 0; };
  const int64_t K = size(k.rowDim), V = size(k.colDim);
  if (K != 64 && K != 128) return reject(k.rowDim + " = " + std::to_string(K) + " (register tiles: 64 or 128; the state rows live in registers)");
  if (V < 64 || V % 64 != 0) return reject(k.colDim + " = " + std::to_string(V) + " (register tiles: a multiple of 64)");
  k.K = static_cast<int>(K);
  k.V = static_cast<int>(V);
  k.BV = spec.tile ? static_cast<int>(spec.tile) : (V % 128 == 0 ? 128 : 64);
  if (k.BV != 64 && k.BV != 128) return reject("tile " + std::to_string(k.BV) + " (register tiles: 64 or 128 columns of " + k.colDim + ")");
  if (V % k.BV != 0) return reject("tile " + std::to_string(k.BV) + " does not divide " + k.colDim + " = " + std::to_string(V));
  k.warps = 4 * (k.BV / 64);

  auto inputSlot = [&](const std::string& value, const rir::Shape& shape, std::string& name) {
    return detail::inputSlot(rec, value, shape, name);
  };
  const std::set<std::string> uniform = rir::uniformValues(rec);
  UniformTranslator uniformCode{rec, spec};
  const rir::Inst *update = nullptr, *read = nullptr, *output = nullptr;
  for (const rir::Inst& inst : rec.body) {
    switch (inst.op) {
      case rir::Op::Update:
        if (update) return reject("two updates of the state");
        update = &inst;
        break;
      case rir::Op::Read:
        if (read) return reject("two reads of the state");
        read = &inst;
        break;
      case rir::Op::Output: output = &inst; break;
      case rir::Op::Input: break;
      default:
        if (!inst.result.empty() && !uniform.count(inst.result) && inst.op != rir::Op::Mul)
          return reject("per-step %" + inst.result + " = " + rir::opName(inst.op) + " (register tiles: inputs feed the update and the read directly)");
    }
  }
  if (!update || !read || !output) return reject("no update, read and output of one state");
  if (update->cols.present()) {  // the column-gated kernel (lina/device/column_gated_chunk.cuh)
    if (update->rows.present()) return reject("gates on both the rows and the columns of " + k.state + " (register tiles: one)");
    if (strategy != cir::Strategy::Fused) return reject("a column gate with the split strategy (register tiles: fused)");
    if (update->cols.space != rir::GateSpace::Log) return reject("a linear-space gate (run canonicalize-gates first)");
    if ((k.slotG = inputSlot(update->cols.value, {k.colDim}, k.g)) < 0)
      return reject("the column gate of " + k.state + " is not an input [" + k.colDim + "]");
    if (spec.tile && spec.tile != 64) return reject("tile " + std::to_string(spec.tile) + " (column-gated register tiles: 64 columns per CTA)");
    k.gate = GateKind::Vector;
    k.columnGate = true;
    k.BV = 64;
    k.warps = 4;
  } else if (update->rows.present()) {
    if (std::string why = detail::matchRowGate(rec, spec, update->rows, k); !why.empty()) return reject(why);
  }
  if ((k.slotK = inputSlot(update->operands.at(0), {k.rowDim}, k.k)) < 0 ||
      (k.slotV = inputSlot(update->operands.at(1), {k.colDim}, k.v)) < 0)
    return reject("outer(%" + update->operands[0] + ", %" + update->operands[1] + ") is not of two inputs [" + k.rowDim + "], [" +
                  k.colDim + "]");
  if (read->symbol != k.state || read->dim != k.rowDim || !read->afterUpdate)
    return reject("the read is not after the update over " + k.rowDim + " (register tiles: o = q @ S_t)");
  if ((k.slotQ = inputSlot(read->operands.at(0), {k.rowDim}, k.q)) < 0) return reject("the read's query is not an input [" + k.rowDim + "]");
  if (cir::tileableDim(rec) != k.colDim) return reject("the kernels tile " + cir::tileableDim(rec) + ", not " + k.colDim);
  k.o = output->symbol;
  k.slotO = 0;
  const std::string& out = output->operands.at(0);
  if (out != read->result) {
    const rir::Inst* mul = rec.definition(out);
    if (!mul || mul->op != rir::Op::Mul) return reject("output " + k.o + " is not c * (q @ S) with c uniform");
    const std::string& a = mul->operands.at(0);
    const std::string& b = mul->operands.at(1);
    const std::string c = a == read->result ? b : b == read->result ? a : "";
    if (c.empty() || !uniform.count(c)) return reject("output " + k.o + " is not c * (q @ S) with c uniform");
    try {
      std::tie(k.scaleCode, k.scaleText) = uniformCode(c);
    } catch (const std::string& why) {
      return reject("the output scale: " + why);
    }
  }
  // Every per-step Mul must be the output's scaling.
  for (const rir::Inst& inst : rec.body)
    if (inst.op == rir::Op::Mul && !uniform.count(inst.result) && inst.result != out)
      return reject("per-step %" + inst.result + " = mul (register tiles: only the output's uniform scale)");
  for (const rir::Decl& p : rec.params)
    if (!p.shape.empty()) {
      bool used = false;
      for (const rir::Inst& inst : rec.body) used = used || (inst.op == rir::Op::Param && inst.symbol == p.name);
      if (used) return reject("vector param " + p.name + " (register tiles: scalar params only)");
    }
  auto names = [](const std::vector<rir::Decl>& decls, int scalar) {
    std::vector<std::string> n;
    for (const rir::Decl& d : decls)
      if (scalar < 0 || d.shape.empty() == (scalar == 1)) n.push_back(d.name);
    return n;
  };
  k.inputs = names(rec.inputs, -1);
  k.outputs = names(rec.outputs, -1);
  k.states = names(rec.states, -1);
  k.scalarParams = names(rec.params, 1);
  k.vectorParams = names(rec.params, 0);
  return m;
}

// One kernel of the plan. Whole: the fused walk. SegmentLocal: each segment's walk from a zero
// state without q or outputs (64 columns per CTA, no q, Sb or m buffers: two CTAs per SM), its
// local state and total decay in fp32. SegmentScan: the segments' starting states, in order.
// SegmentOutputs: the fused walk over one segment from its starting state. Shared memory in the
// device template's order (lina::fc::Layout; the emitted kernel static_asserts the total).
}  // namespace

std::string detail::matchRowGate(const rir::Recurrence& rec, const cir::Specialization& spec, const rir::Gate& rows,
                                 RegisterTileKernel& k) {
  if (rows.space != rir::GateSpace::Log) return "a linear-space gate (run canonicalize-gates first)";
  const std::string& g = rows.value;
  if ((k.slotG = inputSlot(rec, g, {k.rowDim}, k.g)) >= 0) {
    k.gate = GateKind::Vector;
  } else if ((k.slotG = inputSlot(rec, g, {}, k.g)) >= 0) {
    k.gate = GateKind::Scalar;
  } else if (rir::uniformValues(rec).count(g)) {
    k.gate = GateKind::HeadConstant;
    try {
      std::tie(k.logDecayCode, k.logDecayText) = UniformTranslator{rec, spec}(g);
    } catch (const std::string& why) {
      return "the gate: " + why;
    }
  } else {
    return "gate %" + g + " is computed per step (register tiles: an input g[" + k.rowDim + "] or g[], or a uniform decay)";
  }
  return "";
}

int detail::inputSlot(const rir::Recurrence& rec, const std::string& value, const rir::Shape& shape, std::string& name) {
  const rir::Inst* d = rec.definition(value);
  if (!d || d->op != rir::Op::Input || d->shape != shape) return -1;
  name = d->symbol;
  for (size_t i = 0; i < rec.inputs.size(); ++i)
    if (rec.inputs[i].name == d->symbol) return static_cast<int>(i);
  return -1;
}

namespace {
// An experiment knob read once: the environment variable's integer value among `allowed`, or
// `fallback` when unset. Bad values throw (naming the variable, the allowed values and the value).
int knob(const char* name, int fallback, std::initializer_list<int> allowed) {
  const char* text = std::getenv(name);
  if (!text || !*text) return fallback;
  std::string list;
  for (int a : allowed) {
    list += (list.empty() ? "" : ", ") + std::to_string(a);
    if (std::to_string(a) == text) return a;
  }
  throw Error(std::string(name) + "=" + text + ": expected one of " + list + " (unset it for the default " + std::to_string(fallback) + ")");
}
}  // namespace

int segmentChunks(GateKind gate) {
  static const int chunks = knob("LINA_KIR_SEGMENT_CHUNKS", 0, {4, 8, 16, 32, 64});
  if (chunks) return chunks;
  return gate == GateKind::Vector ? kSegmentChunksVectorGate : kSegmentChunksRowGate;
}

RegisterTileKernel detail::planKernel(RegisterTileKernel k, Part part) {
  k.part = part;
  k.segment = part == Part::Whole ? 0 : segmentChunks(k.gate);
  if (part == Part::SegmentLocal) k.BV = 64;
  k.warps = part == Part::SegmentScan ? 8 : 4 * (k.BV / 64);
  k.stages = part == Part::SegmentScan ? 0 : 2;
  const std::string shape = "_c" + std::to_string(k.chunk) + (part == Part::SegmentScan ? "" : "_bv" + std::to_string(k.BV));
  k.name = k.program + "_kir" + (part == Part::Whole ? "" : std::string("_") + partName(part)) + shape;
  for (char& ch : k.name)
    if (ch == '-') ch = '_';
  if (part == Part::SegmentScan) {
    k.sharedBytes = 0;
    k.blocksPerSm = 1;
    return k;
  }
  const bool walkOnly = part == Part::SegmentLocal;
  const bool vectorGate = k.gate == GateKind::Vector;
  const int C = k.chunk, KK = k.K, BV = k.BV;
  int64_t at = 0;
  auto add = [&](std::string name, std::string type, std::string shape, int64_t bytes, std::string why) {
    k.shared.push_back({std::move(name), std::move(type), std::move(shape), std::move(why), at, bytes});
    at += bytes;
  };
  const std::string kr = "[" + std::to_string(C) + "][" + std::to_string(KK) + "]";
  for (int s = 0; s < k.stages; ++s) {
    const std::string st = "stage" + std::to_string(s) + ".";
    if (!walkOnly) add(st + k.q, "bf16", kr, C * KK * 2, "ldmatrix A operand (every warp reads all rows); prep scales it in place");
    add(st + k.k, "bf16", kr, C * KK * 2,
        walkOnly ? "A^T operand of the carry; prep scales it in place" : "ldmatrix B operand of the scores, A^T of the carry");
    if (k.gate == GateKind::Vector) add(st + k.g, "bf16", kr, C * KK * 2, "read by the prep only");
    add(st + k.v, "bf16", "[" + std::to_string(C) + "][" + std::to_string(BV) + "]", C * BV * 2, "ldmatrix.trans B operand");
  }
  if (!walkOnly) {
    add("Sb", "bf16", "[" + std::to_string(KK) + "][" + std::to_string(BV) + "]", KK * BV * 2,
        "the chunk's starting state: B operand of every warp's inter term");
    if (vectorGate) add("m", "f32", "[4][5][" + std::to_string(KK) + "]", 20 * KK * 4, "per-column inter/intra factors 2^(G_f(i) - G_e(j))");
    else add("m", "f32", "[" + std::to_string(C) + "]", C * 4, "G_t, the chunk's log2 cumsum of the gate (row gates)");
  }
  if (vectorGate) {
    add("u", "f32", "[4][" + std::to_string(KK) + "]", 4 * KK * 4, "carry factors 2^(G_63 - G_e(j))");
    add("d", "f32", "[" + std::to_string(KK) + "]", KK * 4, "the chunk's total decay 2^G_63");
  } else {
    add("u", "f32", "[" + std::to_string(C) + "]", C * 4, "carry factors per token 2^(G_63 - G_s) (row gates)");
  }
  add("gs", "f32", "[2][64]", 2 * C * 4, "scalar gates of the chunk (ring)");
  k.sharedBytes = at;
  // CTAs per SM the shared memory allows (228 KB per SM on sm_90, 1 KB reserved per CTA), at
  // most 2: the bound the emitter passes to __launch_bounds__ so registers do not limit it.
  // LINA_KIR_LOCAL_BLOCKS (1-4): the bound for the local pass, a tuning experiment (registers
  // shrink to fit, ptxas may spill).
  static const int localBlocks = knob("LINA_KIR_LOCAL_BLOCKS", 2, {1, 2, 3, 4});
  k.blocksPerSm = 1;
  if (part == Part::SegmentLocal)
    for (int b = localBlocks; b > 1 && k.blocksPerSm == 1; --b)
      if (b * (k.sharedBytes + 1024) <= 233472) k.blocksPerSm = b;
  return k;
}

std::string registerTilesUnsupported(const rir::Recurrence& rec, cir::Strategy strategy, int chunk,
                                     const cir::Specialization& spec) {
  if (rec.states.size() == 2) return twoPhaseUnsupported(rec, strategy, chunk, spec);
  return match(rec, strategy, chunk, spec).why;
}

std::vector<RegisterTileKernel> lowerToRegisterTiles(const rir::Recurrence& rec, cir::Strategy strategy, int chunk,
                                                     const cir::Specialization& spec) {
  if (rec.states.size() == 2) return lowerTwoPhase(rec, strategy, chunk, spec);
  Match m = match(rec, strategy, chunk, spec);
  if (!m.why.empty()) throw Error("@" + rec.name + ": no register-tile kernel: " + m.why);
  if (m.k.columnGate) return {detail::planColumnGated(m.k, -1)};
  if (strategy == cir::Strategy::Split)
    return {detail::planKernel(m.k, Part::SegmentLocal), detail::planKernel(m.k, Part::SegmentScan), detail::planKernel(m.k, Part::SegmentOutputs)};
  return {detail::planKernel(m.k, Part::Whole)};
}

void print(std::ostream& os, const RegisterTileKernel& k) {
  if (k.columnGate) return printColumnGated(os, k);
  const int KR = k.K / 4;
  const bool whole = k.part == Part::Whole, local = k.part == Part::SegmentLocal, outputs = k.part == Part::SegmentOutputs;
  os << "kir.kernel @" << k.name << " of @" << k.program << (whole ? "" : std::string(" part=") + partName(k.part))
     << (k.phase >= 0 ? " phase " + std::to_string(k.phase) + " of 2" : "") << " {\n";
  if (k.part == Part::SegmentScan) {
    os << "  launch grid(x=blocks " << k.rowDim << "*" << k.colDim << "/256=" << k.tiles() << ", y=heads, z=sequences) block 256\n";
    os << "  segment " << k.segment << " chunks (" << k.segment * k.chunk << " tokens)\n";
    os << "  thread: one element (k, v) of " << k.state << "; S = initial state (f32, when given) or 0\n";
    os << "  per segment s of the sequence {\n";
    os << "    L = segment-state[s]; segment-state[s] = S  // in place: the local state becomes the starting state\n";
    os << "    S = segment-decay[s][k] * S + L\n";
    os << "  }\n";
    os << "  store S -> final state (f32, when given)\n";
    os << "}\n";
    return;
  }
  const std::string tiles = "tiles " + k.colDim + "/" + std::to_string(k.BV) + "=" + std::to_string(k.tiles());
  os << "  launch grid(x=" << tiles << ", y=heads, z=" << (whole ? "sequences" : "segment-slots") << ") block " << k.threads() << " ("
     << k.warps << " warps) shared " << k.sharedBytes << "B";
  if (k.blocksPerSm > 1) os << " blocks/SM " << k.blocksPerSm;
  os << "\n  chunk " << k.chunk << " sub-chunk " << k.subChunk << " stages " << k.stages << " mma m16n8k16.bf16.f32\n";
  if (!whole) os << "  segment " << k.segment << " chunks (" << k.segment * k.chunk << " tokens), slot = bos/" << k.segment * k.chunk << " + n + s\n";
  os << "  tensors ";
  if (!local && k.slotQ < 0) os << "q=" << k.q << ":bf16[tokens][H][" << k.rowDim << "]@snapshot0 (phase 0's intermediate) ";
  else if (!local) os << "q=" << k.q << "@in" << k.slotQ << " ";
  os << "k=" << k.k << "@in" << k.slotK << " v=" << k.v << "@in" << k.slotV;
  if (k.slotG >= 0) os << " g=" << k.g << "@in" << k.slotG;
  if (!local) os << " o=" << k.o << "@out" << k.slotO;
  if (whole) os << " state=" << k.state << "@state" << k.slotState;
  if (local) os << " segment-state=f32[slot][H][" << k.rowDim << "][" << k.colDim << "]@snapshot0 segment-decay=f32[slot][H][" << k.rowDim << "]@snapshot1";
  if (outputs) os << " start-state=f32[slot][H][" << k.rowDim << "][" << k.colDim << "]@snapshot0";
  os << "\n  gate " << gateKindName(k.gate);
  if (k.gate == GateKind::HeadConstant) os << " log-decay " << k.logDecayText;
  os << "\n";
  if (!local) os << "  scale " << k.scaleText << "\n";
  os << "  warp w: vh = w / 4 (columns vh*64 .. +64 of the tile), rb = vh == 0 ? w % 4 : 3 - w % 4 (sub-chunk rb of o, rows rb*"
     << KR << " .. +" << KR << " of " << k.state << ")\n";
  os << "  reg " << k.state << ": f32[" << KR << "][64] per warp, mma C fragments " << KR / 16 << "x8 of m16n8 (carried across chunks)\n";
  if (local) os << "  reg D: f32[" << KR << "] per warp (the segment's decay of its rows)\n";
  if (!local) {
    os << "  reg o: f32[16][64] per warp, mma C fragments 1x8 of m16n8\n";
    os << "  reg scores: f32[16][16] per (warp, sub-chunk j <= rb), C fragments repacked in registers as the bf16 A operand\n";
  }
  for (const SharedBuffer& b : k.shared)
    os << "  smem " << b.name << ": " << b.type << b.shape << " @" << b.offset << " +" << b.bytes << "  // " << b.why << "\n";
  os << "  load " << k.state << " <- " << (whole ? "initial state (f32, when given) or 0" : local ? "0" : "start-state[slot]") << "\n";
  os << "  per chunk c" << (whole ? "" : " of the segment") << " {\n";
  os << "    cp.async.wait c; barrier.B1 all " << k.threads() << "  // chunk c landed; chunk c-1's stage" << (local ? " is" : " and Sb are")
     << " free\n";
  os << "    cp.async chunk c+1 -> stage (c+1)%2 (16B, zero-fill past the sequence end)\n";
  if (!local) os << "    store bf16(" << k.state << ") -> Sb\n";
  const std::string S = k.state;
  if (k.gate == GateKind::Vector) {
    os << "    prep in place: G = log2 cumsum(" << k.g << ") per sub-chunk + shuffle scan; " << (local ? "" : "q~ = scale q 2^(G_t - G_f), ")
       << "k~ = k 2^(G_e - G_s); " << (local ? "u, d" : "m, u, d") << "\n";
  } else if (k.gate == GateKind::None) {
    os << "    no prep (no gate): q, k stay raw\n";
  } else {
    os << "    prep in registers: G = log2 cumsum(" << (k.gate == GateKind::HeadConstant ? "log-decay" : k.g)
       << ") over the chunk (every warp, shuffle scan); warp 0 stores " << (local ? "" : "G -> m, ") << "u_s = 2^(G_63 - G_s) -> u; q, k stay raw\n";
  }
  os << "    barrier.B2 all " << k.threads() << "  // prep" << (local ? "" : " and Sb") << " visible\n";
  if (!local && k.gate == GateKind::Vector) {
    os << "    mma o = (q~ (.) m[rb][0]) Sb              fused: m scales the A fragments\n";
    os << "    mma o += mask((q~ (.) m[rb][j+1]) k~_j^T) v_j for j <= rb   fused: causal mask on the C fragments, C->A repack\n";
  } else if (!local) {
    const bool none = k.gate == GateKind::None;
    os << "    mma o = (q Sb) (.)rows scale" << (none ? "" : " 2^(G_t)") << "   fused: the factor on the C fragments\n";
    os << "    mma o += mask((q k_j^T) (.) scale" << (none ? "" : " 2^(G_t - G_s)")
       << ") v_j for j <= rb   fused: mask and factors on the C fragments, C->A repack\n";
  }
  if (!local) os << "    store o -> " << k.o << " bf16 from C fragments\n";
  if (k.gate == GateKind::Vector)
    os << "    mma " << S << " = d (.)rows " << S << " + sum_j (u_j (.)rows k~_j^T) v_j   fused: u, d on fragments\n";
  else if (k.gate == GateKind::None)
    os << "    mma " << S << " = " << S << " + sum_j k_j^T v_j\n";
  else
    os << "    mma " << S << " = 2^(G_63) " << S << " + sum_j (k_j (.)rows u_j)^T v_j   fused: u on the A fragments\n";
  if (local) os << "    D = D * " << (k.gate == GateKind::Vector ? "d" : "2^(G_63)") << "\n";
  os << "  }\n";
  if (whole) os << "  store " << k.state << " -> final state (f32, when given)\n";
  if (local) os << "  store " << k.state << " -> segment-state[slot], D -> segment-decay[slot]\n";
  os << "}\n";
}

}  // namespace lina::kir
