// Reductions (sum/max/min over the dims where out has size 1) and softmax/log_softmax along a dim.
// Accumulation is f32 for f32/f16/bf16 inputs and f64 for f64/int inputs; the order is fixed by
// the launch shape, so results are deterministic run to run.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda/kernels/layout.h"

namespace lloco::cuda_kernels {

// in [in_dims] -> out [out_dims] (same rank; out_dims[i] is in_dims[i] or 1)
void launch_reduce(ReduceOp op, void* out, DType out_dt, Dims out_dims, Strides so, const void* in, DType in_dt,
                   Dims in_dims, Strides si, cudaStream_t stream);
// out/in [d]; softmax (or log_softmax) along `dim`
void launch_softmax(void* out, DType out_dt, Strides so, const void* in, DType in_dt, Strides si, Dims d, int dim,
                    bool log, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
