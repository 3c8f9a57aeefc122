// cuBLAS for the model runner's projections, loaded with dlopen as the CUDA driver is
// (runtime/cuda_driver.h): lina's binaries start on machines without cuBLAS or a GPU, and the
// Python module needs no CUDA library folder in the loader path. Only the few entry points the
// runner calls are bound; their signatures are the same in cuBLAS 12 and 13.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <string>

namespace lina::model {

enum class GemmType { BF16, F16, F32 };

class CublasGemm {
 public:
  // Loads cuBLAS (LINA_CUBLAS_LIBRARY, then libcublas.so.13 / .12 / libcublas.so, then the
  // toolkit's library folder) and creates a handle bound to `stream`, with a fixed workspace so
  // that its calls can be captured in a CUDA graph. Throws lina::Error naming what is missing.
  explicit CublasGemm(CUstream stream);
  ~CublasGemm();
  CublasGemm(const CublasGemm&) = delete;
  CublasGemm& operator=(const CublasGemm&) = delete;

  // y[rows][n] = x[rows][k] W[n][k]^T (+ beta y): row-major activations against a row-major
  // weight [n][k] (PyTorch's Linear layout), fp32 accumulation, results in `type`.
  void linear(const void* W, const void* x, void* y, int64_t rows, int64_t n, int64_t k, GemmType type, float beta = 0.f,
              int64_t ldy = 0) const;
  // Where cuBLAS was loaded from.
  const std::string& library() const;

 private:
  void* handle_ = nullptr;
  CUdeviceptr workspace_ = 0;
};

}  // namespace lina::model
