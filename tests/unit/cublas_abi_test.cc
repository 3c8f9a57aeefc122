// lina's own cuBLAS ABI declarations (library/model/cublas_abi.h) against the real headers, where
// a toolkit provides them: every constant and function type the runner binds must agree.
#include <gtest/gtest.h>

#include <type_traits>

#include "library/model/cublas_abi.h"

#if __has_include(<cublas_v2.h>)
#include <cublas_v2.h>

namespace ours = lina::model::cublas_abi;

static_assert(ours::kSuccess == CUBLAS_STATUS_SUCCESS);
static_assert(ours::kOpN == CUBLAS_OP_N && ours::kOpT == CUBLAS_OP_T);
static_assert(ours::kR32F == CUDA_R_32F && ours::kR16F == CUDA_R_16F && ours::kR16BF == CUDA_R_16BF);
static_assert(ours::kCompute32F == CUBLAS_COMPUTE_32F);
static_assert(ours::kGemmDefault == CUBLAS_GEMM_DEFAULT);
static_assert(sizeof(cublasStatus_t) == sizeof(ours::Status) && sizeof(cublasOperation_t) == sizeof(ours::Operation));
static_assert(sizeof(cudaDataType) == sizeof(ours::DataType) && sizeof(cublasComputeType_t) == sizeof(ours::ComputeType));
static_assert(sizeof(cublasGemmAlgo_t) == sizeof(ours::GemmAlgo) && sizeof(cublasHandle_t) == sizeof(ours::Handle));
static_assert(std::is_same_v<decltype(&::cublasGetStatusString), const char* (*)(cublasStatus_t)>);

TEST(CublasAbi, MatchesTheToolkitHeaders) { SUCCEED() << "checked at compile time against cublas_v2.h"; }
#else
TEST(CublasAbi, MatchesTheToolkitHeaders) { GTEST_SKIP() << "no cublas_v2.h here: nothing to compare against"; }
#endif
