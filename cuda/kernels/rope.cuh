// Rotary position embedding on [B, H, T, D] views of any strides, with f32 cos/sin tables
// [B or 1, T, D/2]. inverse = true rotates by -angle, which is the backward of the forward.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"

namespace lloco::cuda_kernels {

struct RopeArgs {
  int64_t B, H, T, D;
  int64_t x_strides[4], out_strides[4];  // [B, H, T, D]
  int64_t table_strides[3];              // [B|1, T, D/2]; batch stride 0 when shared
  bool table_per_batch;
};

// out/x [B, H, T, D] share dtype `dt` (out may alias x); cos/sin f32
void launch_rope(void* out, const void* x, DType dt, const float* cos, const float* sin, const RopeArgs& a,
                 RopeStyle style, bool inverse, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
