#include "runtime/cpu/llvm_backend.h"

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/Support/MemoryBuffer.h>
#include <llvm/IR/Module.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/Host.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "codegen/llvm/emit_llvm.h"
#include "compiler/cir/lower.h"
#include "compiler/cir/printer.h"
#include "compiler/reference/derived_backward.h"
#include "runtime/kernel_cache.h"
#include "support/error.h"
#include "support/hash.h"

namespace lina::cpu {

namespace {

using KernelFn = void (*)(void**);

struct Compiled {
  KernelFn fn = nullptr;
  codegen::LlvmKernelLayout layout;
};

std::string errorText(llvm::Error e) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << e;
  return os.str();
}

// The host's target machine, and one LLJIT for the process (kernels get unique symbol names).
class Jit {
 public:
  static Jit& get() {
    static Jit jit;
    return jit;
  }

  // Sets the module's target and runs the O3 pipeline for the host CPU.
  void optimise(llvm::Module& m) {
    m.setDataLayout(machine_->createDataLayout());
    m.setTargetTriple(machine_->getTargetTriple().str());
    for (llvm::Function& f : m) {
      f.addFnAttr("target-cpu", machine_->getTargetCPU());
      f.addFnAttr("target-features", machine_->getTargetFeatureString());
    }
    llvm::LoopAnalysisManager lam;
    llvm::FunctionAnalysisManager fam;
    llvm::CGSCCAnalysisManager cgam;
    llvm::ModuleAnalysisManager mam;
    llvm::PassBuilder pb(machine_.get());
    pb.registerModuleAnalyses(mam);
    pb.registerCGSCCAnalyses(cgam);
    pb.registerFunctionAnalyses(fam);
    pb.registerLoopAnalyses(lam);
    pb.crossRegisterProxies(lam, fam, cgam, mam);
    pb.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3).run(m, mam);
  }

  // The optimised module as an object file for the host (what the disk cache stores).
  std::vector<char> objectFile(llvm::Module& m) {
    llvm::SmallVector<char, 0> buffer;
    llvm::raw_svector_ostream os(buffer);
    llvm::legacy::PassManager pm;
    if (machine_->addPassesToEmitFile(pm, os, nullptr, llvm::CGFT_ObjectFile))
      throw Error("LLVM backend: the host's target machine cannot emit object files");
    pm.run(m);
    return std::vector<char>(buffer.begin(), buffer.end());
  }

  KernelFn addObject(const std::vector<char>& object, const std::string& symbol) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto buffer = llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(object.data(), object.size()), symbol);
    if (llvm::Error e = jit_->addObjectFile(std::move(buffer)))
      throw Error("LLVM backend: cannot load kernel " + symbol + ": " + errorText(std::move(e)));
    auto address = jit_->lookup(symbol);
    if (!address) throw Error("LLVM backend: kernel " + symbol + " not found in its object: " + errorText(address.takeError()));
    return reinterpret_cast<KernelFn>(address->getAddress());
  }

  std::string features() const { return machine_->getTargetFeatureString().str(); }

  const std::string& cpu() const { return cpu_; }

 private:
  Jit() {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
    auto jtmb = llvm::orc::JITTargetMachineBuilder::detectHost();
    if (!jtmb) throw Error("LLVM backend: cannot describe the host CPU: " + errorText(jtmb.takeError()));
    jtmb->setCodeGenOptLevel(llvm::CodeGenOpt::Aggressive);
    auto machine = jtmb->createTargetMachine();
    if (!machine) throw Error("LLVM backend: no target machine for the host: " + errorText(machine.takeError()));
    machine_ = std::move(*machine);
    cpu_ = machine_->getTargetCPU().str();
    auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(std::move(*jtmb)).create();
    if (!jit) throw Error("LLVM backend: cannot start ORC LLJIT: " + errorText(jit.takeError()));
    jit_ = std::move(*jit);
    // libm's expf / logf / powf for the intrinsics the optimiser leaves as calls.
    auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(jit_->getDataLayout().getGlobalPrefix());
    if (!process) throw Error("LLVM backend: cannot resolve the process's symbols: " + errorText(process.takeError()));
    jit_->getMainJITDylib().addGenerator(std::move(*process));
  }

  std::unique_ptr<llvm::TargetMachine> machine_;
  std::unique_ptr<llvm::orc::LLJIT> jit_;
  std::string cpu_;
  std::mutex mutex_;
};

