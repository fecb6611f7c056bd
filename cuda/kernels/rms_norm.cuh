// Fused RMSNorm: out = x * rstd * weight, rstd = 1 / sqrt(mean(x^2) + eps), statistics in f32
// (f64 for f64 inputs). The backward reduces dweight deterministically: each of a fixed number of
// blocks sums its rows into a private partial row, and a second pass adds the partials in order.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda/kernels/layout.h"

namespace lloco::cuda_kernels {

// x/out/dy/dx are [N, D] with unit column stride; rows at `row_stride` elements apart.
struct RowMajor {
  void* data;
  int64_t row_stride;
};

// x, out [N, D] (dtype dt); weight [D] (dt or f32); rstd [N]
void launch_rms_norm_fwd(RowMajor out, RowVec rstd, RowMajor x, DType dt, RowVec weight, int64_t N, int64_t D,
                         double eps, cudaStream_t stream);

// Bytes of scratch launch_rms_norm_bwd needs for these sizes.
size_t rms_norm_bwd_workspace_bytes(int64_t N, int64_t D);
// dx [N, D], dweight [D] (any float dtype, overwritten) from dy, x [N, D], weight [D], rstd [N]
void launch_rms_norm_bwd(RowMajor dx, RowVec dweight, RowMajor dy, RowMajor x, DType dt, RowVec weight, RowVec rstd,
                         int64_t N, int64_t D, void* workspace, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
