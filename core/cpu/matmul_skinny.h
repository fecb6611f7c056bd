// f32 GEMM for few rows of x against a weight stored [N, K] (nn.Linear layout), without packing the
// weight (core/cpu/matmul_skinny.cpp). matmul.cpp routes x [M, K] @ w^T here for small M.
#pragma once
#include <cstdint>

namespace lloco::cpu_impl {

// Rows below which x @ w^T takes gemm_skinny_f32 instead of Eigen's GEMM (bench/matmul_bench.cpp).
constexpr int64_t kSkinnyMaxRows = 128;

// out[m * ldo + n * out_col_stride] (+)= sum_k x[m * lda + k] * w[n * ldw + k] for m < M, n < N.
// x and w have unit stride along k.
void gemm_skinny_f32(float* out, int64_t ldo, int64_t out_col_stride, const float* x, int64_t lda, const float* w,
                     int64_t ldw, int64_t M, int64_t N, int64_t K, bool accumulate);

}  // namespace lloco::cpu_impl
