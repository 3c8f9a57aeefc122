// Helpers shared by the GPU tests: skip without a GPU, log a summary line per check (to
// stdout and $LINA_GPU_LOG), describe a problem in one line, and report a check's failures.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "runtime/cuda_driver.h"
#include "runtime/check/forward_check.h"

namespace lina {

inline void requireGpu() {
  std::string why;
  if (!cuda::available(&why)) GTEST_SKIP() << "no GPU: " << why;
}

inline void log(const std::string& line) {
  std::printf("%s\n", line.c_str());
  if (const char* path = std::getenv("LINA_GPU_LOG")) {
    std::ofstream out(path, std::ios::app);
    out << line << '\n';
  }
}

inline std::string describe(const std::string& program, const CheckOptions& o) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-10s %-4s B=%lld T=%-5lld H=%lld K=%lld V=%lld%s", program.c_str(), o.dtype.c_str(),
                static_cast<long long>(o.shape.batch), static_cast<long long>(o.shape.time),
                static_cast<long long>(o.shape.heads), static_cast<long long>(o.shape.dims.at("K")),
                static_cast<long long>(o.shape.dims.at("V")), o.shape.cuSeqlens.empty() ? "" : " varlen");
  return buf;
}

// The entry with the largest error ratio (a non-finite one counts as the largest).
inline const CheckEntry* worstEntry(const CheckReport& r) {
  const CheckEntry* worst = nullptr;
  auto ratio = [](const CheckEntry& e) { return e.finite ? e.ratio : 1e30; };
  for (const CheckEntry& e : r.entries)
    if (!worst || ratio(e) > ratio(*worst)) worst = &e;
  return worst;
}

inline double worstRatio(const CheckReport& r) {
  const CheckEntry* e = worstEntry(r);
  return !e ? 0 : e->finite ? e->ratio : 1e30;
}

// A gtest failure per entry of a failed report, prefixed by `context`; returns 1 if it failed.
inline int reportFailure(const std::string& context, const CheckReport& r) {
  if (r.passed()) return 0;
  for (const CheckEntry& e : r.entries)
    ADD_FAILURE() << context << " " << r.kernel << " " << e.name << ": ratio " << e.ratio << " max-abs " << e.maxAbs
                  << (e.finite ? "" : " non-finite");
  return 1;
}

// A problem of B x T x H with K = V = D (M = 64 slots), random initial states.
inline CheckOptions options(const std::string& dtype, int64_t B, int64_t T, int64_t H, int64_t D, uint64_t seed) {
  CheckOptions o;
  o.dtype = dtype;
  o.shape.batch = B;
  o.shape.time = T;
  o.shape.heads = H;
  o.shape.dims = {{"K", D}, {"V", D}, {"M", 64}};
  o.shape.initialStates = true;
  o.seed = seed;
  return o;
}

}  // namespace lina
