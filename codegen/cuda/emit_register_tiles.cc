#include "codegen/cuda/emit_register_tiles.h"

#include <sstream>

namespace lina::codegen {

namespace {

// The adjoint options (lina::fc::reverse_of and its siblings), written only where set so the
// forward kernels' sources (and their cache keys) stay as they were.
std::string adjointMembers(const kir::RegisterTileKernel& k) {
  if (!k.reverse && !k.gateShift && !k.stateTransposed && !k.outF32 && !k.initDivScale) return "";
  auto b = [](bool v) { return v ? "true" : "false"; };
  return std::string("  static constexpr bool kReverse = ") + b(k.reverse) + ", kGateShift = " + b(k.gateShift) +
         ", kStateT = " + b(k.stateTransposed) + ", kOutF32 = " + b(k.outF32) + ", kInitDivScale = " + b(k.initDivScale) + ";\n";
}

const char* gateEnum(kir::GateKind g) {
  switch (g) {
    case kir::GateKind::Vector: return "kVector";
    case kir::GateKind::Scalar: return "kScalar";
    case kir::GateKind::HeadConstant: return "kHeadConst";
    case kir::GateKind::None: return "kNone";
  }
  return "kNone";
}

// What the runtime needs besides the source: grid, block, shared memory, parameter order.
EmittedKernel metadata(const kir::RegisterTileKernel& k) {
  EmittedKernel out;
  out.name = k.name;
  out.threads = k.threads();
  out.tiles = k.tiles();
  out.tiledDim = k.colDim;
  out.tile = k.BV;
  out.chunk = k.chunk;
  out.stages = k.stages;
  const bool perSegment = k.part == kir::Part::SegmentLocal || k.part == kir::Part::SegmentOutputs;
  out.grid = {GridAxis::Tiles, GridAxis::Heads, perSegment ? GridAxis::ChunkSlots : GridAxis::Sequences};
  out.segmentChunks = k.segment;
  for (const kir::SharedBuffer& b : k.shared) {
    out.smem.offset[b.name] = b.offset / 4;
    out.smem.size[b.name] = b.bytes / 4;
  }
  out.smem.totalBytes = k.sharedBytes;
  out.inputs = k.inputs;
  out.outputs = k.outputs;
  out.states = k.states;
  out.scalarParams = k.scalarParams;
  out.vectorParams = k.vectorParams;
  out.intermediateBytesPerTokenHead = k.intermediateBytesPerTokenHead();
  return out;
}

// The column-gated phase of a two-phase plan (lina/device/column_gated_chunk.cuh).
std::string columnGatedSource(const kir::RegisterTileKernel& k) {
  std::ostringstream os;
  const std::string policy = "Policy_" + k.name;
  os << "// lina register-tile kernel " << k.name << " of @" << k.program << " (KIR: linac --emit=kir)\n";
  os << "#include \"lina/device/column_gated_chunk.cuh\"\n\n";
  os << "namespace {\n";
  os << "struct " << policy << " {\n";
  os << "  static constexpr int K = " << k.K << ", V = " << k.V << ", M = " << k.BV << ";\n";
  os << "  static constexpr int kQ = " << k.slotQ << ", kK = " << k.slotK << ", kV = " << k.slotV << ", kG = " << k.slotG
     << ", kO = " << k.slotO << ", kState = " << k.slotState << ";\n";
  os << "  static constexpr lina::fc::Epilogue epilogue = lina::fc::Epilogue::"
     << (k.epilogue == kir::Epilogue::Softmax ? "kSoftmax" : "kNone") << ";\n";
  os << adjointMembers(k);
  os << "  // scale = " << k.scaleText << "\n";
  os << "  __device__ static float scale(const lina::KernelParams& p, int h, int H) {\n";
  os << "    (void)p; (void)h; (void)H;\n";
  os << "    return static_cast<float>(" << k.scaleCode << ");\n  }\n";
  os << "};\n}  // namespace\n\n";
  os << "static_assert(lina::fc::column_smem_bytes<" << policy << ">() == " << k.sharedBytes
     << ", \"the KIR shared-memory plan and the device template disagree\");\n\n";
  os << "extern \"C\" __global__ void __launch_bounds__(" << k.threads() << ", " << k.blocksPerSm << ") " << k.name
     << "(const lina::KernelParams p) {\n";
  os << "  lina::fc::column_gated_forward<" << policy << ">(p, blockIdx.x, blockIdx.y, blockIdx.z);\n";
  os << "}\n";
  return os.str();
}

}  // namespace

EmittedKernel emitRegisterTiles(const kir::RegisterTileKernel& k) {
  if (k.columnGate) {
    EmittedKernel out = metadata(k);
    out.source = columnGatedSource(k);
    return out;
  }
  std::ostringstream os;
  os << "// lina register-tile kernel " << k.name << " of @" << k.program << " (KIR: linac --emit=kir)\n";
  os << "#include \"lina/device/fused_chunk_skeleton.cuh\"\n\n";
  os << "namespace {\n";
  os << "struct Policy_" << k.name << " {\n";
  os << "  static constexpr lina::fc::Gate gate = lina::fc::Gate::" << gateEnum(k.gate) << ";\n";
  os << "  static constexpr int K = " << k.K << ", V = " << k.V << ", BV = " << k.BV << ";\n";
  os << "  static constexpr int kQ = " << k.slotQ << ", kK = " << k.slotK << ", kV = " << k.slotV
     << ", kG = " << (k.slotG < 0 ? 0 : k.slotG) << ", kO = " << k.slotO << ", kState = " << k.slotState << ";\n";
  os << adjointMembers(k);
  os << "  // scale = " << k.scaleText << "\n";
  os << "  __device__ static float scale(const lina::KernelParams& p, int h, int H) {\n";
  os << "    (void)p; (void)h; (void)H;\n";
  os << "    return static_cast<float>(" << k.scaleCode << ");\n  }\n";
  if (k.gate == kir::GateKind::HeadConstant) os << "  // log decay = " << k.logDecayText << "\n";
  os << "  __device__ static float head_log_decay(const lina::KernelParams& p, int h, int H) {\n";
  os << "    (void)p; (void)h; (void)H;\n";
  os << "    return static_cast<float>(" << (k.logDecayCode.empty() ? "0.0" : k.logDecayCode) << ");\n  }\n";
  os << "};\n}  // namespace\n\n";
  const std::string policy = "Policy_" + k.name;
  const char* mode = k.part == kir::Part::SegmentLocal ? "kLocal" : k.part == kir::Part::SegmentOutputs ? "kRange" : "kWhole";
  const std::string modeArg = std::string("lina::fc::Mode::") + mode;
  if (k.part != kir::Part::SegmentScan) {
    os << "static_assert(lina::fc::smem_bytes<" << policy << ", " << modeArg << ">() == " << k.sharedBytes
       << ", \"the KIR shared-memory plan and the device template disagree\");\n";
    os << "static_assert(lina::fc::threads<" << policy << ">() == " << k.threads() << ", \"block size\");\n\n";
  }
  os << "extern \"C\" __global__ void __launch_bounds__(" << k.threads() << ", " << k.blocksPerSm << ") " << k.name
     << "(const lina::KernelParams p) {\n";
  if (k.part == kir::Part::SegmentScan)
    os << "  lina::fc::segment_scan<" << policy << ", " << k.segment << ">(p, blockIdx.x, blockIdx.y, blockIdx.z);\n";
  else if (k.part == kir::Part::Whole)
    os << "  lina::fc::fused_chunk_forward<" << policy << ">(p, blockIdx.x, blockIdx.y, blockIdx.z);\n";
  else  // grid (tiles, heads, segment slots)
    os << "  lina::fc::fused_chunk_forward<" << policy << ", 1, " << modeArg << ", " << k.segment
       << ">(p, blockIdx.x, blockIdx.y, blockIdx.z);\n";
  os << "}\n";

  EmittedKernel out = metadata(k);
  out.source = os.str();
  return out;
}

std::vector<EmittedKernel> emitAdjointGlue(const kir::AdjointPlan& plan) {
  const kir::RegisterTileKernel& f = plan.forward;
  std::ostringstream policy;
  policy << "namespace {\n";
  policy << "struct Policy_" << plan.glueName << " {\n";
  policy << "  static constexpr lina::fc::Gate gate = lina::fc::Gate::" << gateEnum(f.gate) << ";\n";
  policy << "  static constexpr int K = " << f.K << ", V = " << f.V << ";\n";
  policy << "  // scale = " << f.scaleText << "\n";
  policy << "  __device__ static float scale(const lina::KernelParams& p, int h, int H) {\n";
  policy << "    (void)p; (void)h; (void)H;\n";
  policy << "    return static_cast<float>(" << f.scaleCode << ");\n  }\n";
  policy << "  __device__ static float head_log_decay(const lina::KernelParams& p, int h, int H) {\n";
  policy << "    (void)p; (void)h; (void)H;\n";
  policy << "    return static_cast<float>(" << (f.logDecayCode.empty() ? "0.0" : f.logDecayCode) << ");\n  }\n";
  policy << "};\n}  // namespace\n\n";
  std::vector<EmittedKernel> out;
  const struct {
    const char *suffix, *function;
    int threads;
  } parts[] = {{"totals", "adjoint_totals", f.K}, {"gate_gradient", "adjoint_gate_gradient", f.K}, {"initial_state", "adjoint_initial_state", 256}};
  for (const auto& part : parts) {
    EmittedKernel k;
    k.name = plan.glueName + "_" + part.suffix + "_k" + std::to_string(f.K) + "_v" + std::to_string(f.V);
    std::ostringstream os;
    os << "// lina register-tile backward glue " << k.name << " of @" << f.program << " (KIR: linac --emit=kir --backward)\n";
    os << "#include \"lina/device/adjoint_glue.cuh\"\n\n" << policy.str();
    os << "extern \"C\" __global__ void __launch_bounds__(" << part.threads << ") " << k.name << "(const lina::KernelParams p) {\n";
    os << "  lina::fc::" << part.function << "<Policy_" << plan.glueName << ">(p, blockIdx.x, blockIdx.y);\n}\n";
    k.source = os.str();
    k.threads = part.threads;
    k.chunk = 64;
    out.push_back(std::move(k));
  }
  return out;
}

}  // namespace lina::codegen
