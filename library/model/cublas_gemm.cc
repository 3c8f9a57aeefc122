#include "library/model/cublas_gemm.h"

#include "library/model/cublas_abi.h"

#include <cstdlib>
#include <vector>

#include "runtime/cuda_driver.h"
#include "support/dynamic_library.h"
#include "support/error.h"

namespace lina::model {

namespace {

namespace abi = cublas_abi;

struct Cublas {
  abi::CreateFn create = nullptr;
  abi::DestroyFn destroy = nullptr;
  abi::SetStreamFn setStream = nullptr;
  abi::SetWorkspaceFn setWorkspace = nullptr;
  abi::GemmExFn gemmEx = nullptr;
  abi::StatusStringFn statusString = nullptr;
  std::string path, why;
};

const Cublas& cublas() {
  static const Cublas loaded = [] {
    Cublas c;
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("LINA_CUBLAS_LIBRARY")) candidates.push_back(env);
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"}) candidates.push_back(name);
#ifdef LINA_CUDA_LIBRARY_DIR
    for (const char* name : {"libcublas.so.13", "libcublas.so.12", "libcublas.so"})
      candidates.push_back(std::string(LINA_CUDA_LIBRARY_DIR) + "/" + name);
#endif
    const DynamicLibrary lib = openFirst(candidates);
    if (!lib.handle) {
      c.why = "cuBLAS could not be loaded (tried LINA_CUBLAS_LIBRARY, libcublas.so.13, .12 and the CUDA toolkit's "
              "lib64); set LINA_CUBLAS_LIBRARY to the path of libcublas.so";
      return c;
    }
    c.path = lib.path;
    auto bind = [&](auto& fn, const char* symbol) { lib.bind(fn, symbol, c.why); };
    bind(c.create, "cublasCreate_v2");
    bind(c.destroy, "cublasDestroy_v2");
    bind(c.setStream, "cublasSetStream_v2");
    bind(c.setWorkspace, "cublasSetWorkspace_v2");
    bind(c.gemmEx, "cublasGemmEx");
    bind(c.statusString, "cublasGetStatusString");
    return c;
  }();
  if (!loaded.why.empty()) throw Error(loaded.why);
  return loaded;
}

void checkCublas(abi::Status status, const char* call, const std::string& context = "") {
  if (status == abi::kSuccess) return;
  throw Error(std::string(call) + " failed: " + cublas().statusString(status) + (context.empty() ? "" : " (" + context + ")"));
}

constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper

}  // namespace

CublasGemm::CublasGemm(CUstream stream) {
  const Cublas& c = cublas();
  abi::Handle h = nullptr;
  checkCublas(c.create(&h), "cublasCreate");
  handle_ = h;
  checkCublas(c.setStream(h, stream), "cublasSetStream");
  const cuda::Driver* d = cuda::driver();
  cuda::check(d->cuMemAlloc(&workspace_, kWorkspaceBytes), "cuMemAlloc", "cuBLAS workspace");
  checkCublas(c.setWorkspace(h, reinterpret_cast<void*>(workspace_), kWorkspaceBytes), "cublasSetWorkspace");
}

CublasGemm::~CublasGemm() {
  if (handle_) cublas().destroy(static_cast<abi::Handle>(handle_));
  if (workspace_) cuda::driver()->cuMemFree(workspace_);
}

const std::string& CublasGemm::library() const { return cublas().path; }

void CublasGemm::linear(const void* W, const void* x, void* y, int64_t rows, int64_t n, int64_t k, GemmType type, float beta,
                        int64_t ldy) const {
  // Column-major view: W [n][k] row-major is W^T (k x n, ld k); x [rows][k] is k x rows (ld k);
  // y [rows][n] is n x rows (ld n). So y = op_T(W^T) x = W x per row.
  const abi::DataType t = type == GemmType::BF16 ? abi::kR16BF : type == GemmType::F16 ? abi::kR16F : abi::kR32F;
  const float alpha = 1.f;
  checkCublas(cublas().gemmEx(static_cast<abi::Handle>(handle_), abi::kOpT, abi::kOpN, static_cast<int>(n),
                              static_cast<int>(rows), static_cast<int>(k), &alpha, W, t, static_cast<int>(k), x, t,
                              static_cast<int>(k), &beta, y, t, static_cast<int>(ldy ? ldy : n), abi::kCompute32F,
                              abi::kGemmDefault),
              "cublasGemmEx", std::to_string(rows) + "x" + std::to_string(k) + " by " + std::to_string(n) + "x" + std::to_string(k));
}

}  // namespace lina::model
