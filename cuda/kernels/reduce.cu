// Reduction kernels. Two shapes of work: a block per output when the reduced elements are
// contiguous or outputs are few (threads stride over the row, then a block reduction), and a
// thread per output otherwise (neighbouring outputs are neighbours in memory, so the serial loop
// over the reduced elements is coalesced across the warp). Softmax uses a warp per row with the
// online max/sum merge, then a second pass that writes.
#include "cuda/kernels/reduce.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

template <typename A>
__device__ __forceinline__ A reduce_identity(ReduceOp op) {
  if (op == ReduceOp::Sum) return A(0);
  return op == ReduceOp::Max ? neg_inf<A>() : -neg_inf<A>();
}

template <typename A>
__device__ __forceinline__ A reduce_combine(ReduceOp op, A a, A b) {
  switch (op) {
    case ReduceOp::Sum: return a + b;
    case ReduceOp::Max: return MaxOp{}(a, b);
    case ReduceOp::Min: return MinOp{}(a, b);
  }
  return a;
}

struct Combine {
  ReduceOp op;
  template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return reduce_combine(op, a, b); }
};

// Offset of reduced element r: one multiply in the common single-dim case.
__device__ __forceinline__ int64_t reduced_offset(int64_t r, const Dims& rd, const Strides& rs) {
  return rd.ndim <= 1 ? r * rs.s[0] : offset_of(r, rd, rs);
}

template <typename T>
__global__ void reduce_block_kernel(void* out, DType out_dt, const T* in, Dims kd, OperandStrides<2> kst, Dims rd,
                                    Strides rs, int64_t n_out, int64_t n_red, ReduceOp op) {
  using A = acc_t<T>;
  __shared__ A scratch[32];
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    int64_t off[2];
    offsets_of<2>(o, n_out, kd, kst, off);
    A acc = reduce_identity<A>(op);
    for (int64_t r = threadIdx.x; r < n_red; r += blockDim.x)
      acc = reduce_combine(op, acc, to_acc<A>(in[off[0] + reduced_offset(r, rd, rs)]));
    acc = block_reduce(acc, Combine{op}, reduce_identity<A>(op), scratch);
    if (threadIdx.x == 0) store_from_double(out, out_dt, off[1], static_cast<double>(acc));
  }
}

template <typename T>
__global__ void reduce_thread_kernel(void* out, DType out_dt, const T* in, Dims kd, OperandStrides<2> kst, Dims rd,
                                     Strides rs, int64_t n_out, int64_t n_red, ReduceOp op) {
  using A = acc_t<T>;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n_out;
       o += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[2];
    offsets_of<2>(o, n_out, kd, kst, off);
    A acc = reduce_identity<A>(op);
    for (int64_t r = 0; r < n_red; ++r) acc = reduce_combine(op, acc, to_acc<A>(in[off[0] + reduced_offset(r, rd, rs)]));
    store_from_double(out, out_dt, off[1], static_cast<double>(acc));
  }
}

// Online softmax state: running max m and sum s of exp(x - m).
template <typename A>
__device__ __forceinline__ void online_merge(A& m, A& s, A m2, A s2) {
  A mx = m > m2 ? m : m2;
  if (mx == neg_inf<A>()) return;  // both empty
  s = s * d_exp(m - mx) + s2 * d_exp(m2 - mx);
  m = mx;
}

template <typename T>
__global__ void softmax_warp_kernel(void* out, DType out_dt, bool same_dt, const T* in, Dims kd, OperandStrides<2> kst,
                                    int64_t rows, int64_t len, int64_t s_in, int64_t s_out, bool log) {
  using A = acc_t<T>;
  int lane = threadIdx.x & 31;
  int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x >> 5);
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x >> 5) + (threadIdx.x >> 5); row < rows; row += warps) {
    int64_t off[2];
    offsets_of<2>(row, rows, kd, kst, off);
    const T* x = in + off[0];
    A m = neg_inf<A>(), s = A(0);
    for (int64_t j = lane; j < len; j += 32) {
      A v = to_acc<A>(x[j * s_in]);
      if (v == neg_inf<A>()) continue;  // contributes exp(-inf) = 0; masked entries must not poison s
      if (v > m) {
        s = s * d_exp(m - v) + A(1);
        m = v;
      } else {
        s += d_exp(v - m);
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      A m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
      online_merge(m, s, m2, s2);
    }
    A lse = m + d_log(s);
    for (int64_t j = lane; j < len; j += 32) {
      A v = to_acc<A>(x[j * s_in]);
      A r = log ? v - lse : d_exp(v - lse);
      if (same_dt)
        static_cast<T*>(out)[off[1] + j * s_out] = from_acc<T>(r);
      else
        store_from_double(out, out_dt, off[1] + j * s_out, static_cast<double>(r));
    }
  }
}

}  // namespace

