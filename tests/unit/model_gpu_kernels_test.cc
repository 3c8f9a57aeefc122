// The GPU model runner without a GPU: its kernels (codegen/device/lina/device/model_blocks.cuh)
// compile with NVRTC for sm_80 and sm_90a in every dtype, and
// constructing the runner on a machine without a GPU is a clear error, not a crash.
#include <gtest/gtest.h>

#include <string>

#include "library/model/gpu_model.h"
#include "runtime/cuda_driver.h"
#include "runtime/nvrtc_compiler.h"
#include "support/error.h"

namespace lina::model {
namespace {

TEST(GpuModelKernels, CompileForSm80AndSm90aInEveryDtype) {
  for (const char* dtype : {"bf16", "fp16", "fp32"})
    for (const char* arch : {"sm_80", "sm_90a"}) {
      runtime::CompileResult r;
      ASSERT_NO_THROW(r = runtime::compileToCubin(gpuModelKernelSource(dtype), std::string("model_") + dtype + ".cu", arch))
          << dtype << " " << arch;
      EXPECT_GT(r.cubin.size(), 1000u) << dtype << " " << arch;
    }
}

TEST(GpuModelKernels, UnknownDtypeIsAnError) {
  try {
    gpuModelKernelSource("int8");
    FAIL() << "expected a lina::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected bf16, fp16 or fp32; got 'int8'"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lina::model
