// Elementwise kernels. Each op family has a dense kernel (one unit-stride dim after coalescing,
// 16-byte packs when every pointer is aligned) and a strided kernel (grid-stride loop, offsets from
// the shared shape). Ops are a runtime switch inside the kernel: warp-uniform, and it keeps the
// instantiation count at one per dtype instead of one per (op, dtype).
#include "cuda/kernels/elementwise.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

constexpr int kThreads = 256;

// ---- op definitions -------------------------------------------------------------------------------

template <typename A>
__device__ __forceinline__ A unary_apply(UnaryOp op, A x, A p) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return d_exp(x);
    case UnaryOp::Log: return d_log(x);
    case UnaryOp::Sqrt: return d_sqrt(x);
    case UnaryOp::Rsqrt: return A(1) / d_sqrt(x);
    case UnaryOp::Silu: return x / (A(1) + d_exp(-x));
    case UnaryOp::Erf: return erf(x);
    case UnaryOp::Gelu: return A(0.5) * x * (A(1) + erf(x * A(0.70710678118654752440)));
    case UnaryOp::Sigmoid: return A(1) / (A(1) + d_exp(-x));
    case UnaryOp::Tanh: return tanh(x);
    case UnaryOp::Sin: return sin(x);
    case UnaryOp::Cos: return cos(x);
    case UnaryOp::Abs: return fabs(x);
    case UnaryOp::Relu: return x > A(0) ? x : A(0);
    case UnaryOp::PowScalar: return pow(x, p);
    case UnaryOp::MulScalar: return x * p;
    case UnaryOp::AddScalar: return x + p;
    case UnaryOp::Square: return x * x;
  }
  return x;
}

template <typename A>
__device__ __forceinline__ A binary_apply(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Maximum: return MaxOp{}(a, b);
    case BinaryOp::Minimum: return MinOp{}(a, b);
    case BinaryOp::Eq: return a == b ? A(1) : A(0);
    case BinaryOp::Ne: return a != b ? A(1) : A(0);
    case BinaryOp::Lt: return a < b ? A(1) : A(0);
    case BinaryOp::Le: return a <= b ? A(1) : A(0);
    case BinaryOp::Gt: return a > b ? A(1) : A(0);
    case BinaryOp::Ge: return a >= b ? A(1) : A(0);
  }
  return a;
}

__device__ __forceinline__ int64_t global_tid() { return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// ---- fill (raw bit patterns computed on the host, so the rounding matches core/dtype.h) -----------

template <typename W, int V>
__global__ void fill_dense_kernel(W* out, int64_t n, W value) {
  Pack<W, V> p;
#pragma unroll
  for (int k = 0; k < V; ++k) p.v[k] = value;
  int64_t nv = n / V;
  for (int64_t i = global_tid(); i < nv; i += grid_stride()) reinterpret_cast<Pack<W, V>*>(out)[i] = p;
  for (int64_t i = nv * V + global_tid(); i < n; i += grid_stride()) out[i] = value;
}

template <typename W>
__global__ void fill_strided_kernel(W* out, OperandStrides<1> st, Dims d, int64_t n, W value) {
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[1];
    offsets_of<1>(i, n, d, st, off);
    out[off[0]] = value;
  }
}

template <typename W>
void fill_words(void* out, Dims d, Strides so, W value, cudaStream_t stream) {
  int64_t n = d.numel();
  Strides* ops[1] = {&so};
  coalesce(d, ops, 1);
  if (is_dense(d, ops, 1)) {
    constexpr int V = kVec<W>;
    if (aligned16(out))
      LLOCO_LAUNCH(grid_for(n / V + 1, kThreads), kThreads, 0, stream, fill_dense_kernel<W, V>)(static_cast<W*>(out), n, value);
    else
      LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, fill_dense_kernel<W, 1>)(static_cast<W*>(out), n, value);
  } else {
    LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, fill_strided_kernel<W>)(static_cast<W*>(out), {{so}}, d, n, value);
  }
  CUDA_LAUNCH_CHECK(stream, "fill");
}

// ---- copy ------------------------------------------------------------------------------------------

