// Fused AdamW step (torch.optim.AdamW order: decoupled decay, moments, bias-corrected update) on
// contiguous tensors. param/m/v share a dtype (often f32 master copies); grad may differ.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"

namespace lloco::cuda_kernels {

// param, m, v [n] of dtype dt; grad [n] of dtype grad_dt
void launch_adamw(void* param, void* m, void* v, DType dt, const void* grad, DType grad_dt, int64_t n,
                  const AdamWParams& p, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
