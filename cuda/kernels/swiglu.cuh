// Fused SwiGLU (LLaMA's MLP activation): out = silu(gate) * up, and its backward, over contiguous
// buffers of n elements. Math in f32 (f64 for f64); one rounding per output.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace lloco::cuda_kernels {

// out, gate, up: n contiguous elements of dtype dt
void launch_swiglu_fwd(void* out, const void* gate, const void* up, DType dt, int64_t n, cudaStream_t stream);

// dgate = dout * up * sg * (1 + gate * (1 - sg)), dup = dout * silu(gate), sg = sigmoid(gate); all n
// contiguous elements of dtype dt
void launch_swiglu_bwd(void* dgate, void* dup, const void* dout, const void* gate, const void* up, DType dt,
                       int64_t n, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
