// Device-side helpers shared by the kernel files: dtype <-> C++ type mapping, conversions through
// an accumulator type (float for f32/f16/bf16, double for f64), strided offset computation,
// 16-byte packs for vectorized access, warp/block reductions and launch-size helpers.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <limits>

#include "core/dtype.h"
#include "cuda/common.h"
#include "cuda/kernels/layout.h"

// Kernel launches and dynamic shared memory are spelled as macros so that the simt CPU executor
// (cuda/simt/simt.h, which defines its own versions) can compile the same sources as host C++.
#if !defined(LLOCO_SIMT)
#define LLOCO_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<grid, block, smem, stream>>>
#define LLOCO_DYNAMIC_SMEM(type, name, alignment) extern __shared__ __align__(alignment) type name[]
#endif

namespace lloco::cuda_kernels {

// ---- dtype dispatch (host) ------------------------------------------------------------------------

#define LLOCO_CASE_TYPE(enum_v, T_, Alias, ...) \
  case enum_v: {                                \
    using Alias = T_;                           \
    __VA_ARGS__;                                \
    break;                                      \
  }

#define LLOCO_DISPATCH_FLOAT(dt, op, Alias, ...)                                            \
  switch (dt) {                                                                             \
    LLOCO_CASE_TYPE(::lloco::DType::F32, float, Alias, __VA_ARGS__)                         \
    LLOCO_CASE_TYPE(::lloco::DType::F16, __half, Alias, __VA_ARGS__)                        \
    LLOCO_CASE_TYPE(::lloco::DType::BF16, __nv_bfloat16, Alias, __VA_ARGS__)                \
    LLOCO_CASE_TYPE(::lloco::DType::F64, double, Alias, __VA_ARGS__)                        \
    default: LLOCO_FAIL(op, "unsupported dtype ", ::lloco::dtype_name(dt), " (float only)"); \
  }

#define LLOCO_DISPATCH_ALL(dt, op, Alias, ...)                               \
  switch (dt) {                                                              \
    LLOCO_CASE_TYPE(::lloco::DType::F32, float, Alias, __VA_ARGS__)          \
    LLOCO_CASE_TYPE(::lloco::DType::F16, __half, Alias, __VA_ARGS__)         \
    LLOCO_CASE_TYPE(::lloco::DType::BF16, __nv_bfloat16, Alias, __VA_ARGS__) \
    LLOCO_CASE_TYPE(::lloco::DType::F64, double, Alias, __VA_ARGS__)         \
    LLOCO_CASE_TYPE(::lloco::DType::I32, int32_t, Alias, __VA_ARGS__)        \
    LLOCO_CASE_TYPE(::lloco::DType::I64, int64_t, Alias, __VA_ARGS__)        \
  }

// ---- accumulator types and conversions ---------------------------------------------------------------

template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <> struct AccOf<int32_t> { using type = double; };
template <> struct AccOf<int64_t> { using type = double; };
template <typename T> using acc_t = typename AccOf<T>::type;

template <typename A> __device__ __forceinline__ A to_acc(float x) { return static_cast<A>(x); }
template <typename A> __device__ __forceinline__ A to_acc(double x) { return static_cast<A>(x); }
template <typename A> __device__ __forceinline__ A to_acc(__half x) { return static_cast<A>(__half2float(x)); }
template <typename A> __device__ __forceinline__ A to_acc(__nv_bfloat16 x) { return static_cast<A>(__bfloat162float(x)); }
template <typename A> __device__ __forceinline__ A to_acc(int32_t x) { return static_cast<A>(x); }
template <typename A> __device__ __forceinline__ A to_acc(int64_t x) { return static_cast<A>(x); }

// Half types round from float (round-to-nearest-even), as the CPU reference does.
template <typename T> struct Cast {
  template <typename A> __device__ __forceinline__ static T from(A x) { return static_cast<T>(x); }
};
template <> struct Cast<__half> {
  template <typename A> __device__ __forceinline__ static __half from(A x) { return __float2half_rn(static_cast<float>(x)); }
};
template <> struct Cast<__nv_bfloat16> {
  template <typename A> __device__ __forceinline__ static __nv_bfloat16 from(A x) { return __float2bfloat16_rn(static_cast<float>(x)); }
};
// Float -> int truncates toward zero like a C cast; NaN becomes 0 instead of being undefined.
template <> struct Cast<int32_t> {
  template <typename A> __device__ __forceinline__ static int32_t from(A x) { return x == x ? static_cast<int32_t>(x) : 0; }
};
template <> struct Cast<int64_t> {
  template <typename A> __device__ __forceinline__ static int64_t from(A x) { return x == x ? static_cast<int64_t>(x) : 0; }
};
template <typename T, typename A> __device__ __forceinline__ T from_acc(A x) { return Cast<T>::from(x); }

// Runtime-typed access for operands whose dtype varies independently (conditions, targets,
// per-row scalars); the switch is uniform across a warp, so it costs a few instructions.
__device__ __forceinline__ double load_as_double(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case DType::F64: return static_cast<const double*>(p)[i];
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I64: return static_cast<double>(static_cast<const int64_t*>(p)[i]);
  }
  return 0.0;
}
__device__ __forceinline__ int64_t load_as_int(const void* p, DType dt, int64_t i) {
  switch (dt) {
    case DType::I32: return static_cast<const int32_t*>(p)[i];
    case DType::I64: return static_cast<const int64_t*>(p)[i];
    default: return static_cast<int64_t>(load_as_double(p, dt, i));
  }
}
__device__ __forceinline__ void store_from_double(void* p, DType dt, int64_t i, double v) {
  switch (dt) {
    case DType::F32: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    case DType::F16: static_cast<__half*>(p)[i] = __float2half_rn(static_cast<float>(v)); break;
    case DType::BF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(static_cast<float>(v)); break;
    case DType::F64: static_cast<double*>(p)[i] = v; break;
    case DType::I32: static_cast<int32_t*>(p)[i] = Cast<int32_t>::from(v); break;
    case DType::I64: static_cast<int64_t*>(p)[i] = Cast<int64_t>::from(v); break;
  }
}

