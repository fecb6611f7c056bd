// One Philox evaluation per element: the contract fixes element n to counter n, so a thread cannot
// share one 4-word result between neighbours. Ten rounds of 32-bit multiplies stay well under
// the memory time for the f32 output.
#include "cuda/kernels/random.cuh"

#include "core/philox.h"
#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

template <typename T>
__global__ void random_kernel(T* out, Dims d, Strides so, bool dense, int64_t n, bool normal, uint64_t seed,
                              uint64_t offset) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t c = offset + static_cast<uint64_t>(i);
    float v = normal ? philox_normal(seed, c) : philox_uniform(seed, c);
    out[dense ? i : offset_of(i, d, so)] = from_acc<T>(v);
  }
}

}  // namespace

void launch_random(void* out, DType dt, Dims d, Strides so, RandomKind kind, uint64_t seed, uint64_t offset,
                   cudaStream_t stream) {
  int64_t n = d.numel();
  if (n == 0) return;
  Strides* ops[1] = {&so};
  coalesce(d, ops, 1);
  bool dense = is_dense(d, ops, 1);
  constexpr int kThreads = 256;
  bool normal = kind == RandomKind::Normal;
  LLOCO_DISPATCH_FLOAT(dt, "random", T, {
    LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, random_kernel<T>)(static_cast<T*>(out), d, so, dense, n, normal,
                                                                      seed, offset);
  });
  CUDA_LAUNCH_CHECK(stream, "random");
}

}  // namespace lloco::cuda_kernels