template <typename To, typename Ti, int V>
__global__ void cast_dense_kernel(To* out, const Ti* in, int64_t n) {
  int64_t nv = n / V;
  for (int64_t i = global_tid(); i < nv; i += grid_stride()) {
    Pack<Ti, V> a = reinterpret_cast<const Pack<Ti, V>*>(in)[i];
    Pack<To, V> b;
#pragma unroll
    for (int k = 0; k < V; ++k) b.v[k] = from_acc<To>(to_acc<float>(a.v[k]));
    reinterpret_cast<Pack<To, V>*>(out)[i] = b;
  }
  for (int64_t i = nv * V + global_tid(); i < n; i += grid_stride()) out[i] = from_acc<To>(to_acc<float>(in[i]));
}

// Same element size, any strides: a bit copy (covers contiguous() of permuted views).
template <typename W>
__global__ void copy_strided_kernel(W* out, const W* in, OperandStrides<2> st, Dims d, int64_t n) {
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[2];
    offsets_of<2>(i, n, d, st, off);
    out[off[0]] = in[off[1]];
  }
}

// Any dtype pair, any strides. Int -> int goes through int64 so large values stay exact.
__global__ void copy_generic_kernel(void* out, DType dto, const void* in, DType dti, bool ints, OperandStrides<2> st,
                                    Dims d, int64_t n) {
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[2];
    offsets_of<2>(i, n, d, st, off);
    if (ints) {
      int64_t v = load_as_int(in, dti, off[1]);
      if (dto == DType::I32)
        static_cast<int32_t*>(out)[off[0]] = static_cast<int32_t>(v);
      else
        static_cast<int64_t*>(out)[off[0]] = v;
    } else {
      store_from_double(out, dto, off[0], load_as_double(in, dti, off[1]));
    }
  }
}

template <typename To, typename Ti>
void cast_dense(void* out, const void* in, int64_t n, cudaStream_t stream) {
  constexpr int V = 16 / (sizeof(To) > sizeof(Ti) ? sizeof(To) : sizeof(Ti));
  auto* o = static_cast<To*>(out);
  auto* a = static_cast<const Ti*>(in);
  bool vec = (reinterpret_cast<uintptr_t>(out) % (sizeof(To) * V)) == 0 &&
             (reinterpret_cast<uintptr_t>(in) % (sizeof(Ti) * V)) == 0;
  if (vec)
    LLOCO_LAUNCH(grid_for(n / V + 1, kThreads), kThreads, 0, stream, cast_dense_kernel<To, Ti, V>)(o, a, n);
  else
    LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, cast_dense_kernel<To, Ti, 1>)(o, a, n);
}

bool is_half_or_f32(DType dt) { return dt == DType::F32 || dt == DType::F16 || dt == DType::BF16; }

template <typename To>
void cast_dense_from(void* out, const void* in, DType dti, int64_t n, cudaStream_t stream) {
  switch (dti) {
    case DType::F32: cast_dense<To, float>(out, in, n, stream); break;
    case DType::F16: cast_dense<To, __half>(out, in, n, stream); break;
    case DType::BF16: cast_dense<To, __nv_bfloat16>(out, in, n, stream); break;
    default: break;
  }
}

// ---- unary / binary / where ---------------------------------------------------------------------------

template <typename T, int V>
__global__ void unary_dense_kernel(T* out, const T* in, int64_t n, UnaryOp op, acc_t<T> param) {
  using A = acc_t<T>;
  int64_t nv = n / V;
  for (int64_t i = global_tid(); i < nv; i += grid_stride()) {
    Pack<T, V> p = reinterpret_cast<const Pack<T, V>*>(in)[i];
#pragma unroll
    for (int k = 0; k < V; ++k) p.v[k] = from_acc<T>(unary_apply<A>(op, to_acc<A>(p.v[k]), param));
    reinterpret_cast<Pack<T, V>*>(out)[i] = p;
  }
  for (int64_t i = nv * V + global_tid(); i < n; i += grid_stride())
    out[i] = from_acc<T>(unary_apply<A>(op, to_acc<A>(in[i]), param));
}