std::string cacheKey(const cir::Kernel& kernel, const std::map<std::string, int64_t>& dims) {
  std::ostringstream os;
  cir::print(os, kernel);
  for (const auto& [d, n] : dims) os << d << "=" << n << ";";
  return os.str();
}

// A compiled kernel: from the process's table, else the disk cache's object file (key: the CIR
// text, the dims, LLVM's version and the host CPU with its features), else emitted, optimised and
// compiled now. A corrupt disk entry fails its checksum and is rebuilt (runtime/kernel_cache.h).
const Compiled& compile(const cir::Kernel& kernel, const std::map<std::string, int64_t>& dims) {
  static std::mutex mutex;
  static std::map<std::string, std::unique_ptr<Compiled>> cache;
  const std::string text = cacheKey(kernel, dims);
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(text);
  if (it != cache.end()) return *it->second;
  Jit& jit = Jit::get();
  const std::string hash = Hasher().add(text).add(LLVM_VERSION_STRING).add(jit.cpu()).add(jit.features()).add("cpu-backend-1").hex();
  cir::Kernel named = kernel;
  named.name = "lina_cpu_" + hash;  // stable: the cached object defines this symbol
  auto compiled = std::make_unique<Compiled>();
  {
    llvm::LLVMContext layoutOnly;  // the argument layout, without optimising (cheap)
    (void)codegen::emitLlvmKernel(named, dims, layoutOnly, compiled->layout);
  }
  std::vector<char> object = runtime::KernelCache::global().artifact("cpu-" + hash, [&] {
    llvm::LLVMContext ctx;
    codegen::LlvmKernelLayout layout;
    std::unique_ptr<llvm::Module> m = codegen::emitLlvmKernel(named, dims, ctx, layout);
    jit.optimise(*m);
    return jit.objectFile(*m);
  });
  compiled->fn = jit.addObject(object, named.name);
  return *(cache[text] = std::move(compiled));
}

