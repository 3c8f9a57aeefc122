// linac and the runtime make kernels through the same pipeline call: for the same request,
// `linac --emit=cuda` prints exactly the CUDA the runtime would launch, forward and backward
// (both derived passes, as Program::backward lays them out), and `--emit=cir` the CIR kernels
// of that request.
#include <gtest/gtest.h>

#include <sstream>

#include "compiler/pipeline/pipeline.h"
#include "library/library.h"
#include "runtime/nvrtc_compiler.h"
#include "runtime/program.h"
#include "tools/linac/driver.h"

namespace lina {
namespace {

struct Request {
  const char* program;
  std::map<std::string, int64_t> dims;
  std::string dtype, strategy;
  int chunk;
};

std::string linacOutput(const Request& r, std::vector<std::string> extra) {
  const library::Program* p = library::find(r.program);
  std::string dims;
  for (const auto& [d, n] : r.dims) dims += (dims.empty() ? "" : ",") + d + "=" + std::to_string(n);
  std::vector<std::string> args = {"--emit=cuda", "--dims", dims, "--dtype", r.dtype, "--strategy", r.strategy,
                                   "--chunk", std::to_string(r.chunk), "--arch", "sm_90a"};
  args.insert(args.end(), extra.begin(), extra.end());
  std::ostringstream out, err;
  EXPECT_EQ(linac::runOnSource(p->path, p->source, args, out, err), 0) << err.str();
  return out.str();
}

ForwardArgs argsOf(const Request& r) {
  ForwardArgs a;
  a.dims = r.dims;
  a.dtype = r.dtype;
  a.strategy = r.strategy;
  a.chunk = r.chunk;
  a.time = 4096;  // linac's default --shape 1,4096,1
  return a;
}

std::string sources(const std::vector<codegen::EmittedKernel>& kernels) {
  std::string s;
  for (const codegen::EmittedKernel& k : kernels) s += k.source;
  return s;
}

const std::vector<Request> kRequests = {
    {"gla", {{"K", 64}, {"V", 64}}, "bf16", "auto", 0},
    {"gla", {{"K", 128}, {"V", 128}}, "fp32", "fused", 16},
    {"gla", {{"K", 256}, {"V", 256}}, "bf16", "auto", 0},  // the backward's blocked passes
    {"retention", {{"K", 128}, {"V", 128}}, "bf16", "split", 0},
    {"gsa", {{"K", 64}, {"V", 64}, {"M", 32}}, "fp16", "recurrent", 0},
};

TEST(OnePipeline, LinacPrintsTheForwardKernelsTheRuntimeLaunches) {
  const int64_t smem = runtime::sharedMemoryLimitForArch("sm_90a");
  for (const Request& r : kRequests) {
    SCOPED_TRACE(std::string(r.program) + " " + r.dtype + " " + r.strategy);
    Program program = Program::fromLibrary(r.program);
    const std::string expected = sources(program.kernelsFor(argsOf(r), smem));
    ASSERT_FALSE(expected.empty());
    EXPECT_EQ(linacOutput(r, {}), expected);
  }
}

TEST(OnePipeline, LinacPrintsTheBackwardPassesAsTheRuntimeLaysThemOut) {
  const int64_t smem = runtime::sharedMemoryLimitForArch("sm_90a");
  for (const Request& r : kRequests) {
    if (std::string(r.strategy) == "split") continue;  // the backward runs fused or recurrent passes
    SCOPED_TRACE(std::string(r.program) + " " + r.dtype + " " + r.strategy);
    Program program = Program::fromLibrary(r.program);
    BackwardArgs b;
    b.forward = argsOf(r);
    b.forward.kernels = "simt";  // the derived passes (bf16 takes the register-tile backward otherwise)
    auto [a, passB] = program.backwardKernelsFor(b, smem);
    const std::string expected = "// ----- pass A of @" + std::string(r.program) + " -----\n" + sources(a) +
                                 "// ----- pass B of @" + std::string(r.program) + " -----\n" + sources(passB);
    const std::string printed = linacOutput(r, {"--backward", "--kernels=simt"});
    EXPECT_EQ(printed, expected);
    // The passes carry the backward's layout (precise products, reversed time for pass B).
    EXPECT_NE(printed.find("// Layout: forward/precise"), std::string::npos);
    EXPECT_NE(printed.find("// Layout: reverse/precise"), std::string::npos);
  }
}

TEST(OnePipeline, LinacPrintsTheCirKernelsOfTheSameRequest) {
  const int64_t smem = runtime::sharedMemoryLimitForArch("sm_90a");
  const Request r = kRequests[3];  // split: two kernels (the CIR ones: kernels simt)
  Program program = Program::fromLibrary(r.program);
  ForwardArgs a = argsOf(r);
  a.kernels = "simt";
  const KernelRequest request = program.requestFor(a, smem);
  std::ostringstream expected;
  for (const cir::Kernel& k : lowerToKernels(program.recurrence(), request))
    printSpecializedKernel(expected, k, request.specialization());
  std::string printed = linacOutput(r, {"--emit=cir", "--kernels=simt"});
  EXPECT_EQ(printed, expected.str());
  EXPECT_NE(printed.find("phase=states"), std::string::npos);
  EXPECT_NE(printed.find("phase=outputs"), std::string::npos);
}

// Where the runtime launches register tiles, linac --emit=kir prints those kernels' KIR, the
// same ones (names, count) that kernelsFor emits.
TEST(OnePipeline, LinacPrintsTheKirOfTheRegisterTileKernelsTheRuntimeLaunches) {
  const int64_t smem = runtime::sharedMemoryLimitForArch("sm_90a");
  for (const char* strategy : {"auto", "split"}) {
    const Request r = {"retention", {{"K", 128}, {"V", 128}}, "bf16", strategy, 0};
    Program program = Program::fromLibrary(r.program);
    const std::vector<codegen::EmittedKernel> kernels = program.kernelsFor(argsOf(r), smem);
    const std::string printed = linacOutput(r, {"--emit=kir"});
    size_t count = 0;
    for (size_t at = printed.find("kir.kernel @"); at != std::string::npos; at = printed.find("kir.kernel @", at + 1)) ++count;
    EXPECT_EQ(count, kernels.size()) << strategy;
    for (const codegen::EmittedKernel& k : kernels)
      EXPECT_NE(printed.find("kir.kernel @" + k.name + " "), std::string::npos) << k.name << "\n" << printed;
  }
}

}  // namespace
}  // namespace lina
