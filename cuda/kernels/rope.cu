// RoPE kernel: one thread per rotated pair (b, h, t, i), i fastest, so a warp reads 32
// consecutive table entries and 32 consecutive (half-rotate) or interleaved pairs of x.
#include "cuda/kernels/rope.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

template <typename T>
__global__ void rope_kernel(T* out, const T* x, const float* cos, const float* sin, RopeArgs a, bool half_rotate,
                            float sign, int64_t n) {
  using A = acc_t<T>;
  const int64_t half = a.D / 2;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t i, t, h, b;
    if (n < (int64_t(1) << 31)) {  // 32-bit division is several times cheaper
      uint32_t r = static_cast<uint32_t>(idx), hf = static_cast<uint32_t>(half), nt = static_cast<uint32_t>(a.T),
               nh = static_cast<uint32_t>(a.H);
      i = r % hf;
      r /= hf;
      t = r % nt;
      r /= nt;
      h = r % nh;
      b = r / nh;
    } else {
      int64_t r = idx / half;
      i = idx % half;
      t = r % a.T;
      r /= a.T;
      h = r % a.H;
      b = r / a.H;
    }
    int64_t to = (a.table_per_batch ? b * a.table_strides[0] : 0) + t * a.table_strides[1] + i * a.table_strides[2];
    A c = static_cast<A>(cos[to]), s = static_cast<A>(sign * sin[to]);
    int64_t i1 = half_rotate ? i : 2 * i, i2 = half_rotate ? i + half : 2 * i + 1;
    int64_t xo = b * a.x_strides[0] + h * a.x_strides[1] + t * a.x_strides[2];
    int64_t oo = b * a.out_strides[0] + h * a.out_strides[1] + t * a.out_strides[2];
    A x1 = to_acc<A>(x[xo + i1 * a.x_strides[3]]), x2 = to_acc<A>(x[xo + i2 * a.x_strides[3]]);
    out[oo + i1 * a.out_strides[3]] = from_acc<T>(x1 * c - x2 * s);
    out[oo + i2 * a.out_strides[3]] = from_acc<T>(x2 * c + x1 * s);
  }
}

}  // namespace

void launch_rope(void* out, const void* x, DType dt, const float* cos, const float* sin, const RopeArgs& a,
                 RopeStyle style, bool inverse, cudaStream_t stream) {
  int64_t n = a.B * a.H * a.T * (a.D / 2);
  if (n == 0) return;
  constexpr int kThreads = 256;
  LLOCO_DISPATCH_FLOAT(dt, "rope", T, {
    LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, rope_kernel<T>)(static_cast<T*>(out), static_cast<const T*>(x), cos,
                                                                   sin, a, style == RopeStyle::HalfRotate,
                                                                   inverse ? -1.f : 1.f, n);
  });
  CUDA_LAUNCH_CHECK(stream, "rope");
}

}  // namespace lloco::cuda_kernels
