#include "runtime/versions.h"

#include "runtime/cuda_driver.h"
#include "runtime/nvrtc_compiler.h"
#include "support/error.h"

namespace lina::runtime {

std::string linaVersion() { return LINA_VERSION; }

Versions versions() {
  Versions v;
  v.lina = linaVersion();
  try {
    v.nvrtc = nvrtcVersion();
  } catch (const Error& e) {
    v.nvrtc = std::string("none (") + e.what() + ")";
  }
  std::string why;
  const cuda::Driver* d = cuda::driver(&why);
  int version = 0;
  if (d && d->cuDriverGetVersion(&version) == CUDA_SUCCESS)
    v.driver = std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
  else
    v.driver = "none (" + (why.empty() ? std::string("cuDriverGetVersion failed") : why) + ")";
  return v;
}

std::string versionLine(const std::string& tool) {
  const Versions v = versions();
  return tool + " " + v.lina + " (NVRTC " + v.nvrtc + ", CUDA driver " + v.driver + ")";
}

}  // namespace lina::runtime
