#include "codegen/cuda/emit_register_tiles.h"

#include <sstream>

namespace lina::codegen {

namespace {

const char* gateEnum(kir::GateKind g) {
  switch (g) {
    case kir::GateKind::Vector: return "kVector";
    case kir::GateKind::Scalar: return "kScalar";
    case kir::GateKind::HeadConstant: return "kHeadConst";
    case kir::GateKind::None: return "kNone";
  }
  return "kNone";
}

}  // namespace

EmittedKernel emitRegisterTiles(const kir::RegisterTileKernel& k) {
  std::ostringstream os;
  os << "// lina register-tile kernel " << k.name << " of @" << k.program << " (KIR: linac --emit=kir)\n";
  os << "#include \"lina/device/fused_chunk_skeleton.cuh\"\n\n";
  os << "namespace {\n";
  os << "struct Policy_" << k.name << " {\n";
  os << "  static constexpr lina::fc::Gate gate = lina::fc::Gate::" << gateEnum(k.gate) << ";\n";
  os << "  static constexpr int K = " << k.K << ", V = " << k.V << ", BV = " << k.BV << ";\n";
  os << "  static constexpr int kQ = " << k.slotQ << ", kK = " << k.slotK << ", kV = " << k.slotV
     << ", kG = " << (k.slotG < 0 ? 0 : k.slotG) << ", kO = " << k.slotO << ", kState = " << k.slotState << ";\n";
  os << "  // scale = " << k.scaleText << "\n";
  os << "  __device__ static float scale(const lina::KernelParams& p, int h, int H) {\n";
  os << "    (void)p; (void)h; (void)H;\n";
  os << "    return static_cast<float>(" << k.scaleCode << ");\n  }\n";
  if (k.gate == kir::GateKind::HeadConstant) os << "  // log decay = " << k.logDecayText << "\n";
  os << "  __device__ static float head_log_decay(const lina::KernelParams& p, int h, int H) {\n";
  os << "    (void)p; (void)h; (void)H;\n";
  os << "    return static_cast<float>(" << (k.logDecayCode.empty() ? "0.0" : k.logDecayCode) << ");\n  }\n";
  os << "};\n}  // namespace\n\n";
  const char* mode = k.phase == cir::Phase::States ? "kStates" : k.phase == cir::Phase::Outputs ? "kOutputs" : "kWhole";
  const std::string modeArg = std::string("lina::fc::Mode::") + mode;
  os << "static_assert(lina::fc::smem_bytes<Policy_" << k.name << ", " << modeArg << ">() == " << k.sharedBytes
     << ", \"the KIR shared-memory plan and the device template disagree\");\n";
  os << "static_assert(lina::fc::threads<Policy_" << k.name << ">() == " << k.threads() << ", \"block size\");\n\n";
  os << "extern \"C\" __global__ void __launch_bounds__(" << k.threads() << ", " << k.blocksPerSm << ") " << k.name
     << "(const lina::KernelParams p) {\n";
  if (k.phase == cir::Phase::Outputs)  // grid (chunk slots, heads, tiles)
    os << "  lina::fc::fused_chunk_forward<Policy_" << k.name << ", 1, " << modeArg << ">(p, blockIdx.z, blockIdx.y, blockIdx.x);\n";
  else if (k.phase == cir::Phase::States)
    os << "  lina::fc::fused_chunk_forward<Policy_" << k.name << ", 1, " << modeArg << ">(p, blockIdx.x, blockIdx.y, blockIdx.z);\n";
  else
    os << "  lina::fc::fused_chunk_forward<Policy_" << k.name << ">(p, blockIdx.x, blockIdx.y, blockIdx.z);\n";
  os << "}\n";

  EmittedKernel out;
  out.name = k.name;
  out.source = os.str();
  out.threads = k.threads();
  out.tiles = k.tiles();
  out.tiledDim = k.colDim;
  out.tile = k.BV;
  out.chunk = k.chunk;
  out.stages = k.stages;
  out.grid = k.phase == cir::Phase::Outputs ? LaunchGrid{GridAxis::ChunkSlots, GridAxis::Heads, GridAxis::Tiles}
                                            : LaunchGrid{GridAxis::Tiles, GridAxis::Heads, GridAxis::Sequences};
  out.snapshotElementBytes = 2;  // bf16 snapshots (the split strategy's)
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
  return out;
}

}  // namespace lina::codegen
