// Shared libraries opened at run time (dlopen) instead of linked: NVRTC and cuBLAS, so that a
// binary starts, and its CPU paths run, where they are not installed. The first candidate that
// opens wins; symbols are bound one by one, the first missing one named.
#pragma once

#include <dlfcn.h>

#include <string>
#include <type_traits>
#include <vector>

namespace lina {

struct DynamicLibrary {
  void* handle = nullptr;  // null: no candidate opened
  std::string path;        // the candidate that opened
  std::string firstError;  // dlerror() of the first candidate, when none opened

  // Binds `fn` to `symbol`; a missing one sets `why` (if still empty) to "<path> lacks <symbol>".
  template <class F>
  void bind(F& fn, const char* symbol, std::string& why) const {
    fn = reinterpret_cast<std::remove_reference_t<F>>(dlsym(handle, symbol));
    if (!fn && why.empty()) why = path + " lacks " + symbol;
  }
};

inline DynamicLibrary openFirst(const std::vector<std::string>& candidates) {
  DynamicLibrary lib;
  for (const std::string& path : candidates) {
    lib.handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib.handle) {
      lib.path = path;
      lib.firstError.clear();
      return lib;
    }
    if (lib.firstError.empty())
      if (const char* e = dlerror()) lib.firstError = e;
  }
  return lib;
}

}  // namespace lina
