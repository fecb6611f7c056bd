// SwiGLU kernels: grid-stride loops over 16-byte packs (8 bf16/f16, 4 f32, 2 f64) when every
// pointer is 16-byte aligned, then a scalar tail of fewer than one pack; unaligned buffers take the
// same kernel with one-element packs.
#include "cuda/kernels/swiglu.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

constexpr int kThreads = 256;

template <typename A>
__device__ __forceinline__ A sigmoid_of(A x) {
  return A(1) / (A(1) + d_exp(-x));
}

template <typename T>
__device__ __forceinline__ T swiglu_out(T g, T u) {
  using A = acc_t<T>;
  const A a = to_acc<A>(g);
  return from_acc<T>(a * sigmoid_of(a) * to_acc<A>(u));
}

template <typename T>
__device__ __forceinline__ void swiglu_grad(T d, T g, T u, T& dg, T& du) {
  using A = acc_t<T>;
  const A dv = to_acc<A>(d), gv = to_acc<A>(g), sg = sigmoid_of(gv);
  dg = from_acc<T>(dv * to_acc<A>(u) * sg * (A(1) + gv * (A(1) - sg)));
  du = from_acc<T>(dv * gv * sg);
}

template <typename T, int V>
__global__ void swiglu_fwd_kernel(T* out, const T* gate, const T* up, int64_t n) {
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t packs = n / V;
  for (int64_t p = tid; p < packs; p += stride) {
    const Pack<T, V> g = reinterpret_cast<const Pack<T, V>*>(gate)[p];
    const Pack<T, V> u = reinterpret_cast<const Pack<T, V>*>(up)[p];
    Pack<T, V> o;
#pragma unroll
    for (int k = 0; k < V; ++k) o.v[k] = swiglu_out(g.v[k], u.v[k]);
    reinterpret_cast<Pack<T, V>*>(out)[p] = o;
  }
  for (int64_t i = packs * V + tid; i < n; i += stride) out[i] = swiglu_out(gate[i], up[i]);
}

template <typename T, int V>
__global__ void swiglu_bwd_kernel(T* dgate, T* dup, const T* dout, const T* gate, const T* up, int64_t n) {
  const int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t packs = n / V;
  for (int64_t p = tid; p < packs; p += stride) {
    const Pack<T, V> d = reinterpret_cast<const Pack<T, V>*>(dout)[p];
    const Pack<T, V> g = reinterpret_cast<const Pack<T, V>*>(gate)[p];
    const Pack<T, V> u = reinterpret_cast<const Pack<T, V>*>(up)[p];
    Pack<T, V> dg, du;
#pragma unroll
    for (int k = 0; k < V; ++k) swiglu_grad(d.v[k], g.v[k], u.v[k], dg.v[k], du.v[k]);
    reinterpret_cast<Pack<T, V>*>(dgate)[p] = dg;
    reinterpret_cast<Pack<T, V>*>(dup)[p] = du;
  }
  for (int64_t i = packs * V + tid; i < n; i += stride) swiglu_grad(dout[i], gate[i], up[i], dgate[i], dup[i]);
}

}  // namespace

void launch_swiglu_fwd(void* out, const void* gate, const void* up, DType dt, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  LLOCO_DISPATCH_FLOAT(dt, "swiglu_fwd", T, {
    constexpr int V = kVec<T>;
    T* o = static_cast<T*>(out);
    const T* g = static_cast<const T*>(gate);
    const T* u = static_cast<const T*>(up);
    if (aligned16(out) && aligned16(gate) && aligned16(up))
      LLOCO_LAUNCH(grid_for(n / V + 1, kThreads), kThreads, 0, stream, swiglu_fwd_kernel<T, V>)(o, g, u, n);
    else
      LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, swiglu_fwd_kernel<T, 1>)(o, g, u, n);
  });
  CUDA_LAUNCH_CHECK(stream, "swiglu_fwd");
}

void launch_swiglu_bwd(void* dgate, void* dup, const void* dout, const void* gate, const void* up, DType dt,
                       int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  LLOCO_DISPATCH_FLOAT(dt, "swiglu_bwd", T, {
    constexpr int V = kVec<T>;
    T* dg = static_cast<T*>(dgate);
    T* du = static_cast<T*>(dup);
    const T* d = static_cast<const T*>(dout);
    const T* g = static_cast<const T*>(gate);
    const T* u = static_cast<const T*>(up);
    if (aligned16(dgate) && aligned16(dup) && aligned16(dout) && aligned16(gate) && aligned16(up))
      LLOCO_LAUNCH(grid_for(n / V + 1, kThreads), kThreads, 0, stream, swiglu_bwd_kernel<T, V>)(dg, du, d, g, u, n);
    else
      LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, swiglu_bwd_kernel<T, 1>)(dg, du, d, g, u, n);
  });
  CUDA_LAUNCH_CHECK(stream, "swiglu_bwd");
}

}  // namespace lloco::cuda_kernels