template <typename T>
__global__ void unary_strided_kernel(T* out, const T* in, OperandStrides<2> st, Dims d, int64_t n, UnaryOp op,
                                     acc_t<T> param) {
  using A = acc_t<T>;
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[2];
    offsets_of<2>(i, n, d, st, off);
    out[off[0]] = from_acc<T>(unary_apply<A>(op, to_acc<A>(in[off[1]]), param));
  }
}

template <typename T, int V>
__global__ void binary_dense_kernel(T* out, const T* a, const T* b, int64_t n, BinaryOp op) {
  using A = acc_t<T>;
  int64_t nv = n / V;
  for (int64_t i = global_tid(); i < nv; i += grid_stride()) {
    Pack<T, V> x = reinterpret_cast<const Pack<T, V>*>(a)[i];
    Pack<T, V> y = reinterpret_cast<const Pack<T, V>*>(b)[i];
#pragma unroll
    for (int k = 0; k < V; ++k) x.v[k] = from_acc<T>(binary_apply<A>(op, to_acc<A>(x.v[k]), to_acc<A>(y.v[k])));
    reinterpret_cast<Pack<T, V>*>(out)[i] = x;
  }
  for (int64_t i = nv * V + global_tid(); i < n; i += grid_stride())
    out[i] = from_acc<T>(binary_apply<A>(op, to_acc<A>(a[i]), to_acc<A>(b[i])));
}

template <typename T>
__global__ void binary_strided_kernel(T* out, const T* a, const T* b, OperandStrides<3> st, Dims d, int64_t n,
                                      BinaryOp op) {
  using A = acc_t<T>;
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[3];
    offsets_of<3>(i, n, d, st, off);
    out[off[0]] = from_acc<T>(binary_apply<A>(op, to_acc<A>(a[off[1]]), to_acc<A>(b[off[2]])));
  }
}

template <typename W>
__global__ void where_kernel(W* out, const void* cond, DType cond_dt, const W* a, const W* b, OperandStrides<4> st,
                             Dims d, int64_t n) {
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[4];
    offsets_of<4>(i, n, d, st, off);
    out[off[0]] = load_as_double(cond, cond_dt, off[1]) != 0.0 ? a[off[2]] : b[off[3]];
  }
}

// Mixed dtypes: f64 math and runtime-typed access, one rounding on store (as the CPU reference).
__global__ void unary_generic_kernel(void* out, DType dto, const void* in, DType dti, OperandStrides<2> st, Dims d,
                                     int64_t n, UnaryOp op, double param) {
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[2];
    offsets_of<2>(i, n, d, st, off);
    store_from_double(out, dto, off[0], unary_apply<double>(op, load_as_double(in, dti, off[1]), param));
  }
}

__global__ void binary_generic_kernel(void* out, DType dto, const void* a, DType dta, const void* b, DType dtb,
                                      OperandStrides<3> st, Dims d, int64_t n, BinaryOp op) {
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[3];
    offsets_of<3>(i, n, d, st, off);
    double r = binary_apply<double>(op, load_as_double(a, dta, off[1]), load_as_double(b, dtb, off[2]));
    store_from_double(out, dto, off[0], r);
  }
}

__global__ void where_generic_kernel(void* out, DType dto, const void* cond, DType dtc, const void* a, DType dta,
                                     const void* b, DType dtb, OperandStrides<4> st, Dims d, int64_t n) {
  for (int64_t i = global_tid(); i < n; i += grid_stride()) {
    int64_t off[4];
    offsets_of<4>(i, n, d, st, off);
    bool c = load_as_double(cond, dtc, off[1]) != 0.0;
    store_from_double(out, dto, off[0], c ? load_as_double(a, dta, off[2]) : load_as_double(b, dtb, off[3]));
  }
}

bool all_aligned16(std::initializer_list<const void*> ps) {
  for (const void* p : ps)
    if (!aligned16(p)) return false;
  return true;
}

}  // namespace

// ---- launchers ----------------------------------------------------------------------------------------

