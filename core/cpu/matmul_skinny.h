// GEMM for few f32 rows of x against a weight stored [N, K] (nn.Linear layout), without packing the
// weight (core/cpu/matmul_skinny.cpp). matmul.cpp routes x [M, K] @ w^T here for small M. The weight
// may be f32, or f16 / bf16 widened a register block at a time, so a half model's weights are read
// from memory at 2 bytes per element and never copied whole.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace lloco::cpu_impl {

// Rows below which x @ w^T takes gemm_skinny instead of Eigen's GEMM (bench/matmul_bench.cpp).
constexpr int64_t kSkinnyMaxRows = 128;

// out[m * ldo + n * out_col_stride] (+)= sum_k x[m * lda + k] * w[n * ldw + k] for m < M, n < N, with
// f32 accumulation. x and w have unit stride along k; w holds elements of w_dtype (F32, F16 or BF16).
void gemm_skinny(float* out, int64_t ldo, int64_t out_col_stride, const float* x, int64_t lda, const void* w,
                 DType w_dtype, int64_t ldw, int64_t M, int64_t N, int64_t K, bool accumulate);

}  // namespace lloco::cpu_impl
