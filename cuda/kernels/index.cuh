// Indexing along one dim: index_select / gather (reads) and index_add / scatter_add (atomic adds,
// so the summation order of duplicate indices is not fixed). Out-of-range indices are skipped
// (reads yield 0) and set the device error flag (cuda/common.h), reported at the next check.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda/kernels/layout.h"

namespace lloco::cuda_kernels {

struct IndexArg {
  const void* data;  // i32 or i64
  DType dtype;
  Strides strides;  // index_select/index_add: only s[0] is used (1-D index)
};

// out [d] = in.index_select(dim, index); in has `src_len` elements along dim. out/in share dtype.
void launch_index_select(void* out, Strides so, const void* in, Strides si, int64_t src_len, DType dt, Dims d,
                         int dim, IndexArg index, int error_flag_code, cudaStream_t stream);
// out.index_add_(dim, index, src), src [d]; out has `dst_len` elements along dim. Same dtype.
void launch_index_add(void* out, Strides so, int64_t dst_len, const void* src, Strides ss, DType dt, Dims d, int dim,
                      IndexArg index, cudaStream_t stream);
// out [d][..., i, ...] = in[..., index[..., i, ...], ...]; index has shape d
void launch_gather(void* out, Strides so, const void* in, Strides si, int64_t src_len, DType dt, Dims d, int dim,
                   IndexArg index, cudaStream_t stream);
// out[..., index[..., i, ...], ...] += src [d][..., i, ...]; index has shape d
void launch_scatter_add(void* out, Strides so, int64_t dst_len, const void* src, Strides ss, DType dt, Dims d, int dim,
                        IndexArg index, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