void launch_fill(void* out, DType dt, Dims d, Strides so, double value, cudaStream_t stream) {
  if (d.numel() == 0) return;
  switch (dt) {
    case DType::F32: {
      float f = static_cast<float>(value);
      uint32_t w;
      std::memcpy(&w, &f, 4);
      fill_words<uint32_t>(out, d, so, w, stream);
      break;
    }
    case DType::F16: fill_words<uint16_t>(out, d, so, float_to_half(static_cast<float>(value)), stream); break;
    case DType::BF16: fill_words<uint16_t>(out, d, so, float_to_bf16(static_cast<float>(value)), stream); break;
    case DType::F64: {
      uint64_t w;
      std::memcpy(&w, &value, 8);
      fill_words<uint64_t>(out, d, so, w, stream);
      break;
    }
    case DType::I32: fill_words<uint32_t>(out, d, so, static_cast<uint32_t>(static_cast<int32_t>(value)), stream); break;
    case DType::I64: fill_words<uint64_t>(out, d, so, static_cast<uint64_t>(static_cast<int64_t>(value)), stream); break;
  }
}

void launch_copy(void* out, DType out_dt, Strides so, const void* in, DType in_dt, Strides si, Dims d,
                 cudaStream_t stream) {
  int64_t n = d.numel();
  if (n == 0) return;
  Strides* ops[2] = {&so, &si};
  coalesce(d, ops, 2);
  bool dense = is_dense(d, ops, 2);
  if (dense && out_dt == in_dt) {
    CUDA_CHECK(cudaMemcpyAsync(out, in, n * dtype_size(out_dt), cudaMemcpyDeviceToDevice, stream));
    return;
  }
  unsigned grid = grid_for(n, kThreads);
  if (dense && is_half_or_f32(out_dt) && is_half_or_f32(in_dt)) {
    switch (out_dt) {
      case DType::F32: cast_dense_from<float>(out, in, in_dt, n, stream); break;
      case DType::F16: cast_dense_from<__half>(out, in, in_dt, n, stream); break;
      default: cast_dense_from<__nv_bfloat16>(out, in, in_dt, n, stream); break;
    }
  } else if (out_dt == in_dt) {
    OperandStrides<2> st{{so, si}};
    switch (dtype_size(out_dt)) {
      case 2: LLOCO_LAUNCH(grid, kThreads, 0, stream, copy_strided_kernel<uint16_t>)(static_cast<uint16_t*>(out), static_cast<const uint16_t*>(in), st, d, n); break;
      case 4: LLOCO_LAUNCH(grid, kThreads, 0, stream, copy_strided_kernel<uint32_t>)(static_cast<uint32_t*>(out), static_cast<const uint32_t*>(in), st, d, n); break;
      default: LLOCO_LAUNCH(grid, kThreads, 0, stream, copy_strided_kernel<uint64_t>)(static_cast<uint64_t*>(out), static_cast<const uint64_t*>(in), st, d, n); break;
    }
  } else {
    bool ints = dtype_is_int(out_dt) && dtype_is_int(in_dt);
    LLOCO_LAUNCH(grid, kThreads, 0, stream, copy_generic_kernel)(out, out_dt, in, in_dt, ints, {{so, si}}, d, n);
  }
  CUDA_LAUNCH_CHECK(stream, "copy");
}

namespace {
__global__ void arange_kernel(void* out, DType dt, int64_t n, int64_t stride, double start, double step) {
  for (int64_t i = global_tid(); i < n; i += grid_stride())
    store_from_double(out, dt, i * stride, start + step * static_cast<double>(i));
}
}  // namespace

void launch_arange(void* out, DType dt, int64_t n, int64_t stride, double start, double step, cudaStream_t stream) {
  if (n == 0) return;
  LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, arange_kernel)(out, dt, n, stride, start, step);
  CUDA_LAUNCH_CHECK(stream, "arange");
}

