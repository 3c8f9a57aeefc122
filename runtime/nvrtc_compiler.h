// Compiles generated CUDA C++ to a CUBIN for one exact architecture with NVRTC. The device
// library's headers are passed in memory; nothing is read from a CUDA include path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lina::runtime {

struct CompileResult {
  std::vector<char> cubin;
  std::string log;       // NVRTC's log (warnings), possibly empty
  double milliseconds = 0;
};

// "major.minor" of the linked NVRTC.
std::string nvrtcVersion();

// The options lina compiles with for `arch` (e.g. sm_90a, sm_80).
std::vector<std::string> compileOptions(const std::string& arch);

// Throws lina::Error with the NVRTC version, the options and the log when compilation fails.
// `sourceName` names the program in the log (e.g. gla_fwd.cu).
CompileResult compileToCubin(const std::string& source, const std::string& sourceName, const std::string& arch);

// The opt-in shared memory per block (bytes) of an architecture, for planning kernels
// without a GPU (the runtime reads the real limit off the device).
int64_t sharedMemoryLimitForArch(const std::string& arch);

// A checksum of the embedded device library (part of every cache key).
const std::string& deviceLibraryHash();

}  // namespace lina::runtime
