// AdamW kernel: a grid-stride loop, 16-byte packs when every pointer allows it. Math in f32 for
// f32/f16/bf16 parameters and f64 for f64 (the CPU reference uses f64 throughout).
#include "cuda/kernels/adamw.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

template <typename A>
struct AdamWConsts {
  A lr_decay;  // 1 - lr * weight_decay
  A beta1, one_minus_beta1, beta2, one_minus_beta2;
  A step;      // lr / bias_correction1
  A bc2_sqrt;  // sqrt(bias_correction2)
  A eps;
};

template <typename A>
__device__ __forceinline__ void adamw_one(A& w, A& m, A& v, A g, const AdamWConsts<A>& c) {
  w *= c.lr_decay;
  m = c.beta1 * m + c.one_minus_beta1 * g;
  v = c.beta2 * v + c.one_minus_beta2 * g * g;
  w -= c.step * m / (d_sqrt(v) / c.bc2_sqrt + c.eps);
}

template <typename T, typename G, int V>
__global__ void adamw_kernel(T* param, T* mom1, T* mom2, const G* grad, int64_t n, AdamWConsts<acc_t<T>> c) {
  using A = acc_t<T>;
  int64_t nv = n / V;
  int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t tid = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  for (int64_t i = tid; i < nv; i += stride) {
    Pack<T, V> w = reinterpret_cast<Pack<T, V>*>(param)[i];
    Pack<T, V> m = reinterpret_cast<Pack<T, V>*>(mom1)[i];
    Pack<T, V> v = reinterpret_cast<Pack<T, V>*>(mom2)[i];
    Pack<G, V> g = reinterpret_cast<const Pack<G, V>*>(grad)[i];
#pragma unroll
    for (int k = 0; k < V; ++k) {
      A wa = to_acc<A>(w.v[k]), ma = to_acc<A>(m.v[k]), va = to_acc<A>(v.v[k]);
      adamw_one(wa, ma, va, to_acc<A>(g.v[k]), c);
      w.v[k] = from_acc<T>(wa);
      m.v[k] = from_acc<T>(ma);
      v.v[k] = from_acc<T>(va);
    }
    reinterpret_cast<Pack<T, V>*>(param)[i] = w;
    reinterpret_cast<Pack<T, V>*>(mom1)[i] = m;
    reinterpret_cast<Pack<T, V>*>(mom2)[i] = v;
  }
  for (int64_t i = nv * V + tid; i < n; i += stride) {
    A wa = to_acc<A>(param[i]), ma = to_acc<A>(mom1[i]), va = to_acc<A>(mom2[i]);
    adamw_one(wa, ma, va, to_acc<A>(grad[i]), c);
    param[i] = from_acc<T>(wa);
    mom1[i] = from_acc<T>(ma);
    mom2[i] = from_acc<T>(va);
  }
}

}  // namespace

void launch_adamw(void* param, void* m, void* v, DType dt, const void* grad, DType grad_dt, int64_t n,
                  const AdamWParams& p, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int kThreads = 256;
  LLOCO_DISPATCH_FLOAT(dt, "adamw", T, {
    using A = acc_t<T>;
    AdamWConsts<A> c{static_cast<A>(1.0 - p.lr * p.weight_decay), static_cast<A>(p.beta1),
                     static_cast<A>(1.0 - p.beta1),                static_cast<A>(p.beta2),
                     static_cast<A>(1.0 - p.beta2),                static_cast<A>(p.lr / p.bias_correction1),
                     static_cast<A>(std::sqrt(p.bias_correction2)), static_cast<A>(p.eps)};
    LLOCO_DISPATCH_FLOAT(grad_dt, "adamw", G, {
      // Four elements per pack keeps an f32 pack at 16 bytes and half types at 8.
      constexpr int V = 4;
      bool vec = (reinterpret_cast<uintptr_t>(param) | reinterpret_cast<uintptr_t>(m) |
                  reinterpret_cast<uintptr_t>(v)) % (sizeof(T) * V) == 0 &&
                 reinterpret_cast<uintptr_t>(grad) % (sizeof(G) * V) == 0;
      auto* w = static_cast<T*>(param);
      auto* m1 = static_cast<T*>(m);
      auto* m2 = static_cast<T*>(v);
      auto* g = static_cast<const G*>(grad);
      if (vec)
        LLOCO_LAUNCH(grid_for(n / V + 1, kThreads), kThreads, 0, stream, adamw_kernel<T, G, V>)(w, m1, m2, g, n, c);
      else
        LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, adamw_kernel<T, G, 1>)(w, m1, m2, g, n, c);
    });
  });
  CUDA_LAUNCH_CHECK(stream, "adamw");
}

}  // namespace lloco::cuda_kernels