void launch_unary(UnaryOp op, void* out, DType out_dt, Strides so, const void* in, DType in_dt, Strides si, Dims d,
                  double param, cudaStream_t stream) {
  int64_t n = d.numel();
  if (n == 0) return;
  Strides* ops[2] = {&so, &si};
  coalesce(d, ops, 2);
  if (out_dt != in_dt) {
    LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, unary_generic_kernel)(out, out_dt, in, in_dt, {{so, si}}, d, n, op,
                                                                          param);
    CUDA_LAUNCH_CHECK(stream, "unary");
    return;
  }
  const DType dt = out_dt;
  bool dense = is_dense(d, ops, 2);
  bool vec = dense && all_aligned16({out, in});
  LLOCO_DISPATCH_ALL(dt, "unary", T, {
    using A = acc_t<T>;
    constexpr int V = kVec<T>;
    auto* o = static_cast<T*>(out);
    auto* x = static_cast<const T*>(in);
    A p = static_cast<A>(param);
    if (vec)
      LLOCO_LAUNCH(grid_for(n / V + 1, kThreads), kThreads, 0, stream, unary_dense_kernel<T, V>)(o, x, n, op, p);
    else if (dense)
      LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, unary_dense_kernel<T, 1>)(o, x, n, op, p);
    else
      LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, unary_strided_kernel<T>)(o, x, {{so, si}}, d, n, op, p);
  });
  CUDA_LAUNCH_CHECK(stream, "unary");
}

void launch_binary(BinaryOp op, void* out, DType out_dt, Strides so, const void* a, DType a_dt, Strides sa,
                   const void* b, DType b_dt, Strides sb, Dims d, cudaStream_t stream) {
  int64_t n = d.numel();
  if (n == 0) return;
  Strides* ops[3] = {&so, &sa, &sb};
  coalesce(d, ops, 3);
  if (out_dt != a_dt || out_dt != b_dt) {
    LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, binary_generic_kernel)(out, out_dt, a, a_dt, b, b_dt,
                                                                           {{so, sa, sb}}, d, n, op);
    CUDA_LAUNCH_CHECK(stream, "binary");
    return;
  }
  const DType dt = out_dt;
  bool dense = is_dense(d, ops, 3);
  bool vec = dense && all_aligned16({out, a, b});
  LLOCO_DISPATCH_ALL(dt, "binary", T, {
    constexpr int V = kVec<T>;
    auto* o = static_cast<T*>(out);
    auto* x = static_cast<const T*>(a);
    auto* y = static_cast<const T*>(b);
    if (vec)
      LLOCO_LAUNCH(grid_for(n / V + 1, kThreads), kThreads, 0, stream, binary_dense_kernel<T, V>)(o, x, y, n, op);
    else if (dense)
      LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, binary_dense_kernel<T, 1>)(o, x, y, n, op);
    else
      LLOCO_LAUNCH(grid_for(n, kThreads), kThreads, 0, stream, binary_strided_kernel<T>)(o, x, y, {{so, sa, sb}}, d, n, op);
  });
  CUDA_LAUNCH_CHECK(stream, "binary");
}

void launch_where(void* out, DType out_dt, Strides so, const void* cond, DType cond_dt, Strides sc, const void* a,
                  DType a_dt, Strides sa, const void* b, DType b_dt, Strides sb, Dims d, cudaStream_t stream) {
  int64_t n = d.numel();
  if (n == 0) return;
  Strides* ops[4] = {&so, &sc, &sa, &sb};
  coalesce(d, ops, 4);
  OperandStrides<4> st{{so, sc, sa, sb}};
  unsigned grid = grid_for(n, kThreads);
  if (out_dt != a_dt || out_dt != b_dt) {
    LLOCO_LAUNCH(grid, kThreads, 0, stream, where_generic_kernel)(out, out_dt, cond, cond_dt, a, a_dt, b, b_dt, st, d, n);
    CUDA_LAUNCH_CHECK(stream, "where");
    return;
  }
  switch (dtype_size(out_dt)) {
    case 2: LLOCO_LAUNCH(grid, kThreads, 0, stream, where_kernel<uint16_t>)(static_cast<uint16_t*>(out), cond, cond_dt, static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), st, d, n); break;
    case 4: LLOCO_LAUNCH(grid, kThreads, 0, stream, where_kernel<uint32_t>)(static_cast<uint32_t*>(out), cond, cond_dt, static_cast<const uint32_t*>(a), static_cast<const uint32_t*>(b), st, d, n); break;
    default: LLOCO_LAUNCH(grid, kThreads, 0, stream, where_kernel<uint64_t>)(static_cast<uint64_t*>(out), cond, cond_dt, static_cast<const uint64_t*>(a), static_cast<const uint64_t*>(b), st, d, n); break;
  }
  CUDA_LAUNCH_CHECK(stream, "where");
}

}  // namespace lloco::cuda_kernels
