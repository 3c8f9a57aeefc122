#include "runtime/nvrtc_compiler.h"

#include <nvrtc.h>

#include <chrono>
#include <regex>

#include "codegen/device/device_headers.h"
#include "support/error.h"
#include "support/hash.h"

namespace lina::runtime {

namespace {

void checkNvrtc(nvrtcResult r, const char* call) {
  if (r != NVRTC_SUCCESS) throw Error(std::string(call) + " failed: " + nvrtcGetErrorString(r));
}

bool isValidArch(const std::string& arch) { return std::regex_match(arch, std::regex("sm_[0-9]{2,3}a?")); }

}  // namespace

std::string nvrtcVersion() {
  int major = 0, minor = 0;
  checkNvrtc(::nvrtcVersion(&major, &minor), "nvrtcVersion");
  return std::to_string(major) + "." + std::to_string(minor);
}

std::vector<std::string> compileOptions(const std::string& arch) {
  // No fast math: the fp32 path is checked against the reference at 1e-5.
  return {"--gpu-architecture=" + arch, "--std=c++17", "-default-device", "-DLINA_NVRTC=1"};
}

int64_t sharedMemoryLimitForArch(const std::string& arch) {
  if (arch.rfind("sm_90", 0) == 0 || arch.rfind("sm_10", 0) == 0) return 232448;  // Hopper, Blackwell DC
  if (arch == "sm_80" || arch == "sm_87") return 166912;                            // A100, Orin
  return 101376;                                                                    // sm_86, sm_89, sm_12x
}

const std::string& deviceLibraryHash() {
  static const std::string hash = [] {
    Hasher h;
    for (const device::Header& header : device::headers()) {
      h.add(header.name);
      h.add(header.text);
    }
    return h.hex();
  }();
  return hash;
}

CompileResult compileToCubin(const std::string& source, const std::string& sourceName, const std::string& arch) {
  if (!isValidArch(arch))
    throw Error("--arch: expected an architecture such as sm_80, sm_89 or sm_90a; got '" + arch + "'");
  auto start = std::chrono::steady_clock::now();
  std::vector<const char*> headerTexts, headerNames;
  for (const device::Header& h : device::headers()) {
    headerNames.push_back(h.name);
    headerTexts.push_back(h.text);
  }
  nvrtcProgram program;
  checkNvrtc(nvrtcCreateProgram(&program, source.c_str(), sourceName.c_str(), static_cast<int>(headerTexts.size()),
                                headerTexts.data(), headerNames.data()),
             "nvrtcCreateProgram");
  std::vector<std::string> options = compileOptions(arch);
  std::vector<const char*> optionPtrs;
  for (const std::string& o : options) optionPtrs.push_back(o.c_str());
  nvrtcResult compiled = nvrtcCompileProgram(program, static_cast<int>(optionPtrs.size()), optionPtrs.data());
  size_t logSize = 0;
  nvrtcGetProgramLogSize(program, &logSize);
  std::string log(logSize, '\0');
  if (logSize) nvrtcGetProgramLog(program, log.data());
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  if (compiled != NVRTC_SUCCESS) {
    nvrtcDestroyProgram(&program);
    std::string optionText;
    for (const std::string& o : options) optionText += " " + o;
    throw Error("NVRTC " + nvrtcVersion() + " could not compile " + sourceName + " for " + arch + " (" +
                nvrtcGetErrorString(compiled) + ")\noptions:" + optionText + "\nlog:\n" + log);
  }
  CompileResult result;
  size_t size = 0;
  checkNvrtc(nvrtcGetCUBINSize(program, &size), "nvrtcGetCUBINSize");
  result.cubin.resize(size);
  checkNvrtc(nvrtcGetCUBIN(program, result.cubin.data()), "nvrtcGetCUBIN");
  nvrtcDestroyProgram(&program);
  result.log = std::move(log);
  result.milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace lina::runtime
