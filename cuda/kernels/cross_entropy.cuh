// Fused cross-entropy over a vocabulary (one block per row, online max/sum, no [N, V] softmax
// buffer). ignore_index rows give loss 0 and zero gradient; other targets outside [0, V) set the
// device error flag.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda/kernels/layout.h"

namespace lloco::cuda_kernels {

// logits [N, V], targets [N] -> loss [N], lse [N]
void launch_cross_entropy_fwd(RowVec loss, RowVec lse, Matrix logits, RowVec targets, int64_t ignore_index,
                              cudaStream_t stream);
// dlogits [N, V] = dloss[n] * (softmax(logits) - onehot(target)), from lse [N]
void launch_cross_entropy_bwd(Matrix dlogits, RowVec dloss, Matrix logits, RowVec lse, RowVec targets,
                              int64_t ignore_index, cudaStream_t stream);

}  // namespace lloco::cuda_kernels