void launch_reduce(ReduceOp op, void* out, DType out_dt, Dims out_dims, Strides so, const void* in, DType in_dt,
                   Dims in_dims, Strides si, cudaStream_t stream) {
  Dims kd, rd;
  Strides k_in, k_out, r_in;
  for (int i = 0; i < in_dims.ndim; ++i) {
    if (out_dims.size[i] == 1 && in_dims.size[i] != 1) {
      r_in.s[rd.ndim] = si.s[i];
      rd.size[rd.ndim++] = in_dims.size[i];
    } else {
      k_in.s[kd.ndim] = si.s[i];
      k_out.s[kd.ndim] = so.s[i];
      kd.size[kd.ndim++] = in_dims.size[i];
    }
  }
  int64_t n_out = kd.numel(), n_red = rd.numel();
  if (n_out == 0) return;
  Strides* kops[2] = {&k_in, &k_out};
  coalesce(kd, kops, 2);
  Strides* rops[1] = {&r_in};
  coalesce(rd, rops, 1);
  constexpr int kThreads = 256;
  // Inner (unit-stride) reductions and few outputs want a block per output.
  bool inner = rd.ndim >= 1 && r_in.s[rd.ndim - 1] == 1;
  bool per_block = inner || n_out < 2048 || n_red == 0;
  OperandStrides<2> kst{{k_in, k_out}};
  LLOCO_DISPATCH_ALL(in_dt, "reduce", T, {
    auto* x = static_cast<const T*>(in);
    if (per_block) {
      unsigned grid = static_cast<unsigned>(n_out < 65536 * 8 ? n_out : 65536 * 8);
      LLOCO_LAUNCH(grid, kThreads, 0, stream, reduce_block_kernel<T>)(out, out_dt, x, kd, kst, rd, r_in, n_out, n_red, op);
    } else {
      LLOCO_LAUNCH(grid_for(n_out, kThreads), kThreads, 0, stream, reduce_thread_kernel<T>)(out, out_dt, x, kd, kst, rd, r_in,
                                                                                    n_out, n_red, op);
    }
  });
  CUDA_LAUNCH_CHECK(stream, "reduce");
}

void launch_softmax(void* out, DType out_dt, Strides so, const void* in, DType in_dt, Strides si, Dims d, int dim,
                    bool log, cudaStream_t stream) {
  int64_t len = d.size[dim];
  int64_t s_in = si.s[dim], s_out = so.s[dim];
  Dims kd;
  Strides k_in, k_out;
  for (int i = 0; i < d.ndim; ++i) {
    if (i == dim) continue;
    k_in.s[kd.ndim] = si.s[i];
    k_out.s[kd.ndim] = so.s[i];
    kd.size[kd.ndim++] = d.size[i];
  }
  int64_t rows = kd.numel();
  if (rows == 0 || len == 0) return;
  Strides* kops[2] = {&k_in, &k_out};
  coalesce(kd, kops, 2);
  constexpr int kThreads = 256, kRowsPerBlock = kThreads / 32;
  int64_t blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  int64_t cap = static_cast<int64_t>(device_sm_count()) * 32;
  unsigned grid = static_cast<unsigned>(blocks < cap ? blocks : cap);
  LLOCO_DISPATCH_FLOAT(in_dt, "softmax", T, {
    LLOCO_LAUNCH(grid, kThreads, 0, stream, softmax_warp_kernel<T>)(out, out_dt, out_dt == in_dt, static_cast<const T*>(in), kd,
                                                          {{k_in, k_out}}, rows, len, s_in, s_out, log);
  });
  CUDA_LAUNCH_CHECK(stream, "softmax");
}

}  // namespace lloco::cuda_kernels