// ---- math overloads so templates read the same for float and double -------------------------------

__device__ __forceinline__ float d_exp(float x) { return expf(x); }
__device__ __forceinline__ double d_exp(double x) { return exp(x); }
__device__ __forceinline__ float d_log(float x) { return logf(x); }
__device__ __forceinline__ double d_log(double x) { return log(x); }
__device__ __forceinline__ float d_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double d_sqrt(double x) { return sqrt(x); }
template <typename A> __device__ __forceinline__ A neg_inf();
template <> __device__ __forceinline__ float neg_inf<float>() { return __int_as_float(0xff800000); }
template <> __device__ __forceinline__ double neg_inf<double>() { return __longlong_as_double(0xfff0000000000000ll); }
template <typename A> __device__ __forceinline__ bool is_nan(A x) { return x != x; }

// ---- strided offsets ----------------------------------------------------------------------------------

// N operands' strides travel as one kernel parameter; loops over dims are fully unrolled so
// every index into it is a compile-time constant (no local-memory copy of the parameter).
template <int N>
struct OperandStrides {
  Strides op[N];
};

// Offsets of the element with row-major linear index `i` (of `n`) in N operands sharing shape `d`.
// 32-bit division is several times cheaper, so it is used whenever all of `n` fits.
template <int N>
__device__ __forceinline__ void offsets_of(int64_t i, int64_t n, const Dims& d, const OperandStrides<N>& st,
                                           int64_t (&off)[N]) {
#pragma unroll
  for (int o = 0; o < N; ++o) off[o] = 0;
  if (n < (int64_t(1) << 31)) {
    uint32_t r = static_cast<uint32_t>(i);
#pragma unroll
    for (int k = kDims - 1; k >= 0; --k) {
      if (k < d.ndim) {
        uint32_t sz = static_cast<uint32_t>(d.size[k]);
        uint32_t c = r % sz;
        r /= sz;
#pragma unroll
        for (int o = 0; o < N; ++o) off[o] += static_cast<int64_t>(c) * st.op[o].s[k];
      }
    }
  } else {
    int64_t r = i;
#pragma unroll
    for (int k = kDims - 1; k >= 0; --k) {
      if (k < d.ndim) {
        int64_t c = r % d.size[k];
        r /= d.size[k];
#pragma unroll
        for (int o = 0; o < N; ++o) off[o] += c * st.op[o].s[k];
      }
    }
  }
}

__device__ __forceinline__ int64_t offset_of(int64_t i, const Dims& d, const Strides& s) {
  int64_t off = 0, r = i;
#pragma unroll
  for (int k = kDims - 1; k >= 0; --k) {
    if (k < d.ndim) {
      off += (r % d.size[k]) * s.s[k];
      r /= d.size[k];
    }
  }
  return off;
}

// ---- 16-byte packs ----------------------------------------------------------------------------------

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};
template <typename T> constexpr int kVec = 16 / sizeof(T) > 0 ? 16 / sizeof(T) : 1;

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---- reductions -----------------------------------------------------------------------------------------

struct SumOp {
  template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};
struct MaxOp {  // NaN-propagating
  template <typename A> __device__ __forceinline__ A operator()(A a, A b) const {
    return is_nan(a) ? a : (is_nan(b) ? b : (a > b ? a : b));
  }
};
struct MinOp {
  template <typename A> __device__ __forceinline__ A operator()(A a, A b) const {
    return is_nan(a) ? a : (is_nan(b) ? b : (a < b ? a : b));
  }
};

template <typename A, typename Op>
__device__ __forceinline__ A warp_reduce(A v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Every thread of the block gets the result. `scratch` holds >= 32 values; the trailing barrier
// lets callers reuse it immediately.
template <typename A, typename Op>
__device__ __forceinline__ A block_reduce(A v, Op op, A identity, A* scratch) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  A r = lane < nwarps ? scratch[lane] : identity;
  r = warp_reduce(r, op);
  __syncthreads();
  return r;
}

// ---- launch helpers (host) -----------------------------------------------------------------------

// Grid for a grid-stride loop over n items: enough blocks to fill the GPU a few times over.
inline unsigned grid_for(int64_t n, int threads) {
  int64_t blocks = (n + threads - 1) / threads;
  int64_t cap = static_cast<int64_t>(device_sm_count()) * 16;
  if (blocks > cap) blocks = cap;
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

__device__ __forceinline__ void raise_error(int* flag, int code) { atomicOr(flag, code); }

}  // namespace lloco::cuda_kernels
