#include "library/model/cublas_gemm.h"

#include <cublas_v2.h>

#include <cstdlib>
#include <vector>

#include "runtime/cuda_driver.h"
#include "support/dynamic_library.h"
#include "support/error.h"

namespace lina::model {

namespace {

// cublasGemmEx is overloaded in C++ (a 64-bit variant), so its type is spelled out.
using GemmExFn = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                                    const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                                    cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);

struct Cublas {
  decltype(&::cublasCreate_v2) create = nullptr;
  decltype(&::cublasDestroy_v2) destroy = nullptr;
  decltype(&::cublasSetStream_v2) setStream = nullptr;
  decltype(&::cublasSetWorkspace_v2) setWorkspace = nullptr;
  GemmExFn gemmEx = nullptr;
  decltype(&::cublasGetStatusString) statusString = nullptr;
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

void checkCublas(cublasStatus_t status, const char* call, const std::string& context = "") {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  throw Error(std::string(call) + " failed: " + cublas().statusString(status) + (context.empty() ? "" : " (" + context + ")"));
}

constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper

}  // namespace

CublasGemm::CublasGemm(CUstream stream) {
  const Cublas& c = cublas();
  cublasHandle_t h = nullptr;
  checkCublas(c.create(&h), "cublasCreate");
  handle_ = h;
  checkCublas(c.setStream(h, reinterpret_cast<cudaStream_t>(stream)), "cublasSetStream");
  const cuda::Driver* d = cuda::driver();
  cuda::check(d->cuMemAlloc(&workspace_, kWorkspaceBytes), "cuMemAlloc", "cuBLAS workspace");
  checkCublas(c.setWorkspace(h, reinterpret_cast<void*>(workspace_), kWorkspaceBytes), "cublasSetWorkspace");
}

CublasGemm::~CublasGemm() {
  if (handle_) cublas().destroy(static_cast<cublasHandle_t>(handle_));
  if (workspace_) cuda::driver()->cuMemFree(workspace_);
}

const std::string& CublasGemm::library() const { return cublas().path; }

void CublasGemm::linear(const void* W, const void* x, void* y, int64_t rows, int64_t n, int64_t k, GemmType type, float beta,
                        int64_t ldy) const {
  // Column-major view: W [n][k] row-major is W^T (k x n, ld k); x [rows][k] is k x rows (ld k);
  // y [rows][n] is n x rows (ld n). So y = op_T(W^T) x = W x per row.
  const cudaDataType t = type == GemmType::BF16 ? CUDA_R_16BF : type == GemmType::F16 ? CUDA_R_16F : CUDA_R_32F;
  const float alpha = 1.f;
  checkCublas(cublas().gemmEx(static_cast<cublasHandle_t>(handle_), CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(n),
                              static_cast<int>(rows), static_cast<int>(k), &alpha, W, t, static_cast<int>(k), x, t,
                              static_cast<int>(k), &beta, y, t, static_cast<int>(ldy ? ldy : n), CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx", std::to_string(rows) + "x" + std::to_string(k) + " by " + std::to_string(n) + "x" + std::to_string(k));
}

}  // namespace lina::model
