// lina::Program::forward validates its arguments before touching a GPU: each bad input is a
// lina::Error naming the argument, the expected and the actual value (tested without a GPU).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "support/error.h"
#include "runtime/nvrtc_compiler.h"
#include "runtime/program.h"

namespace lina {
namespace {

ForwardArgs goodGla() {
  static float dummy[1];
  ForwardArgs a;
  a.batch = 2;
  a.time = 16;
  a.heads = 4;
  a.dims = {{"K", 64}, {"V", 64}};
  for (const char* in : {"q", "k", "v", "g"}) a.inputs[in] = dummy;
  a.outputs["o"] = dummy;
  return a;
}

void expectError(const Program& p, const ForwardArgs& a, const std::string& fragment) {
  try {
    p.forward(a);
    FAIL() << "expected an error containing: " << fragment;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(ForwardArgs, BadInputsAreNamedWithExpectedAndActual) {
  Program gla = Program::fromLibrary("gla");
  ForwardArgs a = goodGla();
  a.dtype = "fp8";
  expectError(gla, a, "dtype: expected bf16, fp16 or fp32; got 'fp8'");
  a = goodGla();
  a.batch = 0;
  expectError(gla, a, "shape (B, T, H) = (0, 16, 4) is invalid");
  a = goodGla();
  a.dims.erase("V");
  expectError(gla, a, "dim 'V' needs a size >= 1");
  a = goodGla();
  a.dims["M"] = 64;
  expectError(gla, a, "dims: 'M' is not a dim of @gla");
  a = goodGla();
  a.inputs.erase("g");
  expectError(gla, a, "input 'g' is missing");
  a = goodGla();
  a.inputs["x"] = a.inputs["q"];
  expectError(gla, a, "input 'x' is not declared by @gla");
  a = goodGla();
  a.outputs.clear();
  expectError(gla, a, "output 'o' is missing");
  a = goodGla();
  int cu[3] = {0, 8, 16};
  a.cuSeqlens = cu;
  a.numSequences = 2;
  expectError(gla, a, "cu_seqlens needs batch size 1 (packed sequences); got B = 2");
  a = goodGla();
  a.scalarParams["gamma"] = 1;
  expectError(gla, a, "'gamma' is not a scalar param of @gla");
  a = goodGla();
  a.initialStates["T"] = nullptr;
  expectError(gla, a, "initial state 'T' is not declared by @gla");
}

TEST(ForwardArgs, RequiredVectorParamAndStrategy) {
  Program rwkv6 = Program::fromFile(std::string(LINA_SOURCE_DIR) + "/tests/programs/rwkv6.lina");
  static float dummy[1];
  ForwardArgs a;
  a.batch = 1;
  a.time = 4;
  a.heads = 2;
  a.dims = {{"K", 64}, {"V", 64}};
  for (const char* in : {"r", "k", "v", "w"}) a.inputs[in] = dummy;
  a.outputs["o"] = dummy;
  expectError(rwkv6, a, "param 'u' is missing; expected an fp32 device tensor [2, 64]");
  Program gla = Program::fromLibrary("gla");
  ForwardArgs b = goodGla();
  b.strategy = "sideways";
  EXPECT_THROW((void)gla.chooseConfig(b, 232448), Error);
}

// The tuner's choice between the fused walk and the split strategy, without a GPU: an H100's
// 132 SMs and 227 KB of shared memory.
TEST(ForwardArgs, SplitIsChosenForFewLongWalks) {
  constexpr int64_t kSmem = 232448;
  constexpr int kSms = 132;
  Program gla = Program::fromLibrary("gla");
  ForwardArgs a = goodGla();
  a.dims = {{"K", 128}, {"V", 128}};
  a.batch = 1;
  a.time = 8192;
  a.heads = 4;  // 1 x 4 x 2 tiles = 8 walks on 132 SMs
  a.kernels = "simt";  // the rules among the CIR kernels (the register tiles: RegisterTiles* below)
  EXPECT_EQ(gla.chooseConfig(a, kSmem, kSms).strategy, cir::Strategy::Split);
  EXPECT_EQ(gla.chooseConfig(a, kSmem).strategy, cir::Strategy::Fused) << "no SM count: never split automatically";
  a.batch = 4;
  a.heads = 64;  // 512 walks: enough to fill the GPU
  EXPECT_EQ(gla.chooseConfig(a, kSmem, kSms).strategy, cir::Strategy::Fused);
  a.batch = 1;
  a.heads = 4;
  a.time = 64;  // a short walk: the snapshots would cost more than the parallelism gives
  EXPECT_EQ(gla.chooseConfig(a, kSmem, kSms).strategy, cir::Strategy::Fused);
  a.time = 8192;
  a.layout.reverseTime = true;  // a derived backward pass: kept fused
  EXPECT_EQ(gla.chooseConfig(a, kSmem, kSms).strategy, cir::Strategy::Fused);
  a.layout = {};
  a.strategy = "split";
  a.chunk = 32;
  KernelConfig split = gla.chooseConfig(a, kSmem);
  EXPECT_EQ(split.strategy, cir::Strategy::Split);
  EXPECT_EQ(split.chunk, 32);
  EXPECT_EQ(gla.kernelNames(split, a.dims, "bf16"), "gla_fwd_split_states_c32 + gla_fwd_split_outputs_c32");
  EXPECT_THROW((void)gla.emit(split, a.dims, "bf16"), Error);
  // ceil(8192 / 32) + 1 chunk slots of a [128, 128] fp32 state per head.
  EXPECT_EQ(gla.splitSnapshotBytes(a, 32), static_cast<size_t>(257) * 4 * 128 * 128 * 4);
  // Varlen: the slots are ceil(total / C) + N, whatever the lengths.
  int cu[4] = {0, 5, 5, 70};
  a.cuSeqlens = cu;
  a.numSequences = 3;
  a.time = 70;
  EXPECT_EQ(gla.splitSnapshotBytes(a, 32), static_cast<size_t>(3 + 3) * 4 * 128 * 128 * 4);
  // A program with a running sum (GLA's backward pass B) has no split kernels, and the error says why.
  BackwardArgs backward;
  backward.forward = goodGla();
  ForwardArgs b = gla.backwardPassArgs(backward).second;
  b.strategy = "split";
  try {
    (void)gla.backwardPassB().chooseConfig(b, kSmem, kSms);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot use the split strategy: running_sum"), std::string::npos) << e.what();
  }
}

// Prefetching is taken where it keeps 2 CTAs per SM (GLA, retention), not where its staging
// buffers would leave one (GSA at chunk 16); a forward that can prefetch at chunk 16 takes it.
TEST(ForwardArgs, PrefetchIsTakenWhenItKeepsTheResidentCtas) {
  constexpr int64_t kSmem = 232448;
  ForwardArgs a = goodGla();
  a.dims = {{"K", 128}, {"V", 128}, {"M", 64}};
  a.batch = 4;
  a.time = 4096;
  a.heads = 64;
  a.kernels = "simt";
  auto chosen = [&](const char* name) {
    Program p = Program::fromLibrary(name);
    ForwardArgs b = a;
    if (std::string(name) != "gsa") b.dims.erase("M");
    return p.chooseConfig(b, kSmem, 132);
  };
  KernelConfig gla = chosen("gla"), retention = chosen("retention"), gsa = chosen("gsa");
  EXPECT_EQ(gla.chunk, 16);
  EXPECT_EQ(gla.stages, 2);
  EXPECT_EQ(retention.chunk, 16);
  EXPECT_EQ(retention.stages, 2);
  EXPECT_EQ(gsa.chunk, 16);
  EXPECT_EQ(gsa.stages, 1);
  // The recurrent kernel never prefetches.
  a.time = 1;
  EXPECT_EQ(chosen("gla").strategy, cir::Strategy::Recurrent);
  EXPECT_EQ(chosen("gla").stages, 1);
}

TEST(ForwardArgs, ProgramErrorsCarryTheDiagnostics) {
  try {
    (void)Program::fromSource("bad.lina", "recurrence r {\n  dims K\n  in q[K]\n  state S[K, K]\n}\n");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("bad.lina:4:9: error: state 'S' has the dim 'K' twice"), std::string::npos) << m;
    EXPECT_NE(m.find("^"), std::string::npos) << m;
  }
  EXPECT_THROW((void)Program::fromLibrary("nope"), Error);
  EXPECT_THROW((void)Program::fromFile("/nonexistent/x.lina"), Error);
}

TEST(ForwardArgs, ZeroSequencesLaunchNothing) {
  Program gla = Program::fromLibrary("gla");
  ForwardArgs a = goodGla();
  a.batch = 1;
  int cu[1] = {0};
  a.cuSeqlens = cu;
  a.numSequences = 0;
  EXPECT_NO_THROW(gla.forward(a));  // N = 0: nothing to do, no GPU needed
}

// Program::backward checks its names before touching a GPU, and plans its two passes: pass B
// walks time backwards, reads the per-sequence d(final state) sums, keeps pass A's per-read
// intermediates in fp32 and adds its input gradients to pass A's.
TEST(BackwardArgs, BadNamesAreRejectedAndThePlanIsConsistent) {
  static float dummy[1];
  Program gla = Program::fromLibrary("gla");
  BackwardArgs b;
  b.forward = goodGla();
  auto expectBackwardError = [&](const BackwardArgs& args, const std::string& fragment) {
    try {
      gla.backward(args);
      FAIL() << "expected an error containing: " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  BackwardArgs bad = b;
  bad.outputGrads["y"] = dummy;
  expectBackwardError(bad, "@gla backward: outputGrads: 'y' is not an output of @gla");
  bad = b;
  bad.paramGrads["scale"] = nullptr;
  expectBackwardError(bad, "paramGrads: 'scale' is null");
  bad = b;
  bad.forward.inputs.erase("g");
  expectBackwardError(bad, "input 'g' is missing from BackwardArgs::forward");
  bad = b;
  bad.workspace = dummy;
  bad.workspaceBytes = 1;
  expectBackwardError(bad, "workspace: expected at least");

  for (const char* in : {"q", "k", "v", "g"}) b.inputGrads[in] = dummy;
  b.finalStateGrads["S"] = dummy;
  b.initialStateGrads["S"] = dummy;
  b.paramGrads["scale"] = dummy;
  auto [a, passB] = gla.backwardPassArgs(b);
  EXPECT_FALSE(a.layout.reverseTime);
  EXPECT_TRUE(passB.layout.reverseTime);
  EXPECT_EQ(passB.layout.perSequenceInputs, (std::set<std::string>{"ccol_S", "crow_S"}));
  for (const rir::Decl& in : gla.backwardPassB().recurrence().inputs)
    if (in.name.rfind("x_", 0) == 0 || in.name.rfind("dr_", 0) == 0) {
      EXPECT_TRUE(passB.layout.fp32Tensors.count(in.name) && a.layout.fp32Tensors.count(in.name)) << in.name;
    }
  for (const auto& [name, out] : passB.outputs)
    if (name.rfind("dB_", 0) == 0 && a.outputs.count("dA_" + name.substr(3))) {
      EXPECT_TRUE(passB.layout.accumulateOutputs.count(name)) << name << " must add to pass A's part";
    }
  EXPECT_EQ(passB.initialStates.size(), 1u);  // d(final state) seeds one adjoint state
  EXPECT_GT(gla.backwardWorkspaceBytes(b), static_cast<size_t>(2 * 16 * 4 * 64 * 4));
  // The emitted pass B reads pass A's intermediates as fp32, walks time backwards, and adds to
  // the gradients pass A stored.
  KernelConfig fused{cir::Strategy::Fused, 16, 0, 16};
  std::string source = gla.backwardPassB().emit(fused, passB.dims, "bf16", passB.layout).source;
  if (std::getenv("LINA_DUMP_PASS_B")) std::printf("%s", source.c_str());
  EXPECT_NE(source.find("lina::Rows{bos + len - 1 - c0, -1}"), std::string::npos);
  EXPECT_NE(source.find("lina::Rows{n, 0}"), std::string::npos);
  EXPECT_NE(source.find("static_cast<const float*>"), std::string::npos);
  // The gate gradient's running sum is re-anchored every kAnchorSpacing steps from pass A's
  // snapshots of S before the anchor step's write: pass A stores them (splitting the carry at
  // the anchor step), pass B reads them into the running sum's carry and leaves out that step's
  // write term, and neither needs the final state (no recompute).
  EXPECT_EQ(a.layout.anchorSnapshots, (std::set<std::string>{"S"}));
  ASSERT_EQ(passB.layout.anchoredSums.size(), 1u);
  EXPECT_EQ(passB.layout.anchoredSums.begin()->second.snapshot, "S");
  EXPECT_EQ(passB.layout.anchoredSums.begin()->second.adjointStates, (std::vector<std::string>{"K_S_0"}));
  EXPECT_TRUE(a.snapshotBuffers.count("S") && passB.snapshotBuffers.count("S"));
  EXPECT_NE(source.find("lina::anchor_sum<E_K, E_V, true>"), std::string::npos);
  std::string sourceA = gla.backwardPassA().emit(fused, a.dims, "bf16", a.layout).source;
  EXPECT_NE(sourceA.find("lina::store_decayed_state<E_K, E_V, lina::kVectorGate, lina::kNoGate>(p.snapshots[0], v_S_S, v_anchor_G_g, nullptr"),
            std::string::npos);
  EXPECT_NE(sourceA.find("L, anchor_row);"), std::string::npos);
  EXPECT_NE(source.find(", c0 % lina::kAnchorSpacing == 0);"), std::string::npos);  // the write term left out there
  // Without a saved final state nothing is recomputed: the workspace is the same.
  BackwardArgs saved = b;
  static float finalState;
  saved.finalStates["S"] = &finalState;
  EXPECT_EQ(gla.backwardWorkspaceBytes(saved), gla.backwardWorkspaceBytes(b));
}

// The tuner sizes shared memory with the layout the kernel is launched with: the backward
// passes stage fp32 intermediates (twice the bytes of bf16), and a choice made for the default
// layout once picked prefetching that did not fit (simple GLA's pass B at K = V = 128).
TEST(BackwardArgs, ChosenPassConfigsFitTheirSharedMemory) {
  const int64_t limit = runtime::sharedMemoryLimitForArch("sm_90a");
  for (const char* name : {"gla", "simple_gla", "retention", "gsa"}) {
    Program program = Program::fromLibrary(name);
    for (int64_t D : {64, 128})
      for (const char* dtype : {"bf16", "fp32"})
        for (const char* strategy : {"auto", "fused", "recurrent"}) {
          BackwardArgs b;
          b.forward.dtype = dtype;
          b.forward.batch = 1;
          b.forward.time = 4096;
          b.forward.heads = 1;
          b.forward.strategy = strategy;
          for (const std::string& d : program.recurrence().dims) b.forward.dims[d] = d == "M" ? 64 : D;
          auto [a, passB] = program.backwardPassArgs(b);
          for (auto [pass, args] : {std::pair{&program.backwardPassA(), &a}, std::pair{&program.backwardPassB(), &passB}}) {
            // fp32 passes run chunks <= 32 (their gate gradients' precision); bf16 ones up to 64.
            int largest = 0;
            for (const KernelConfig& c : pass->candidateConfigs(args->dims, dtype, limit, false, args->layout))
              largest = std::max(largest, c.chunk);
            if (std::string(dtype) == "fp32") {
              EXPECT_LE(largest, 32) << pass->recurrence().name << " D=" << D;
            } else if (D == 64 && std::string(name) == "retention") {
              EXPECT_EQ(largest, 64) << pass->recurrence().name;  // bf16 keeps chunk 64 where it fits
            }
            KernelConfig c = pass->chooseConfig(*args, limit);
            for (const codegen::EmittedKernel& k : pass->emitKernels(c, args->dims, dtype, args->layout))
              EXPECT_LE(k.smem.totalBytes, limit) << k.name << " " << dtype << " D=" << D << " stages " << c.stages;
          }
        }
  }
}

// K = V = 256: one CTA cannot hold the state, so the derived passes run in blocks of V (GLA
// is separable in V: each block is an independent problem whose dq, dk, dg add up). Those
// gradients go to fp32 accumulators; dv is written block by block.
TEST(BackwardArgs, WideStatesRunInBlocks) {
  const int64_t limit = runtime::sharedMemoryLimitForArch("sm_90a");
  for (const char* name : {"gla", "simple_gla", "retention"})
    for (const char* dtype : {"bf16", "fp32"}) {
      Program program = Program::fromLibrary(name);
      BackwardArgs b;
      b.forward.dtype = dtype;
      b.forward.batch = 2;
      b.forward.time = 300;
      b.forward.heads = 2;
      b.forward.dims = {{"K", 256}, {"V", 256}};
      static float token;
      for (const rir::Decl& in : program.recurrence().inputs) b.inputGrads[in.name] = &token;
      b.initialStateGrads["S"] = &token;
      b.finalStateGrads["S"] = &token;
      auto [passA, passB] = program.backwardPassesFor(b);
      EXPECT_NE(passA, &program.backwardPassA()) << name;
      auto [a, pb] = program.backwardPassArgs(b);
      EXPECT_EQ(a.tile, 64);
      EXPECT_TRUE(a.layout.oneTilePerLaunch && pb.layout.oneTilePerLaunch);
      EXPECT_TRUE(a.layout.accumulateOutputs.count("dA_q") && a.layout.fp32Tensors.count("dA_q")) << name;
      EXPECT_TRUE(pb.layout.accumulateOutputs.count("dB_k")) << name;
      EXPECT_FALSE(pb.layout.accumulateOutputs.count("dB_v")) << name;  // V-wide: each block its slice
      for (auto [pass, args] : {std::pair{passA, &a}, std::pair{passB, &pb}}) {
        KernelConfig c = pass->chooseConfig(*args, limit);
        EXPECT_EQ(c.tile, 64) << pass->recurrence().name;
        EXPECT_EQ(c.strategy, cir::Strategy::Fused) << pass->recurrence().name << " " << dtype;  // chunked at 64-wide blocks
        for (const codegen::EmittedKernel& k : pass->emitKernels(c, args->dims, dtype, args->layout)) {
          EXPECT_LE(k.smem.totalBytes, limit) << k.name;
          EXPECT_EQ(k.tiles, 4) << k.name;
          EXPECT_NE(k.source.find("const int tile = p.tileBase"), std::string::npos) << k.name;
        }
      }
      // A forward's chunk 64 runs the fp32 backward at chunk 32.
      BackwardArgs chunk64 = b;
      chunk64.forward.chunk = 64;
      EXPECT_EQ(program.backwardPassArgs(chunk64).first.chunk, std::string(dtype) == "fp32" ? 32 : 64);
      // K = V = 128 keeps the unblocked passes.
      b.forward.dims = {{"K", 128}, {"V", 128}};
      EXPECT_EQ(program.backwardPassesFor(b).first, &program.backwardPassA()) << name;
    }
}

// The kernel level: register tiles (KIR) where the program and the request allow them, 128
// columns per CTA unless that leaves SMs idle; everything else keeps the CIR kernels, and asking
// for register tiles where they do not apply names why.
TEST(ForwardArgs, RegisterTilesAreChosenWhereTheyApply) {
  constexpr int64_t kSmem = 232448;
  constexpr int kSms = 132;
  ForwardArgs a = goodGla();
  a.dims = {{"K", 128}, {"V", 128}};
  a.batch = 4;
  a.time = 4096;
  a.heads = 64;
  for (const char* name : {"gla", "simple_gla", "retention"}) {
    Program p = Program::fromLibrary(name);
    KernelConfig c = p.chooseConfig(a, kSmem, kSms);
    EXPECT_TRUE(c.registerTiles) << name;
    EXPECT_EQ(c.chunk, 64) << name;
    EXPECT_EQ(c.tile, 128) << name;
    EXPECT_EQ(c.warps, 8) << name;
    EXPECT_EQ(p.kernelNames(c, a.dims, a.dtype), std::string(name) + "_kir_c64_bv128");
  }
  Program gla = Program::fromLibrary("gla");
  ForwardArgs few = a;
  few.batch = 2;
  few.time = 16384;
  few.heads = 16;  // 64 walks of 64 columns on 132 SMs, 16 segments each: the segmented split
  const KernelConfig fewSplit = gla.chooseConfig(few, kSmem, kSms);
  EXPECT_TRUE(fewSplit.registerTiles);
  EXPECT_EQ(fewSplit.strategy, cir::Strategy::Split) << "few long walks: auto picks the register-tile split";
  EXPECT_EQ(gla.kernelNames(fewSplit, few.dims, few.dtype),
            "gla_kir_segment_local_c64_bv64 + gla_kir_segment_scan_c64 + gla_kir_segment_outputs_c64_bv128");
  ForwardArgs fewShorter = few;
  fewShorter.time = 2048;  // 2 segments per sequence: the fused walk of the narrow tile (one wave)
  const KernelConfig narrow = gla.chooseConfig(fewShorter, kSmem, kSms);
  EXPECT_EQ(narrow.strategy, cir::Strategy::Fused);
  EXPECT_EQ(narrow.tile, 64);
  fewShorter.time = 4096;  // below 4 segments of a row gate's 2048 tokens: still fused
  EXPECT_EQ(gla.chooseConfig(fewShorter, kSmem, kSms).strategy, cir::Strategy::Fused);
  Program sgla = Program::fromLibrary("simple_gla");
  EXPECT_EQ(sgla.chooseConfig(few, kSmem, kSms).strategy, cir::Strategy::Split) << "a row gate at 8 segments per sequence";
  ForwardArgs askFewSplit = few;
  askFewSplit.strategy = "split";
  EXPECT_EQ(gla.kernelNames(gla.chooseConfig(askFewSplit, kSmem, kSms), few.dims, few.dtype),
            "gla_kir_segment_local_c64_bv64 + gla_kir_segment_scan_c64 + gla_kir_segment_outputs_c64_bv128");
  EXPECT_EQ(gla.chooseConfig(few, kSmem).tile, 128) << "no SM count: the wide tile";
  ForwardArgs mid = a;
  mid.batch = 8;
  mid.time = 2048;
  mid.heads = 16;  // 256 CTAs of 64 columns would be two waves: 128 columns
  EXPECT_EQ(gla.chooseConfig(mid, kSmem, kSms).tile, 128);
  EXPECT_EQ(gla.chooseConfig(mid, kSmem, kSms).strategy, cir::Strategy::Fused);
  ForwardArgs shortFew = few;
  shortFew.time = 256;  // 4 chunks per walk: not worth a second launch
  EXPECT_EQ(gla.chooseConfig(shortFew, kSmem, kSms).strategy, cir::Strategy::Fused);
  ForwardArgs askSplit = a;
  askSplit.strategy = "split";
  askSplit.tile = 64;
  EXPECT_EQ(gla.kernelNames(gla.chooseConfig(askSplit, kSmem, kSms), a.dims, a.dtype),
            "gla_kir_segment_local_c64_bv64 + gla_kir_segment_scan_c64 + gla_kir_segment_outputs_c64_bv64");
  // The segmented workspace: fp32 states and decays per 1024-token segment slot.
  const std::vector<size_t> ws = segmentWorkspaceOffsets(gla.recurrence(), few, 1024);
  EXPECT_EQ(ws[1], static_cast<size_t>(2 * 16384 / 1024 + 2) * 16 * 128 * 128 * 4);
  EXPECT_EQ(ws[2] - ws[1], static_cast<size_t>(2 * 16384 / 1024 + 2) * 16 * 128 * 4);
  ForwardArgs simt = a;
  simt.kernels = "simt";
  EXPECT_FALSE(gla.chooseConfig(simt, kSmem, kSms).registerTiles);
  ForwardArgs fp32 = a;
  fp32.dtype = "fp32";
  EXPECT_FALSE(gla.chooseConfig(fp32, kSmem, kSms).registerTiles) << "fp32 stays on the CIR kernels (1e-5 bound)";
  ForwardArgs decode = a;
  decode.time = 1;
  EXPECT_EQ(gla.chooseConfig(decode, kSmem, kSms).strategy, cir::Strategy::Recurrent);
  ForwardArgs chunk16 = a;
  chunk16.chunk = 16;
  EXPECT_FALSE(gla.chooseConfig(chunk16, kSmem, kSms).registerTiles);
  ForwardArgs d64 = a;
  d64.dims = {{"K", 64}, {"V", 64}};
  EXPECT_EQ(gla.chooseConfig(d64, kSmem, kSms).tile, 64);
  EXPECT_TRUE(gla.chooseConfig(d64, kSmem, kSms).registerTiles);
  Program gsa = Program::fromLibrary("gsa");
  ForwardArgs g = a;
  g.dims["M"] = 64;
  // GSA: the two-phase plan (the column-gated key memory with the softmax, then the value memory).
  const KernelConfig gc = gsa.chooseConfig(g, kSmem, kSms);
  EXPECT_TRUE(gc.registerTiles);
  EXPECT_EQ(gsa.kernelNames(gc, g.dims, g.dtype), "gsa_kir_phase0_c64_m64 + gsa_kir_phase1_c64_bv128");
  ForwardArgs g128 = g;
  g128.dims["M"] = 128;
  EXPECT_FALSE(gsa.chooseConfig(g128, kSmem, kSms).registerTiles);

  auto expectError = [&](const Program& p, ForwardArgs b, const std::string& needle) {
    b.kernels = "register";
    try {
      (void)p.chooseConfig(b, kSmem, kSms);
      ADD_FAILURE() << "expected an error containing '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expectError(gla, fp32, "dtype fp32");
  expectError(gsa, g128, "M = 128");
  expectError(gla, chunk16, "chunk 16");
  ForwardArgs d256 = a;
  d256.dims = {{"K", 256}, {"V", 256}};
  expectError(gla, d256, "K = 256");
  ForwardArgs bad = a;
  bad.kernels = "tensor";
  EXPECT_THROW((void)gla.chooseConfig(bad, kSmem, kSms), Error);
}

}  // namespace
}  // namespace lina
