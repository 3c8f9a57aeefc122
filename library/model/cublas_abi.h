// The part of cuBLAS's C ABI that lina's runner calls through dlopen (cublas_gemm.cc), declared
// here so that building lina needs no cuBLAS headers: `pip install .` works with only the CUDA
// driver and NVRTC headers (from the toolkit or PyPI's nvidia-cuda-runtime / -nvrtc wheels).
// The values are those of cuBLAS 12 and 13's public API (cublas_api.h, library_types.h).
#pragma once

#include <cuda.h>

namespace lina::model::cublas_abi {

using Status = int;  // cublasStatus_t
constexpr Status kSuccess = 0;
using Handle = struct Context*;  // cublasHandle_t: an opaque pointer
using Operation = int;           // cublasOperation_t
constexpr Operation kOpN = 0, kOpT = 1;
using DataType = int;  // cudaDataType
constexpr DataType kR32F = 0, kR16F = 2, kR16BF = 14;
using ComputeType = int;  // cublasComputeType_t
constexpr ComputeType kCompute32F = 68;
using GemmAlgo = int;  // cublasGemmAlgo_t
constexpr GemmAlgo kGemmDefault = -1;

using CreateFn = Status (*)(Handle*);
using DestroyFn = Status (*)(Handle);
using SetStreamFn = Status (*)(Handle, CUstream);
using SetWorkspaceFn = Status (*)(Handle, void*, size_t);
using GemmExFn = Status (*)(Handle, Operation, Operation, int, int, int, const void*, const void*, DataType, int,
                            const void*, DataType, int, const void*, void*, DataType, int, ComputeType, GemmAlgo);
using StatusStringFn = const char* (*)(Status);

}  // namespace lina::model::cublas_abi
