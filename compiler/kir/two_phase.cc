// Two-phase register-tile plans: two states chained through the read of the first (GSA).
//
//   A = A (.)cols exp(g1) + outer(k1, v1)      A [K, M], g1 an input [M]
//   p = epilogue(c1 * (q @ A_t))               over K; epilogue: softmax over M, or none
//   B = exp(g2) (.)rows B + outer(k2, v2)      B [M, V], g2 as the single-state family's gate
//   o = c2 * (p @ B_t)                         over M
//
// Phase 0 is the column-gated kernel (one CTA per (head, sequence), the whole M row for the
// softmax), storing p as a bf16 intermediate [tokens, H, M]; phase 1 is the row-gated kernel of
// register_tiles.cc with that intermediate as its query. The intermediate is what fla's chunk_gsa
// materializes too (its qv); it costs 2 M bytes per (token, head) of workspace.
#include <functional>
#include <set>

#include "compiler/cir/lower.h"
#include "compiler/kir/internal.h"
#include "compiler/kir/register_tiles.h"
#include "support/error.h"

namespace lina::kir {

namespace {

struct TwoPhaseMatch {
  RegisterTileKernel first, second;
  std::string why;
};

TwoPhaseMatch matchTwoPhase(const rir::Recurrence& rec, cir::Strategy strategy, int chunk, const cir::Specialization& spec) {
  TwoPhaseMatch m;
  auto reject = [&](const std::string& why) {
    m.why = why;
    return m;
  };
  if (strategy != cir::Strategy::Fused) return reject(std::string("the ") + cir::strategyName(strategy) + " strategy (two-phase register tiles: fused)");
  if (chunk != 64) return reject("chunk " + std::to_string(chunk) + " (register tiles: chunk 64)");
  if (spec.dtype != "bf16") return reject("dtype " + spec.dtype + " (register tiles: bf16 tensor-core operands)");
  if (spec.layout.key() != cir::TensorLayout().key()) return reject("a derived-backward tensor layout (register tiles: the forward's)");
  if (rec.states.size() != 2) return reject(std::to_string(rec.states.size()) + " states (two-phase register tiles: two)");
  if (rec.outputs.size() != 1) return reject(std::to_string(rec.outputs.size()) + " outputs (register tiles: one)");
  for (const rir::Decl& p : rec.params)
    if (!p.shape.empty())
      for (const rir::Inst& inst : rec.body)
        if (inst.op == rir::Op::Param && inst.symbol == p.name) return reject("vector param " + p.name + " (register tiles: scalar params only)");

  const std::set<std::string> uniform = rir::uniformValues(rec);
  detail::UniformTranslator uniformCode{rec, spec};
  std::vector<const rir::Inst*> updates, reads;
  const rir::Inst *softmax = nullptr, *output = nullptr;
  for (const rir::Inst& inst : rec.body) {
    if (inst.op == rir::Op::Update) updates.push_back(&inst);
    else if (inst.op == rir::Op::Read) reads.push_back(&inst);
    else if (inst.op == rir::Op::Softmax) {
      if (softmax) return reject("two softmaxes (two-phase register tiles: at most one, between the reads)");
      softmax = &inst;
    } else if (inst.op == rir::Op::Output) output = &inst;
  }
  if (updates.size() != 2 || reads.size() != 2 || !output) return reject("not two updates and two reads of the two states");
  // The reads' order decides the phases: the second read's query comes from the first read.
  const rir::Inst* read0 = reads[0];
  const rir::Inst* read1 = reads[1];
  const rir::Inst* update0 = updates[0]->symbol == read0->symbol ? updates[0] : updates[1];
  const rir::Inst* update1 = update0 == updates[0] ? updates[1] : updates[0];
  if (update0->symbol != read0->symbol || update1->symbol != read1->symbol) return reject("each state is not read once");
  if (!read0->afterUpdate || !read1->afterUpdate) return reject("a read before its state's update (register tiles: reads after the update)");

  // c * x with c uniform, or x: returns x and writes c's code and text.
  auto unscale = [&](const std::string& value, std::string& code, std::string& text) -> std::string {
    code = "1.0", text = "1";
    const rir::Inst* d = rec.definition(value);
    if (!d || d->op != rir::Op::Mul) return value;
    const std::string &a = d->operands.at(0), &b = d->operands.at(1);
    const std::string c = uniform.count(a) ? a : uniform.count(b) ? b : "";
    if (c.empty()) return value;
    std::tie(code, text) = uniformCode(c);
    return c == a ? b : a;
  };

  RegisterTileKernel& k0 = m.first;
  RegisterTileKernel& k1 = m.second;
  for (RegisterTileKernel* k : {&k0, &k1}) k->program = rec.name;
  auto stateIndex = [&](const std::string& name) {
    for (size_t i = 0; i < rec.states.size(); ++i)
      if (rec.states[i].name == name) return static_cast<int>(i);
    return -1;
  };
  const rir::Decl* A = rec.state(read0->symbol);
  const rir::Decl* B = rec.state(read1->symbol);
  if (A->shape.size() != 2 || B->shape.size() != 2) return reject("a state that is not a matrix");
  auto size = [&](const std::string& d) -> int64_t { return spec.dims.count(d) ? spec.dims.at(d) : 0; };

  // Phase 0: A[K, M], gate on the columns, read over K.
  k0.state = A->name, k0.slotState = stateIndex(A->name);
  k0.rowDim = A->shape[0], k0.colDim = A->shape[1];
  k0.K = static_cast<int>(size(k0.rowDim));
  k0.V = k0.BV = static_cast<int>(size(k0.colDim));
  if (k0.K != 64 && k0.K != 128) return reject(k0.rowDim + " = " + std::to_string(k0.K) + " (register tiles: 64 or 128)");
  if (k0.V != 64) return reject(k0.colDim + " = " + std::to_string(k0.V) + " (the column-gated phase: 64; a row of the read stays in one warp)");
  if (update0->rows.present()) return reject("a row gate on " + A->name + " beside its column gate (two-phase register tiles: one gate per state)");
  if (!update0->cols.present()) return reject("no column gate on " + A->name + " (two-phase register tiles: the first state is column-gated)");
  if (update0->cols.space != rir::GateSpace::Log) return reject("a linear-space gate (run canonicalize-gates first)");
  if ((k0.slotG = detail::inputSlot(rec, update0->cols.value, {k0.colDim}, k0.g)) < 0)
    return reject("the column gate of " + A->name + " is not an input [" + k0.colDim + "]");
  k0.gate = GateKind::Vector;
  k0.columnGate = true;
  if ((k0.slotK = detail::inputSlot(rec, update0->operands.at(0), {k0.rowDim}, k0.k)) < 0 ||
      (k0.slotV = detail::inputSlot(rec, update0->operands.at(1), {k0.colDim}, k0.v)) < 0)
    return reject("the update of " + A->name + " is not outer of two inputs [" + k0.rowDim + "], [" + k0.colDim + "]");
  if (read0->dim != k0.rowDim) return reject("the read of " + A->name + " is not over " + k0.rowDim);
  if ((k0.slotQ = detail::inputSlot(rec, read0->operands.at(0), {k0.rowDim}, k0.q)) < 0)
    return reject("the read of " + A->name + " has no input query [" + k0.rowDim + "]");

  // Between the reads: p = softmax(c1 * r0) or c1 * r0, the query of the second read.
  std::string p = read1->operands.at(0), pre = p;
  std::set<std::string> between;  // the per-step values of the chain, besides the reads
  try {
    if (softmax && softmax->result == p) {
      if (softmax->dim != k0.colDim) return reject("the softmax is not over " + k0.colDim);
      k0.epilogue = Epilogue::Softmax;
      between.insert(p);
      pre = softmax->operands.at(0);
    }
    const std::string r0 = unscale(pre, k0.scaleCode, k0.scaleText);
    if (r0 != pre) between.insert(pre);
    if (r0 != read0->result) return reject("the second read's query is not softmax(c * (q @ " + A->name + ")) or c * (q @ " + A->name + ") with c uniform");
  } catch (const std::string& why) {
    return reject("the first read's scale: " + why);
  }
  if (softmax && !between.count(softmax->result)) return reject("a softmax outside the chain between the reads");
  k0.intermediate = p;
  k0.intermediateWidth = k0.V;
  k0.slotO = -1;
  k0.o = p;

  // Phase 1: B[M, V], the single-state family with p as its query.
  k1.state = B->name, k1.slotState = stateIndex(B->name);
  k1.rowDim = B->shape[0], k1.colDim = B->shape[1];
  if (k1.rowDim != k0.colDim) return reject("the second state's rows are not " + k0.colDim);
  k1.K = k0.V;
  k1.V = static_cast<int>(size(k1.colDim));
  if (k1.V < 64 || k1.V % 64 != 0) return reject(k1.colDim + " = " + std::to_string(k1.V) + " (register tiles: a multiple of 64)");
  k1.BV = spec.tile ? static_cast<int>(spec.tile) : (k1.V % 128 == 0 ? 128 : 64);
  if (k1.BV != 64 && k1.BV != 128) return reject("tile " + std::to_string(k1.BV) + " (register tiles: 64 or 128 columns of " + k1.colDim + ")");
  if (k1.V % k1.BV != 0) return reject("tile " + std::to_string(k1.BV) + " does not divide " + k1.colDim + " = " + std::to_string(k1.V));
  if (cir::tileableDim(rec) != k1.colDim) return reject("the kernels tile " + cir::tileableDim(rec) + ", not " + k1.colDim);
  if (update1->cols.present()) return reject("a column gate on " + B->name + " (the second phase: row gates)");
  if (update1->rows.present())
    if (std::string why = detail::matchRowGate(rec, spec, update1->rows, k1); !why.empty()) return reject(why);
  if ((k1.slotK = detail::inputSlot(rec, update1->operands.at(0), {k1.rowDim}, k1.k)) < 0 ||
      (k1.slotV = detail::inputSlot(rec, update1->operands.at(1), {k1.colDim}, k1.v)) < 0)
    return reject("the update of " + B->name + " is not outer of two inputs [" + k1.rowDim + "], [" + k1.colDim + "]");
  if (read1->dim != k1.rowDim) return reject("the read of " + B->name + " is not over " + k1.rowDim);
  k1.slotQ = -1;
  k1.q = p;
  k1.intermediate = p;
  k1.intermediateWidth = k1.K;
  k1.o = output->symbol;
  k1.slotO = 0;
  try {
    const std::string r1 = unscale(output->operands.at(0), k1.scaleCode, k1.scaleText);
    if (r1 != read1->result) return reject("output " + k1.o + " is not c * (p @ " + B->name + ") with c uniform");
    if (r1 != output->operands.at(0)) between.insert(output->operands.at(0));
  } catch (const std::string& why) {
    return reject("the output scale: " + why);
  }
  // Nothing else per step.
  for (const rir::Inst& inst : rec.body) {
    if (inst.result.empty() || uniform.count(inst.result) || between.count(inst.result)) continue;
    if (inst.op == rir::Op::Input || inst.op == rir::Op::Read) continue;
    return reject("per-step %" + inst.result + " = " + rir::opName(inst.op) + " (two-phase register tiles: only the chain between the reads)");
  }

  auto names = [](const std::vector<rir::Decl>& decls, int scalar) {
    std::vector<std::string> n;
    for (const rir::Decl& d : decls)
      if (scalar < 0 || d.shape.empty() == (scalar == 1)) n.push_back(d.name);
    return n;
  };
  for (RegisterTileKernel* k : {&k0, &k1}) {
    k->inputs = names(rec.inputs, -1);
    k->outputs = names(rec.outputs, -1);
    k->states = names(rec.states, -1);
    k->scalarParams = names(rec.params, 1);
    k->vectorParams = names(rec.params, 0);
  }
  return m;
}

}  // namespace

// The column-gated kernel's shared memory, in lina::fc::ColumnLayout's order (the emitted kernel
// static_asserts the total). phase 0 of a two-phase plan, or -1: a single-state program.
RegisterTileKernel detail::planColumnGated(RegisterTileKernel k, int phase) {
  k.phase = phase;
  k.part = Part::Whole;
  k.warps = 4;
  k.stages = 2;
  k.name = k.program + (phase == 0 ? "_kir_phase0_c" + std::to_string(k.chunk) + "_m" + std::to_string(k.V)
                                   : "_kir_colgate_c" + std::to_string(k.chunk) + "_bv" + std::to_string(k.BV));
  for (char& ch : k.name)
    if (ch == '-') ch = '_';
  const int C = k.chunk, KK = k.K, M = k.BV;
  int64_t at = 0;
  auto add = [&](std::string name, std::string type, std::string shape, int64_t bytes, std::string why) {
    k.shared.push_back({std::move(name), std::move(type), std::move(shape), std::move(why), at, bytes});
    at += bytes;
  };
  const std::string kr = "[" + std::to_string(C) + "][" + std::to_string(KK) + "]", mr = "[" + std::to_string(C) + "][" + std::to_string(M) + "]";
  for (int s = 0; s < k.stages; ++s) {
    const std::string st = "stage" + std::to_string(s) + ".";
    add(st + k.q, "bf16", kr, C * KK * 2, "ldmatrix A operand of the scores and the inter term");
    add(st + k.k, "bf16", kr, C * KK * 2, "ldmatrix B operand of the scores, A^T of the carry");
    add(st + k.v, "bf16", mr, C * M * 2, "ldmatrix.trans B operand; prep scales it in place (v~)");
    add(st + k.g, "bf16", mr, C * M * 2, "read by the prep only");
  }
  add("Sb", "bf16", "[" + std::to_string(KK) + "][" + std::to_string(M) + "]", KK * M * 2, "the chunk's starting state: B operand of every warp's inter term");
  add("m", "f32", "[4][5][" + std::to_string(M) + "]", 20 * M * 4, "per-column inter/intra factors on the B fragments");
  add("u", "f32", "[4][" + std::to_string(M) + "]", 4 * M * 4, "carry factors 2^(G_63 - G_e(j)) on the B fragments");
  add("d", "f32", "[" + std::to_string(M) + "]", M * 4, "the chunk's total decay 2^G_63 per column");
  add("of", "f32", "[" + std::to_string(C) + "][" + std::to_string(M + 8) + "]", C * (M + 8) * 4, "output factors 2^(G_t - G_f(i)), rows padded");
  k.sharedBytes = at;
  k.blocksPerSm = 2 * (k.sharedBytes + 1024) <= 233472 ? 2 : 1;
  return k;
}

std::string twoPhaseUnsupported(const rir::Recurrence& rec, cir::Strategy strategy, int chunk, const cir::Specialization& spec) {
  return matchTwoPhase(rec, strategy, chunk, spec).why;
}

std::vector<RegisterTileKernel> lowerTwoPhase(const rir::Recurrence& rec, cir::Strategy strategy, int chunk,
                                              const cir::Specialization& spec) {
  TwoPhaseMatch m = matchTwoPhase(rec, strategy, chunk, spec);
  if (!m.why.empty()) throw Error("@" + rec.name + ": no register-tile kernel: " + m.why);
  RegisterTileKernel second = detail::planKernel(m.second, Part::Whole);
  second.phase = 1;
  second.name = second.program + "_kir_phase1_c" + std::to_string(second.chunk) + "_bv" + std::to_string(second.BV);
  for (char& ch : second.name)
    if (ch == '-') ch = '_';
  return {detail::planColumnGated(m.first, 0), second};
}

void printColumnGated(std::ostream& os, const RegisterTileKernel& k) {
  const int KR = k.K / 4;
  const bool phase0 = k.phase == 0;
  os << "kir.kernel @" << k.name << " of @" << k.program << (phase0 ? " phase 0 of 2" : "") << " {\n";
  os << "  launch grid(x=" << (phase0 ? std::string("1") : "tiles " + k.colDim + "/" + std::to_string(k.BV) + "=" + std::to_string(k.tiles()))
     << ", y=heads, z=sequences) block " << k.threads() << " (" << k.warps << " warps) shared " << k.sharedBytes << "B";
  if (k.blocksPerSm > 1) os << " blocks/SM " << k.blocksPerSm;
  os << "\n  chunk " << k.chunk << " sub-chunk " << k.subChunk << " stages " << k.stages << " mma m16n8k16.bf16.f32\n";
  os << "  tensors q=" << k.q << "@in" << k.slotQ << " k=" << k.k << "@in" << k.slotK << " v=" << k.v << "@in" << k.slotV << " g=" << k.g
     << "@in" << k.slotG << " state=" << k.state << "@state" << k.slotState;
  if (phase0) os << " intermediate=" << k.intermediate << ":bf16[tokens][H][" << k.colDim << "]@snapshot0\n";
  else os << " o=" << k.o << "@out" << k.slotO << "\n";
  os << "  gate column " << k.g << "[" << k.colDim << "] (on " << k.state << "'s columns, the read's output dim)\n";
  os << "  scale " << k.scaleText << "\n";
  os << "  epilogue " << (k.epilogue == Epilogue::Softmax ? "softmax over " + k.colDim : std::string("none")) << "\n";
  os << "  warp w: rb = w (sub-chunk rb of the read, rows rb*" << KR << " .. +" << KR << " of " << k.state << "), all " << k.BV << " columns of the tile\n";
  os << "  reg " << k.state << ": f32[" << KR << "][" << k.BV << "] per warp, mma C fragments " << KR / 16 << "x8 of m16n8 (carried across chunks)\n";
  os << "  reg r: f32[16][" << k.BV << "] per warp, mma C fragments 1x8 of m16n8; a row in the 4 lanes of a quad\n";
  for (const SharedBuffer& b : k.shared)
    os << "  smem " << b.name << ": " << b.type << b.shape << " @" << b.offset << " +" << b.bytes << "  // " << b.why << "\n";
  os << "  load " << k.state << " <- initial state (f32, when given) or 0\n";
  os << "  per chunk c {\n";
  os << "    cp.async.wait c; barrier.B1 all " << k.threads() << "  // chunk c landed; chunk c-1's stage and Sb are free\n";
  os << "    cp.async chunk c+1 -> stage (c+1)%2 (16B, zero-fill past the sequence end)\n";
  os << "    store bf16(" << k.state << ") -> Sb\n";
  os << "    prep in place: G = log2 cumsum(" << k.g << ") per sub-chunk + shuffle scan; v~ = v 2^(G_e - G_s); of = 2^(G_t - G_f); m, u, d\n";
  os << "    barrier.B2 all " << k.threads() << "  // prep and Sb visible\n";
  os << "    mma r = q (Sb (.)cols m[rb][0])                 fused: m scales the B fragments\n";
  os << "    mma r += mask(q k_j^T) (v~_j (.)cols m[rb][j+1]) for j <= rb   fused: causal mask on the C fragments, C->A repack\n";
  os << "    r = scale * of (.) r" << (k.epilogue == Epilogue::Softmax ? "; softmax over the quad (shfl.xor 1, 2)" : "") << "\n";
  os << "    store r -> " << (phase0 ? k.intermediate : k.o) << " bf16 from C fragments\n";
  os << "    mma " << k.state << " = " << k.state << " (.)cols d + sum_j k_j^T (v~_j (.)cols u_j)   fused: u, d on fragments\n";
  os << "  }\n";
  os << "  store " << k.state << " -> final state (f32, when given)\n";
  os << "}\n";
}

}  // namespace lina::kir
