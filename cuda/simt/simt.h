// Forced include (-include cuda/simt/simt.h, with LLOCO_SIMT defined) for compiling the CUDA kernel
// sources cuda/kernels/*.cu as host C++ that runs on the simt fiber executor (engine.h). It maps
// the CUDA device built-ins our kernels use onto the executor: thread/block indices, barriers,
// warp shuffles, atomics (trivially atomic: one fiber runs at a time), shared memory, fast-math
// intrinsics, and the launch syntax (LLOCO_LAUNCH in cuda/common.cuh). Tensor-core and cp.async
// primitives are emulated in warp_ops.h, which flash_mma.cuh includes in this mode.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "cuda/simt/engine.h"

// Host compilers see __global__/__device__ as nothing already; shared variables become function
// statics, which is exact because blocks run one at a time.
#undef __shared__
#define __shared__ static
#undef __launch_bounds__
#define __launch_bounds__(...)

// kernel<<<grid, block, smem, stream>>>(args) spelled LLOCO_LAUNCH(grid, block, smem, stream, kernel)(args).
#define LLOCO_LAUNCH(grid, block, smem, stream, ...) \
  ::lloco::simt::make_launch(grid, block, smem, stream, __VA_ARGS__, #__VA_ARGS__)

// The block's dynamic shared memory (extern __shared__ in CUDA).
#define LLOCO_DYNAMIC_SMEM(type, name, alignment) type* name = reinterpret_cast<type*>(::lloco::simt::dynamic_smem())

#define threadIdx (::lloco::simt::current().thread_idx)
#define blockIdx (::lloco::simt::current().block_idx)
#define blockDim (::lloco::simt::current().block_dim)
#define gridDim (::lloco::simt::current().grid_dim)

inline void __syncthreads() { ::lloco::simt::sync_threads(); }
[[noreturn]] inline void __trap() { ::lloco::simt::device_trap("__trap()"); }

namespace lloco::simt {

template <typename T>
struct ShflIn {
  T value;
  int arg;  // source lane, lane xor mask, or delta
  int width;
};

// Lane `lane` reads lane src (in its width-segment); a source outside the mask yields its own value.
template <typename T, int kMode>
void shfl_compute(const Slot* in, Slot* out, uint32_t mask) {
  for (int lane = 0; lane < 32; ++lane) {
    if (!(mask & (1u << lane))) continue;
    ShflIn<T> me;
    std::memcpy(&me, in[lane].bytes, sizeof(me));
    const int w = me.width, base = lane & ~(w - 1);
    int src = lane;
    if constexpr (kMode == 0) src = base + (me.arg & (w - 1));      // __shfl_sync
    if constexpr (kMode == 1) src = lane ^ me.arg;                  // __shfl_xor_sync
    if constexpr (kMode == 2) src = lane + me.arg;                  // __shfl_down_sync
    if constexpr (kMode == 3) src = lane - me.arg;                  // __shfl_up_sync
    if (kMode >= 1 && (src < base || src >= base + w)) src = lane;  // outside the segment: own value
    T v = me.value;
    if (mask & (1u << src)) {
      ShflIn<T> other;
      std::memcpy(&other, in[src].bytes, sizeof(other));
      v = other.value;
    }
    std::memcpy(out[lane].bytes, &v, sizeof(T));
  }
}

template <int kMode, typename T>
T shfl(const char* op, uint32_t mask, T v, int arg, int width) {
  static_assert(sizeof(ShflIn<T>) <= kSlotBytes, "shuffled type too large");
  const ShflIn<T> in{v, arg, width};
  T out;
  warp_collective(op, mask, &in, sizeof(in), &out, sizeof(out), &shfl_compute<T, kMode>);
  return out;
}

inline void syncwarp_compute(const Slot*, Slot*, uint32_t) {}

}  // namespace lloco::simt

template <typename T>
T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  return ::lloco::simt::shfl<0>("__shfl_sync", mask, v, src, width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  return ::lloco::simt::shfl<1>("__shfl_xor_sync", mask, v, lane_mask, width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::lloco::simt::shfl<2>("__shfl_down_sync", mask, v, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  return ::lloco::simt::shfl<3>("__shfl_up_sync", mask, v, static_cast<int>(delta), width);
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::lloco::simt::warp_collective("__syncwarp", mask, nullptr, 0, nullptr, 0, &::lloco::simt::syncwarp_compute);
}

// Atomics: fibers never interleave inside one of these, so plain read-modify-write is atomic
// (half types add through their float-rounding operators, as the hardware's atomics round).
template <typename T>
T atomicAdd(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
template <typename T>
T atomicOr(T* p, T v) {
  const T old = *p;
  *p = old | v;
  return old;
}

// CUDA's device min/max overloads, mixed integer types included (they convert to the common type).
template <typename A, typename B>
  requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <typename A, typename B>
  requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}

// The runtime's typed overload exists only under nvcc.
template <typename... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }

inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
template <typename T>
T __ldg(const T* p) {
  return *p;
}
