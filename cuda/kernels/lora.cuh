// Multi-adapter LoRA kernels (punica's SGMV by segment, BGMV by row) on CUDA cores, f32
// accumulation (f64 for f64). Every operand may have any strides; 16-byte packs are used where the
// accessed dim is unit-stride and rows are 16-byte aligned. Any sizes work: there is no list of
// supported hidden sizes or ranks.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "core/dtype.h"

namespace lloco::cuda_kernels {

// Which adapter each row uses. Segment mode: rows indptr[s] .. indptr[s+1] use adapter[s]
// (indptr [S + 1], from 0, non-decreasing, ending at N). Per-row mode (indptr == nullptr): row n
// uses adapter[n]. Ids < 0 mean "no adapter"; ids >= L set kErrIndexRange in the device flag.
struct LoraRows {
  const int32_t* indptr;   // [S + 1] or nullptr
  const int32_t* adapter;  // [S] or [N]
  int64_t indptr_stride, adapter_stride;
  int64_t segments;  // S (segment mode)
};

// A strided 2-D operand [rows, cols].
struct LoraMat {
  void* data;
  int64_t row_stride, col_stride;
};

// A stack of L matrices addressed as w[l, k, m]: k the reduction dim, m the output dim. Both
// LoRA layouts map onto it through strides (w [L, O, I] for x @ w^T, w [L, I, O] for x @ w).
struct LoraStack {
  const void* data;
  int64_t adapter_stride, k_stride, m_stride;
};

// y [N, O] (+)= scale * x [N, I] @ w[adapter(n)] ([I, O] through the strides). Rows without an
// adapter are left untouched when accumulating and zeroed otherwise.
void launch_lora_matmul(LoraMat y, LoraMat x, LoraStack w, DType dt, int64_t N, int64_t I, int64_t O, int64_t L,
                        LoraRows rows, double scale, bool accumulate, cudaStream_t stream);

// Fused LoRA linear for a few rows (decode): y [N, O] = x [N, I] @ w [O, I]^T + scale * t @ b[a(n)]^T
// with t [N, R] = x @ a[a(n)]^T rounded to the dtype (also written to t when t.data != nullptr).
// a: a[l, i, k] (k_stride along I must be 1: a [L, R, I]); b: b[l, k, o] (b [L, O, R] by strides).
// Rows without an adapter get the base projection and t = 0. Returns false, launching nothing,
// when the operands do not fit the kernel: more than kLoraLinearMaxRows rows, a rank above
// kLoraLinearMaxRank, f64, non-unit inner strides, or x / w / a rows that are not 16-byte packs.
constexpr int64_t kLoraLinearMaxRows = 4;
constexpr int64_t kLoraLinearMaxRank = 64;
bool launch_lora_linear_small(LoraMat y, LoraMat t, LoraMat x, LoraMat w, LoraStack a, LoraStack b, DType dt,
                              int64_t N, int64_t I, int64_t O, int64_t R, int64_t L, LoraRows rows, double scale,
                              cudaStream_t stream);

// How many blocks share each adapter's rows in lora_weight_grad (1: no workspace needed), and the
// workspace bytes launch_lora_weight_grad then needs.
int64_t lora_weight_grad_splits(int64_t N, int64_t P, int64_t Q, int64_t L);
size_t lora_weight_grad_workspace_bytes(int64_t N, int64_t P, int64_t Q, int64_t L, DType dt);

// dw [L, P, Q] (strides dw_strides) = scale * lhs[rows of l]^T @ rhs[rows of l] for every l:
// lhs [N, P], rhs [N, Q]. Every element of dw is written (0 for adapters that own no row).
// Deterministic: partial sums over row splits are added in a fixed order.
void launch_lora_weight_grad(void* dw, const int64_t (&dw_strides)[3], LoraMat lhs, LoraMat rhs, DType dt, int64_t N,
                             int64_t P, int64_t Q, int64_t L, LoraRows rows, double scale, void* workspace,
                             cudaStream_t stream);

}  // namespace lloco::cuda_kernels
