// What `--version` reports in every lina tool and in lina.versions(): lina's own version, and
// the NVRTC and CUDA driver it would use here, each as a version or the reason it is missing
// (both are loaded at run time, so a CPU-only machine reports them missing without failing).
#pragma once

#include <string>

namespace lina::runtime {

struct Versions {
  std::string lina;
  std::string nvrtc;   // "13.0", or "none (why)"
  std::string driver;  // "13.0" (the CUDA version the driver supports), or "none (why)"
};

Versions versions();
// lina's version alone (loads nothing).
std::string linaVersion();
// "<tool> 0.1.0 (NVRTC 13.0, CUDA driver 13.0)"
std::string versionLine(const std::string& tool);

}  // namespace lina::runtime
