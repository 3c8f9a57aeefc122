// NVRTC compile check of the skeleton (no GPU needed). Run from the repository root:
//   nvcc -std=c++17 bench/skeleton/nvrtc_check.cc -o /tmp/nvrtc_check -lnvrtc && /tmp/nvrtc_check
#include <nvrtc.h>
#include <cstdio>
#include <vector>
int main() {
  const char* src = R"(
#include "lina/device/fused_chunk_skeleton.cuh"
struct P { static constexpr lina::fc::Gate gate = lina::fc::Gate::kVector; static constexpr int K = 128, V = 128, BV = 128;
  static constexpr int kQ = 0, kK = 1, kV = 2, kG = 3, kO = 0, kState = 0;
  __device__ static float scale(const lina::KernelParams&, int, int) { return 0.08838834764831845f; }
  __device__ static float head_log_decay(const lina::KernelParams&, int h, int) { return logf(1.f - exp2f(-5.f - h)); } };
struct R { static constexpr lina::fc::Gate gate = lina::fc::Gate::kHeadConst; static constexpr int K = 64, V = 64, BV = 64;
  static constexpr int kQ = 0, kK = 1, kV = 2, kG = 3, kO = 0, kState = 0;
  __device__ static float scale(const lina::KernelParams& p, int, int) { return p.scalarParams[0]; }
  __device__ static float head_log_decay(const lina::KernelParams&, int h, int) { return logf(1.f - exp2f(-5.f - h)); } };
extern "C" __global__ void __launch_bounds__(256, 1) gla_fwd(const lina::KernelParams p) { lina::fc::fused_chunk_forward<P>(p); }
extern "C" __global__ void __launch_bounds__(128, 1) ret_fwd(const lina::KernelParams p) { lina::fc::fused_chunk_forward<R>(p); }
)";
  int rc = 0;
  for (const char* arch : {"--gpu-architecture=sm_90a", "--gpu-architecture=sm_80"}) {
    nvrtcProgram prog;
    nvrtcCreateProgram(&prog, src, "skel.cu", 0, nullptr, nullptr);
    const char* opts[] = {arch, "-Icodegen/device", "--std=c++17", "-default-device"};
    nvrtcResult r = nvrtcCompileProgram(prog, 4, opts);
    size_t n; nvrtcGetProgramLogSize(prog, &n); std::vector<char> log(n + 1); nvrtcGetProgramLog(prog, log.data());
    size_t cub = 0; if (r == NVRTC_SUCCESS) nvrtcGetCUBINSize(prog, &cub);
    std::printf("%s: %s, cubin %zu bytes\n%s\n", arch, nvrtcGetErrorString(r), cub, log.data());
    rc |= r != NVRTC_SUCCESS;
    nvrtcDestroyProgram(&prog);
  }
  return rc;
}
