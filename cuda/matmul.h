// Batched GEMM through cuBLASLt: out [B, M, N] (+)= a [B, M, K] @ b [B, K, N] (rank 2 means B = 1).
// Operands with a unit inner stride (row-major) or unit row stride (transposed view) are used in
// place; others are first copied to contiguous scratch. A broadcast right operand (batch stride 0)
// folds the batch into M so x @ W runs as one large GEMM. f32 uses TF32 tensor cores only with
// LLOCO_TF32=1; f16/bf16 accumulate in f32. Algorithms are chosen once per shape and cached.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "core/backend.h"

namespace lloco {

class CublasMatmul {
 public:
  explicit CublasMatmul(Allocator& scratch);  // scratch: where copies of odd-strided operands go
  ~CublasMatmul();
  CublasMatmul(const CublasMatmul&) = delete;
  CublasMatmul& operator=(const CublasMatmul&) = delete;

  // out = a @ b, or out += a @ b (beta = 1) with accumulate.
  void run(TensorRef out, TensorRef a, TensorRef b, cudaStream_t stream, bool accumulate = false);
  // Number of distinct GEMM configurations planned so far (for tests/benchmarks).
  size_t plans_cached() const;

  struct Plan;
  struct Gemm;

 private:
  void gemm(const Gemm& g, cudaStream_t stream);
  void* workspace(cudaStream_t stream);

  Allocator& scratch_;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;  // fallback when cuBLASLt offers no algorithm
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::unique_ptr<Plan>> plans_;
  std::unordered_map<cudaStream_t, void*> workspaces_;
};

}  // namespace lloco
