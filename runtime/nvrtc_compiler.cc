#include "runtime/nvrtc_compiler.h"

#include <nvrtc.h>

#include <chrono>
#include <cstdlib>
#include <regex>
#include <sstream>

#include "codegen/device/device_headers.h"
#include "support/dynamic_library.h"
#include "support/error.h"
#include "support/hash.h"

namespace lina::runtime {

namespace {

// NVRTC is loaded on first use (dlopen), not linked: lina imports and runs its CPU paths where no
// NVRTC is installed, and finds the one a Python wheel ships (nvidia-cuda-nvrtc, torch's) with
// no LD_LIBRARY_PATH. Where: $LINA_NVRTC_LIBRARY alone when set; else libnvrtc.so.13 / .12 in
// each folder of $LINA_NVRTC_SEARCH_PATH (lina/__init__.py fills it from the installed wheels),
// then the loader's path, then the toolkit lina was built against.
struct Nvrtc {
  decltype(&::nvrtcVersion) version = nullptr;
  decltype(&::nvrtcGetErrorString) errorString = nullptr;
  decltype(&::nvrtcCreateProgram) createProgram = nullptr;
  decltype(&::nvrtcCompileProgram) compileProgram = nullptr;
  decltype(&::nvrtcGetProgramLogSize) getProgramLogSize = nullptr;
  decltype(&::nvrtcGetProgramLog) getProgramLog = nullptr;
  decltype(&::nvrtcGetCUBINSize) getCubinSize = nullptr;
  decltype(&::nvrtcGetCUBIN) getCubin = nullptr;
  decltype(&::nvrtcDestroyProgram) destroyProgram = nullptr;
  std::string path, why;
};

const Nvrtc& nvrtc() {
  static const Nvrtc loaded = [] {
    Nvrtc n;
    std::vector<std::string> candidates;
    const char* names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
    const char* explicitPath = std::getenv("LINA_NVRTC_LIBRARY");
    if (explicitPath && *explicitPath) {
      candidates.push_back(explicitPath);
    } else {
      if (const char* search = std::getenv("LINA_NVRTC_SEARCH_PATH")) {
        std::stringstream dirs(search);
        std::string dir;
        while (std::getline(dirs, dir, ':'))
          if (!dir.empty())
            for (const char* name : names) candidates.push_back(dir + "/" + name);
      }
      for (const char* name : names) candidates.push_back(name);
#ifdef LINA_NVRTC_DIR
      for (const char* name : names) candidates.push_back(std::string(LINA_NVRTC_DIR) + "/" + name);
#endif
    }
    const DynamicLibrary lib = openFirst(candidates);
    if (!lib.handle) {
      n.why = explicitPath && *explicitPath
                  ? "NVRTC could not be loaded from LINA_NVRTC_LIBRARY='" + std::string(explicitPath) + "' (" + lib.firstError +
                        "); point it at a libnvrtc.so, or unset it to search the usual places"
                  : "NVRTC (libnvrtc.so.13 or .12) could not be loaded from LINA_NVRTC_SEARCH_PATH, the loader's path or the "
                    "CUDA toolkit lina was built against; install one (pip install nvidia-cuda-nvrtc-cu12, or a CUDA "
                    "toolkit) or set LINA_NVRTC_LIBRARY to its path";
      return n;
    }
    n.path = lib.path;
    auto bind = [&](auto& fn, const char* symbol) { lib.bind(fn, symbol, n.why); };
    bind(n.version, "nvrtcVersion");
    bind(n.errorString, "nvrtcGetErrorString");
    bind(n.createProgram, "nvrtcCreateProgram");
    bind(n.compileProgram, "nvrtcCompileProgram");
    bind(n.getProgramLogSize, "nvrtcGetProgramLogSize");
    bind(n.getProgramLog, "nvrtcGetProgramLog");
    bind(n.getCubinSize, "nvrtcGetCUBINSize");
    bind(n.getCubin, "nvrtcGetCUBIN");
    bind(n.destroyProgram, "nvrtcDestroyProgram");
    return n;
  }();
  if (!loaded.why.empty()) throw Error(loaded.why);
  return loaded;
}

void checkNvrtc(nvrtcResult r, const char* call) {
  if (r != NVRTC_SUCCESS) throw Error(std::string(call) + " failed: " + nvrtc().errorString(r));
}

bool isValidArch(const std::string& arch) { return std::regex_match(arch, std::regex("sm_[0-9]{2,3}a?")); }

}  // namespace

std::string nvrtcVersion() {
  int major = 0, minor = 0;
  checkNvrtc(nvrtc().version(&major, &minor), "nvrtcVersion");
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
  const Nvrtc& api = nvrtc();
  nvrtcProgram program;
  checkNvrtc(api.createProgram(&program, source.c_str(), sourceName.c_str(), static_cast<int>(headerTexts.size()),
                                headerTexts.data(), headerNames.data()),
             "nvrtcCreateProgram");
  std::vector<std::string> options = compileOptions(arch);
  std::vector<const char*> optionPtrs;
  for (const std::string& o : options) optionPtrs.push_back(o.c_str());
  nvrtcResult compiled = api.compileProgram(program, static_cast<int>(optionPtrs.size()), optionPtrs.data());
  size_t logSize = 0;
  api.getProgramLogSize(program, &logSize);
  std::string log(logSize, '\0');
  if (logSize) api.getProgramLog(program, log.data());
  while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  if (compiled != NVRTC_SUCCESS) {
    api.destroyProgram(&program);
    std::string optionText;
    for (const std::string& o : options) optionText += " " + o;
    throw Error("NVRTC " + nvrtcVersion() + " could not compile " + sourceName + " for " + arch + " (" +
                api.errorString(compiled) + ")\noptions:" + optionText + "\nlog:\n" + log);
  }
  CompileResult result;
  size_t size = 0;
  checkNvrtc(api.getCubinSize(program, &size), "nvrtcGetCUBINSize");
  result.cubin.resize(size);
  checkNvrtc(api.getCubin(program, result.cubin.data()), "nvrtcGetCUBIN");
  api.destroyProgram(&program);
  result.log = std::move(log);
  result.milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace lina::runtime