std::vector<float> toFloat(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace

bool llvmAvailable() { return true; }

std::string hostCpu() { return Jit::get().cpu(); }

std::string llvmModuleText(const cir::Kernel& kernel, const std::map<std::string, int64_t>& dims, bool optimised) {
  llvm::LLVMContext ctx;
  codegen::LlvmKernelLayout layout;
  std::unique_ptr<llvm::Module> m = codegen::emitLlvmKernel(kernel, dims, ctx, layout);
  if (optimised) Jit::get().optimise(*m);
  std::string text;
  llvm::raw_string_ostream os(text);
  m->print(os, nullptr);
  return os.str();
}

void runKernelFp32(const cir::Kernel& kernel, const Fp32Problem& p, int threads) {
  const Compiled& c = compile(kernel, p.dims);
  const codegen::LlvmKernelLayout& L = c.layout;
  const int64_t N = p.cuSeqlens.empty() ? p.batch : static_cast<int64_t>(p.cuSeqlens.size()) - 1;
  if (!p.cuSeqlens.empty() && (p.batch != 1 || p.cuSeqlens.front() != 0 || p.cuSeqlens.back() != p.time))
    throw Error("cu_seqlens: expected batch 1 and offsets from 0 to T = " + std::to_string(p.time));
  for (size_t i = 1; i < p.cuSeqlens.size(); ++i)
    if (p.cuSeqlens[i] < p.cuSeqlens[i - 1])
      throw Error("cu_seqlens must be non-decreasing; cu_seqlens[" + std::to_string(i) + "] = " + std::to_string(p.cuSeqlens[i]) +
                  " < " + std::to_string(p.cuSeqlens[i - 1]));
  auto need = [](const auto& map, const std::string& name, const char* what) {
    auto it = map.find(name);
    if (it == map.end() || !it->second) throw Error(std::string(what) + " '" + name + "' is missing");
    return it->second;
  };
  std::vector<void*> fixed;
  for (const std::string& n : L.inputNames) fixed.push_back(const_cast<float*>(need(p.inputs, n, "input")));
  for (const std::string& n : L.outputNames) fixed.push_back(need(p.outputs, n, "output"));
  for (const std::string& n : L.stateNames) {
    auto it = p.initialStates.find(n);
    fixed.push_back(it == p.initialStates.end() ? nullptr : const_cast<float*>(it->second));
    fixed.push_back(need(p.finalStates, n, "final state"));
  }
  for (const std::string& n : L.vectorParamNames) fixed.push_back(const_cast<float*>(need(p.vectorParams, n, "vector_params")));
  std::vector<float> scalars;
  std::vector<uint8_t> given;
  for (const std::string& name : L.scalarParamNames) {
    auto it = p.scalarParams.find(name);
    scalars.push_back(it == p.scalarParams.end() ? 0.f : static_cast<float>(it->second));
    given.push_back(it != p.scalarParams.end());
  }
  for (const auto& [name, value] : p.scalarParams)
    if (std::find(L.scalarParamNames.begin(), L.scalarParamNames.end(), name) == L.scalarParamNames.end())
      throw Error("scalar_params '" + name + "': the kernel has no such scalar param");
  const int64_t items = N * p.heads;
  int workers = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(workers, items)));
  auto work = [&](int64_t begin, int64_t end) {
    std::vector<float> workspace(static_cast<size_t>(std::max<int64_t>(L.workspaceFloats, 1)));
    int64_t shape[5] = {p.batch, p.time, p.heads, begin, end};
    std::vector<void*> args = {shape, p.cuSeqlens.empty() ? nullptr : const_cast<int64_t*>(p.cuSeqlens.data()),
                               workspace.data()};
    args.insert(args.end(), fixed.begin(), fixed.end());
    args.push_back(scalars.data());
    args.push_back(given.data());
    c.fn(args.data());
  };
  if (items > 0) {
    std::vector<std::thread> pool;
    for (int w = 1; w < workers; ++w) pool.emplace_back(work, items * w / workers, items * (w + 1) / workers);
    work(0, items / workers);
    for (std::thread& t : pool) t.join();
  }
}

