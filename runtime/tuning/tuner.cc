#include "runtime/tuning/tuner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>

#include "runtime/check/check_support.h"
#include "runtime/check/forward_check.h"
#include "runtime/cuda_driver.h"
#include "runtime/kernel_cache.h"
#include "runtime/module_loader.h"
#include "runtime/tuning/tuned_config.h"
#include "support/error.h"

namespace lina::tuning {

namespace {

using Clock = std::chrono::steady_clock;
double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Inputs at the real shape, filled on the host by a cheap generator (a normal-ish value per
// element from a 64-bit LCG; gates as logsigmoid / 16, fla's GLA layer): timing only.
struct TimingProblem {
  std::vector<std::unique_ptr<check::DeviceBuffer>> buffers;
  ForwardArgs args;
};

uint16_t bf16Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

TimingProblem makeTimingProblem(const Program& program, const TuneOptions& o) {
  const rir::Recurrence& rec = program.recurrence();
  const cuda::Driver* d = cuda::driver();
  TimingProblem t;
  ForwardArgs& a = t.args;
  a = o.shape;
  a.inputs.clear();
  a.outputs.clear();
  a.initialStates.clear();
  a.finalStates.clear();
  const int64_t tokens = o.cuSeqlens.empty() ? a.batch * a.time : o.cuSeqlens.back();
  const size_t width = a.dtype == "fp32" ? 4 : 2;
  uint64_t state = 0x9e3779b97f4a7c15ULL;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    // The sum of four bytes, centred: close enough to N(0, 1) for timing.
    const uint64_t x = state >> 16;
    const int s = static_cast<int>(x & 255) + static_cast<int>((x >> 8) & 255) +
                  static_cast<int>((x >> 16) & 255) + static_cast<int>((x >> 24) & 255);
    return (static_cast<float>(s) - 510.f) / 147.8f;
  };
  auto alloc = [&](size_t bytes) {
    t.buffers.push_back(std::make_unique<check::DeviceBuffer>(std::max<size_t>(bytes, 16)));
    return t.buffers.back().get();
  };
  for (const rir::Decl& in : rec.inputs) {
    const int64_t n = tokens * (in.shape.empty() ? 1 : a.dims.at(in.shape[0]));
    std::vector<char> host(static_cast<size_t>(n) * width);
    for (int64_t i = 0; i < n; ++i) {
      float x = next();
      if (in.isGate) x = -std::log1p(std::exp(-x)) / 16.f;
      if (width == 4)
        std::memcpy(host.data() + i * 4, &x, 4);
      else {
        const uint16_t h = a.dtype == "fp16" ? toFp16(x) : bf16Bits(x);
        std::memcpy(host.data() + i * 2, &h, 2);
      }
    }
    check::DeviceBuffer* b = alloc(host.size());
    cuda::check(d->cuMemcpyHtoD(b->ptr, host.data(), host.size()), "cuMemcpyHtoD");
    a.inputs[in.name] = b->get();
  }
  for (const rir::Decl& out : rec.outputs)
    a.outputs[out.name] =
        alloc(static_cast<size_t>(tokens * (out.shape.empty() ? 1 : a.dims.at(out.shape[0]))) *
              width)
            ->get();
  for (const rir::Decl& prm : rec.params) {
    if (prm.shape.empty()) continue;
    std::vector<float> v(static_cast<size_t>(a.heads * a.dims.at(prm.shape[0])), 0.5f);
    check::DeviceBuffer* b = alloc(v.size() * 4);
    cuda::check(d->cuMemcpyHtoD(b->ptr, v.data(), v.size() * 4), "cuMemcpyHtoD");
    a.vectorParams[prm.name] = static_cast<const float*>(b->get());
  }
  if (!o.cuSeqlens.empty()) {
    std::vector<int32_t> offsets(o.cuSeqlens.begin(), o.cuSeqlens.end());
    check::DeviceBuffer* b = alloc(offsets.size() * 4);
    cuda::check(d->cuMemcpyHtoD(b->ptr, offsets.data(), offsets.size() * 4), "cuMemcpyHtoD");
    a.cuSeqlens = b->get();
    a.cuSeqlens64 = false;
    a.numSequences = static_cast<int64_t>(o.cuSeqlens.size()) - 1;
    a.batch = 1;
    a.time = tokens;
  }
  return t;
}

// Median of `reps` timed launches, each after a write over a buffer larger than the L2 (so
// every run reads its inputs from HBM, as a layer in a model does).
double timeLaunch(const Program& program, const ForwardArgs& args, int reps,
                  check::DeviceBuffer& flush,
                  const std::function<void(const ForwardArgs&)>& afterLaunch) {
  const cuda::Driver* d = cuda::driver();
  CUevent start, stop;
  cuda::check(d->cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  cuda::check(d->cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  std::vector<float> times;
  try {
    for (int i = 0; i < 2; ++i) program.forward(args);
    for (int i = 0; i < reps; ++i) {
      cuda::check(
          d->cuMemsetD8Async(flush.ptr, static_cast<unsigned char>(i), flush.bytes, args.stream),
          "cuMemsetD8Async");
      cuda::check(d->cuEventRecord(start, args.stream), "cuEventRecord");
      program.forward(args);
      if (afterLaunch) afterLaunch(args);
      cuda::check(d->cuEventRecord(stop, args.stream), "cuEventRecord");
      cuda::check(d->cuEventSynchronize(stop), "cuEventSynchronize");
      float ms = 0;
      cuda::check(d->cuEventElapsedTime(&ms, start, stop), "cuEventElapsedTime");
      times.push_back(ms);
    }
  } catch (...) {
    d->cuEventDestroy(start);
    d->cuEventDestroy(stop);
    throw;
  }
  d->cuEventDestroy(start);
  d->cuEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

std::string configText(const KernelConfig& c) {
  return std::string(cir::strategyName(c.strategy)) + " chunk " + std::to_string(c.chunk) +
         " tile " + std::to_string(c.tile) + " warps " + std::to_string(c.warps) + " stages " +
         std::to_string(c.stages) + (c.registerTiles ? " register" : " simt");
}

}  // namespace

TuneResult tune(const Program& program, const TuneOptions& o) {
  const Clock::time_point wall = Clock::now();
  std::string why;
  if (!cuda::available(&why)) throw Error("tune needs a GPU: " + why);
  cuda::useDevice(o.device);
  const cuda::DeviceInfo info = runtime::cachedDeviceInfo(o.device);
  const rir::Recurrence& rec = program.recurrence();
  auto progress = o.progress ? o.progress : [](const std::string& line) {
    std::cerr << "\r\033[K" << line << std::flush;
  };

  TuneResult result;
  ForwardArgs keyArgs = o.shape;
  if (!o.cuSeqlens.empty()) {
    keyArgs.cuSeqlens = &o.cuSeqlens;  // any non-null pointer: the bucket is varlen
    keyArgs.time = o.cuSeqlens.back();
    keyArgs.batch = 1;
  }
  result.key = keyFor(rec, keyArgs);

  // Candidates: every configuration that fits the device's shared memory, every tile size.
  std::vector<TuneCandidate> candidates;
  for (const KernelConfig& c :
       program.candidateConfigs(o.shape.dims, o.shape.dtype, info.maxSharedPerBlockOptin, true))
    candidates.push_back({c, {}, ""});
  for (const TuneCandidate& c : o.extraCandidates) candidates.push_back(c);
  std::vector<CandidateResult>& rs = result.candidates;
  for (const TuneCandidate& c : candidates) {
    CandidateResult r;
    r.candidate = c;
    try {
      r.kernels = program.kernelNames(c.config, o.shape.dims, o.shape.dtype);
    } catch (const Error& e) {
      r.rejected = std::string("pruned: ") + e.what();
    }
    if (r.candidate.label.empty())
      r.candidate.label = r.kernels + " (" + configText(c.config) + ")";
    rs.push_back(std::move(r));
  }
  const size_t n = rs.size();
  auto status = [&](const std::string& stage) {
    int checked = 0;
    for (const CandidateResult& r : rs) checked += r.checked;
    std::string best =
        result.best ? rs[*result.best].kernels + " " + std::to_string(rs[*result.best].ms) + " ms"
                    : "-";
    progress("tune @" + rec.name + " " + result.key.bucket.text() + ": " + stage + " | compiled " +
             std::to_string(result.compiled) + "/" + std::to_string(n) + " checked " +
             std::to_string(checked) + " timed " + std::to_string(result.timed) + " | best " +
             best);
  };

  // Compile in parallel: the NVRTC compiles land in the kernel cache, so the loads below and
  // the launches are cache hits. A compile error prunes the candidate.
  {
    std::atomic<size_t> nextIndex{0};
    std::mutex m;
    const int jobs = o.jobs > 0 ? o.jobs : std::max(1u, std::thread::hardware_concurrency());
    std::vector<std::thread> pool;
    for (int j = 0; j < std::min<int>(jobs, static_cast<int>(n)); ++j)
      pool.emplace_back([&] {
        for (size_t i; (i = nextIndex++) < n;) {
          if (!rs[i].rejected.empty()) continue;
          const Clock::time_point t = Clock::now();
          std::string error;
          try {
            for (const codegen::EmittedKernel& k :
                 program.emitKernels(rs[i].candidate.config, o.shape.dims, o.shape.dtype))
              (void)runtime::KernelCache::global().cubin(k.source, k.name, info.arch);
          } catch (const std::exception& e) {
            error = e.what();
          }
          std::lock_guard<std::mutex> lock(m);
          rs[i].compileMs = msSince(t);
          if (!error.empty())
            rs[i].rejected = "compile: " + error;
          else
            ++result.compiled;
          status("compiling");
        }
      });
    for (std::thread& t : pool) t.join();
  }

  // Check on a probe problem (T not a multiple of any chunk, two sequences, two heads; the real
  // dims and dtype) against the reference interpreter.
  {
    CheckOptions probe;
    probe.shape.batch = o.cuSeqlens.empty() ? 2 : 1;
    probe.shape.time = 300;
    probe.shape.heads = 2;
    probe.shape.dims = o.shape.dims;
    if (!o.cuSeqlens.empty()) probe.shape.cuSeqlens = {0, 37, 300};
    probe.dtype = o.shape.dtype;
    probe.seed = 1234;
    probe.device = o.device;
    probe.exactConfigs = true;
    std::vector<KernelConfig> configs;
    std::vector<size_t> index;
    for (size_t i = 0; i < n; ++i)
      if (rs[i].rejected.empty()) {
        configs.push_back(rs[i].candidate.config);
        probe.afterLaunch.push_back(rs[i].candidate.afterLaunch);
        index.push_back(i);
      }
    // One candidate at a time, so that a launch error rejects that candidate only.
    for (size_t j = 0; j < configs.size(); ++j) {
      CandidateResult& r = rs[index[j]];
      CheckOptions one = probe;
      one.afterLaunch = {probe.afterLaunch[j]};
      try {
        const CheckReport report = checkForwardConfigs(program, one, {configs[j]}).front();
        r.checked = true;
        r.passed = report.passed();
        for (const CheckEntry& e : report.entries)
          r.checkRatio = std::max(r.checkRatio, e.finite ? e.ratio : INFINITY);
        if (!r.passed) {
          char text[160];
          std::snprintf(text, sizeof text, "check: error ratio %.3g > %.0e against the reference",
                        r.checkRatio, report.tolerance);
          r.rejected = text;
          ++result.rejectedByCheck;
        }
      } catch (const std::exception& e) {
        r.checked = true;
        r.rejected = std::string("check: ") + e.what();
        ++result.rejectedByCheck;
      }
      status("checking");
    }
  }

  // Time the survivors at the real shape, and the heuristic's choice in the same run.
  {
    TimingProblem problem = makeTimingProblem(program, o);
    check::DeviceBuffer flush(256u << 20);
    for (size_t i = 0; i < n; ++i) {
      CandidateResult& r = rs[i];
      if (!r.rejected.empty()) continue;
      ForwardArgs a = problem.args;
      a.config = r.candidate.config;
      try {
        r.ms = timeLaunch(program, a, o.reps, flush, r.candidate.afterLaunch);
        ++result.timed;
        if (!result.best || r.ms < rs[*result.best].ms) result.best = i;
      } catch (const std::exception& e) {
        r.rejected = std::string("timing: ") + e.what();
      }
      status("timing");
    }
    ForwardArgs heuristic = problem.args;
    heuristic.kernels = "auto";
    const char* saved = std::getenv("LINA_TUNE");
    std::string savedValue = saved ? saved : "";
    setenv("LINA_TUNE", "0", 1);  // the rules alone, not a database entry
    try {
      const KernelConfig c =
          program.chooseConfig(heuristic, info.maxSharedPerBlockOptin, info.multiprocessors);
      result.heuristicKernels = program.kernelNames(c, o.shape.dims, o.shape.dtype);
      result.heuristicMs = timeLaunch(program, heuristic, o.reps, flush, {});
    } catch (const std::exception& e) {
      result.heuristicKernels = std::string("(failed: ") + e.what() + ")";
    }
    if (saved)
      setenv("LINA_TUNE", savedValue.c_str(), 1);
    else
      unsetenv("LINA_TUNE");
  }
  const cuda::Driver* d = cuda::driver();
  cuda::check(d->cuCtxSynchronize(), "cuCtxSynchronize", "after tuning");

  if (result.best && o.record) {
    result.databasePath = o.databasePath.empty() ? databasePath(info) : o.databasePath;
    const size_t slash = result.databasePath.rfind('/');
    if (slash != std::string::npos) {
      std::error_code ec;
      std::filesystem::create_directories(result.databasePath.substr(0, slash), ec);
    }
    TuningDatabase(result.databasePath)
        .record(result.key, {rs[*result.best].candidate.config, rs[*result.best].ms});
  }
  result.wallMs = msSince(wall);
  status("done");
  progress("\n");
  return result;
}

namespace {

std::optional<KernelConfig> tuneOnMiss(const Program& program, const ForwardArgs& args,
                                       const cuda::DeviceInfo& device, std::string* why) {
  TuneOptions t;
  t.shape.dtype = args.dtype;
  t.shape.batch = args.batch;
  t.shape.time = args.time;
  t.shape.heads = args.heads;
  t.shape.dims = args.dims;
  t.device = device.ordinal;
  t.reps = 10;
  if (args.cuSeqlens) {  // the offsets to the host: the tuner builds its own problem from them
    const cuda::Driver* d = cuda::driver();
    std::vector<int32_t> offsets(static_cast<size_t>(args.numSequences) + 1);
    cuda::check(d->cuStreamSynchronize(args.stream), "cuStreamSynchronize",
                "LINA_TUNE=1 reading cu_seqlens");
    cuda::check(d->cuMemcpyDtoH(offsets.data(), reinterpret_cast<CUdeviceptr>(args.cuSeqlens),
                                offsets.size() * sizeof(int32_t)),
                "cuMemcpyDtoH", "LINA_TUNE=1 reading cu_seqlens");
    t.cuSeqlens.assign(offsets.begin(), offsets.end());
  }
  std::fprintf(stderr, "lina: LINA_TUNE=1: tuning @%s %s %s on %s (once; recorded in %s)\n",
               program.recurrence().name.c_str(), args.dtype.c_str(), bucketOf(args).text().c_str(),
               device.name.c_str(), databasePath(device).c_str());
  const TuneResult r = tune(program, t);
  if (!r.best) {
    if (why) *why = "LINA_TUNE=1: no candidate passed the check: the heuristic";
    return std::nullopt;
  }
  if (why) *why = "LINA_TUNE=1: tuned now (" + r.databasePath + ")";
  return r.candidates[*r.best].candidate.config;
}

}  // namespace

void installTuneOnMiss() {
  setTuneOnMissHook(&tuneOnMiss);
}

std::string reportTable(const TuneResult& r) {
  std::string out = "| candidate | ms | check error | status |\n|---|---|---|---|\n";
  char line[512];
  for (size_t i = 0; i < r.candidates.size(); ++i) {
    const CandidateResult& c = r.candidates[i];
    std::string ms = std::isfinite(c.ms) ? std::to_string(c.ms) : "inf";
    std::string err = c.checked ? std::to_string(c.checkRatio) : "-";
    std::string state = r.best && *r.best == i ? "best" : c.rejected.empty() ? "timed" : c.rejected;
    std::snprintf(line, sizeof line, "| %s | %s | %s | %s |\n", c.candidate.label.c_str(),
                  ms.c_str(), err.c_str(), state.c_str());
    out += line;
  }
  std::snprintf(line, sizeof line,
                "heuristic: %s %.4f ms; candidates %zu, compiled %d, rejected by the check %d, "
                "timed %d; wall %.1f s\n",
                r.heuristicKernels.c_str(), r.heuristicMs, r.candidates.size(), r.compiled,
                r.rejectedByCheck, r.timed, r.wallMs / 1000);
  out += line;
  return out;
}

}  // namespace lina::tuning
