// Elementwise launchers: fill, copy (with dtype cast), arange, unary, binary, where.
// Operands share the logical shape `d` and carry their own element strides (0 = broadcast).
// Launchers merge contiguous dims; fully dense launches use 16-byte vector access.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda/kernels/layout.h"

namespace lloco::cuda_kernels {

void launch_fill(void* out, DType dt, Dims d, Strides so, double value, cudaStream_t stream);
void launch_copy(void* out, DType out_dt, Strides so, const void* in, DType in_dt, Strides si, Dims d,
                 cudaStream_t stream);
// out [n] with element stride `stride`: out[i] = start + step * i (computed in double)
void launch_arange(void* out, DType dt, int64_t n, int64_t stride, double start, double step, cudaStream_t stream);
// Same-dtype operands compute in the accumulator type (f32 for f32/f16/bf16, f64 otherwise);
// mixed dtypes take a slower path that computes in f64 like the CPU reference.
void launch_unary(UnaryOp op, void* out, DType out_dt, Strides so, const void* in, DType in_dt, Strides si, Dims d,
                  double param, cudaStream_t stream);
// comparisons write 1/0 in out's dtype
void launch_binary(BinaryOp op, void* out, DType out_dt, Strides so, const void* a, DType a_dt, Strides sa,
                   const void* b, DType b_dt, Strides sb, Dims d, cudaStream_t stream);
// out = cond != 0 ? a : b; cond may have any dtype
void launch_where(void* out, DType out_dt, Strides so, const void* cond, DType cond_dt, Strides sc, const void* a,
                  DType a_dt, Strides sa, const void* b, DType b_dt, Strides sb, Dims d, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