reference::Result runKernel(const cir::Kernel& kernel, const reference::Problem& p, int threads) {
  const Compiled& c = compile(kernel, p.dims);
  const codegen::LlvmKernelLayout& L = c.layout;
  const int64_t N = reference::sequenceCount(p);
  std::map<std::string, std::vector<float>> buffers;
  Fp32Problem f{p.batch, p.time, p.heads, p.dims, p.cuSeqlens, {}, {}, {}, {}, {}, p.scalarParams};
  for (int i = 0; i < L.inputs; ++i) {
    auto it = p.inputs.find(L.inputNames[i]);
    const int64_t want = p.batch * p.time * p.heads * L.inputWidths[i];
    if (it == p.inputs.end()) throw Error("input '" + L.inputNames[i] + "' is missing");
    if (it->second.numel() != want)
      throw Error("input '" + L.inputNames[i] + "': expected " + std::to_string(want) + " elements [B, T, H, " +
                  std::to_string(L.inputWidths[i]) + "]; got " + std::to_string(it->second.numel()));
    f.inputs[L.inputNames[i]] = (buffers["in:" + L.inputNames[i]] = toFloat(it->second.data)).data();
  }
  for (int i = 0; i < L.outputs; ++i)
    f.outputs[L.outputNames[i]] =
        (buffers["out:" + L.outputNames[i]] = std::vector<float>(static_cast<size_t>(p.batch * p.time * p.heads * L.outputWidths[i]))).data();
  for (int i = 0; i < L.states; ++i) {
    const size_t n = static_cast<size_t>(N * p.heads * L.stateRows[i] * L.stateCols[i]);
    auto it = p.initialStates.find(L.stateNames[i]);
    if (it != p.initialStates.end()) {
      if (it->second.data.size() != n)
        throw Error("initial_state '" + L.stateNames[i] + "': expected " + std::to_string(n) + " elements; got " +
                    std::to_string(it->second.data.size()));
      f.initialStates[L.stateNames[i]] = (buffers["init:" + L.stateNames[i]] = toFloat(it->second.data)).data();
    }
    f.finalStates[L.stateNames[i]] = (buffers["final:" + L.stateNames[i]] = std::vector<float>(n)).data();
  }
  for (int i = 0; i < L.vectorParams; ++i) {
    auto it = p.vectorParams.find(L.vectorParamNames[i]);
    const int64_t want = p.heads * L.vectorParamWidths[i];
    if (it == p.vectorParams.end() || it->second.numel() != want)
      throw Error("vector_params '" + L.vectorParamNames[i] + "': expected an [H, " + std::to_string(L.vectorParamWidths[i]) +
                  "] array");
    f.vectorParams[L.vectorParamNames[i]] = (buffers["vp:" + L.vectorParamNames[i]] = toFloat(it->second.data)).data();
  }
  runKernelFp32(kernel, f, threads);
  reference::Result result;
  for (int i = 0; i < L.outputs; ++i) {
    std::vector<int64_t> s = {p.batch, p.time, p.heads};
    if (!kernel.outputs[static_cast<size_t>(i)].shape.empty()) s.push_back(L.outputWidths[i]);
    reference::Tensor t(s);
    const std::vector<float>& out = buffers["out:" + L.outputNames[i]];
    std::copy(out.begin(), out.end(), t.data.begin());
    result.outputs[L.outputNames[i]] = std::move(t);
  }
  for (int i = 0; i < L.states; ++i) {
    reference::Tensor t({N, p.heads, L.stateRows[i], L.stateCols[i]});
    const std::vector<float>& fs = buffers["final:" + L.stateNames[i]];
    std::copy(fs.begin(), fs.end(), t.data.begin());
    result.finalStates[L.stateNames[i]] = std::move(t);
  }
  return result;
}

std::optional<reference::Result> runRecurrence(const rir::Recurrence& recurrence, const reference::Problem& problem,
                                               std::string& error, int chunk, int threads) {
  SourceManager sources;
  DiagnosticEngine diags(sources);
  std::optional<cir::Kernel> k =
      cir::lowerRirToCir(recurrence, chunk <= 1 ? cir::Strategy::Recurrent : cir::Strategy::Fused, std::max(chunk, 1), diags);
  if (!k) {
    std::ostringstream os;
    diags.print(os);
    error = "@" + recurrence.name + ": lowering to CIR failed: " + os.str();
    return std::nullopt;
  }
  try {
    return runKernel(*k, problem, threads);
  } catch (const Error& e) {
    error = "@" + recurrence.name + ": " + e.what();
    return std::nullopt;
  }
}

std::optional<reference::Gradients> runDerivedBackward(const rir::Recurrence& recurrence, const reference::Problem& problem,
                                                       const reference::Cotangents& cotangents, std::string& error, int chunk,
                                                       int threads) {
  return reference::runDerivedBackward(recurrence, problem, cotangents, error,
                                       [&](const rir::Recurrence& r, const reference::Problem& p, std::string& e) {
                                         return runRecurrence(r, p, e, chunk, threads);
                                       });
}

}  // namespace lina::cpu
