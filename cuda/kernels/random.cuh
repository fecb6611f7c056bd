// Counter-based random fill (Philox 4x32-10, contract in core/philox.h): element i of `out`
// uses counter offset + i, so results do not depend on the launch shape or the device.
#pragma once
#include <cuda_runtime.h>

#include "core/backend.h"
#include "cuda/kernels/layout.h"

namespace lloco::cuda_kernels {

// out: any float dtype and strides (values computed in f32, then converted); element i is the
// i-th in row-major order of shape `d`
void launch_random(void* out, DType dt, Dims d, Strides so, RandomKind kind, uint64_t seed, uint64_t offset,
                   cudaStream_t stream);

}  // namespace lloco::cuda_kernels
