// Cross-entropy kernels: one 256-thread block per row of logits. With a 32k vocabulary each
// thread handles ~16 packs of 8 bf16, so the row is read once in the forward (online max/sum)
// and once in the backward (exp(x - lse) needs no second reduction).
#include "cuda/kernels/cross_entropy.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

constexpr int kThreads = 256;

template <typename A>
__device__ __forceinline__ void online_add(A& m, A& s, A v) {
  if (v == neg_inf<A>()) return;  // exp(-inf) = 0; an initial -inf must not turn s into NaN
  if (v > m) {
    s = s * d_exp(m - v) + A(1);
    m = v;
  } else {
    s += d_exp(v - m);
  }
}

template <typename A>
__device__ __forceinline__ void online_merge(A& m, A& s, A m2, A s2) {
  A mx = m > m2 ? m : m2;
  if (mx == neg_inf<A>()) return;
  s = s * d_exp(m - mx) + s2 * d_exp(m2 - mx);
  m = mx;
}

// Block-wide merge of (m, s); every thread gets the result.
template <typename A>
__device__ __forceinline__ void block_online_merge(A& m, A& s) {
  __shared__ A sm[32], ss[32];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) online_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  if (lane == 0) {
    sm[warp] = m;
    ss[warp] = s;
  }
  __syncthreads();
  m = lane < nwarps ? sm[lane] : neg_inf<A>();
  s = lane < nwarps ? ss[lane] : A(0);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) online_merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
  __syncthreads();
}

// V > 1: rows are unit-stride and 16-byte aligned; V == 1: any column stride.
template <typename T, int V>
__global__ void ce_fwd_kernel(RowVec loss, RowVec lse, const T* logits, int64_t cols, int64_t rs, int64_t cs,
                              RowVec targets, int64_t ignore_index, int* err) {
  using A = acc_t<T>;
  int64_t n = blockIdx.x;
  const T* row = logits + n * rs;
  A m = neg_inf<A>(), s = A(0);
  int64_t packs = V > 1 ? cols / V : 0;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    Pack<T, V> x = reinterpret_cast<const Pack<T, V>*>(row)[p];
#pragma unroll
    for (int k = 0; k < V; ++k) online_add(m, s, to_acc<A>(x.v[k]));
  }
  for (int64_t j = packs * V + threadIdx.x; j < cols; j += blockDim.x) online_add(m, s, to_acc<A>(row[j * cs]));
  block_online_merge(m, s);
  if (threadIdx.x != 0) return;
  A l = m + d_log(s);
  store_from_double(lse.data, lse.dtype, n * lse.stride, static_cast<double>(l));
  int64_t t = load_as_int(targets.data, targets.dtype, n * targets.stride);
  double value = 0.0;
  if (t != ignore_index) {
    if (t < 0 || t >= cols) {
      raise_error(err, kErrTargetRange);
      value = __longlong_as_double(0x7ff8000000000000ll);  // NaN: never a silent plausible loss
    } else {
      value = static_cast<double>(l - to_acc<A>(row[t * cs]));
    }
  }
  store_from_double(loss.data, loss.dtype, n * loss.stride, value);
}

template <typename T, int V>
__global__ void ce_bwd_kernel(T* dlogits, int64_t drs, int64_t dcs, RowVec dloss, const T* logits, int64_t cols,
                              int64_t rs, int64_t cs, RowVec lse, RowVec targets, int64_t ignore_index) {
  using A = acc_t<T>;
  int64_t n = blockIdx.x;
  const T* row = logits + n * rs;
  T* drow = dlogits + n * drs;
  int64_t t = load_as_int(targets.data, targets.dtype, n * targets.stride);
  A g = t == ignore_index ? A(0) : static_cast<A>(load_as_double(dloss.data, dloss.dtype, n * dloss.stride));
  A l = static_cast<A>(load_as_double(lse.data, lse.dtype, n * lse.stride));
  int64_t packs = V > 1 ? cols / V : 0;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    Pack<T, V> x = reinterpret_cast<const Pack<T, V>*>(row)[p];
    Pack<T, V> y;
#pragma unroll
    for (int k = 0; k < V; ++k) {
      int64_t j = p * V + k;
      y.v[k] = from_acc<T>(g * (d_exp(to_acc<A>(x.v[k]) - l) - (j == t ? A(1) : A(0))));
    }
    reinterpret_cast<Pack<T, V>*>(drow)[p] = y;
  }
  for (int64_t j = packs * V + threadIdx.x; j < cols; j += blockDim.x)
    drow[j * dcs] = from_acc<T>(g * (d_exp(to_acc<A>(row[j * cs]) - l) - (j == t ? A(1) : A(0))));
}

template <typename T>
bool rows_vectorizable(const Matrix& m) {
  constexpr int V = kVec<T>;
  return m.col_stride == 1 && aligned16(m.data) && (m.row_stride * static_cast<int64_t>(sizeof(T))) % 16 == 0 &&
         m.cols >= V;
}

}  // namespace

void launch_cross_entropy_fwd(RowVec loss, RowVec lse, Matrix logits, RowVec targets, int64_t ignore_index,
                              cudaStream_t stream) {
  if (logits.rows == 0) return;
  LLOCO_CHECK(logits.rows < (int64_t(1) << 31), "cross_entropy", "too many rows: ", logits.rows);
  int* err = device_error_flag();
  LLOCO_DISPATCH_FLOAT(logits.dtype, "cross_entropy", T, {
    const T* x = static_cast<const T*>(logits.data);
    unsigned grid = static_cast<unsigned>(logits.rows);
    if (rows_vectorizable<T>(logits))
      LLOCO_LAUNCH(grid, kThreads, 0, stream, ce_fwd_kernel<T, kVec<T>>)(loss, lse, x, logits.cols, logits.row_stride, 1,
                                                               targets, ignore_index, err);
    else
      LLOCO_LAUNCH(grid, kThreads, 0, stream, ce_fwd_kernel<T, 1>)(loss, lse, x, logits.cols, logits.row_stride,
                                                         logits.col_stride, targets, ignore_index, err);
  });
  CUDA_LAUNCH_CHECK(stream, "cross_entropy_fwd");
}

void launch_cross_entropy_bwd(Matrix dlogits, RowVec dloss, Matrix logits, RowVec lse, RowVec targets,
                              int64_t ignore_index, cudaStream_t stream) {
  if (logits.rows == 0) return;
  LLOCO_CHECK(dlogits.dtype == logits.dtype, "cross_entropy", "dlogits dtype ", dtype_name(dlogits.dtype),
              " must match logits dtype ", dtype_name(logits.dtype));
  LLOCO_DISPATCH_FLOAT(logits.dtype, "cross_entropy", T, {
    const T* x = static_cast<const T*>(logits.data);
    T* dx = static_cast<T*>(dlogits.data);
    unsigned grid = static_cast<unsigned>(logits.rows);
    if (rows_vectorizable<T>(logits) && rows_vectorizable<T>(dlogits))
      LLOCO_LAUNCH(grid, kThreads, 0, stream, ce_bwd_kernel<T, kVec<T>>)(dx, dlogits.row_stride, 1, dloss, x, logits.cols,
                                                               logits.row_stride, 1, lse, targets, ignore_index);
    else
      LLOCO_LAUNCH(grid, kThreads, 0, stream, ce_bwd_kernel<T, 1>)(dx, dlogits.row_stride, dlogits.col_stride, dloss, x,
                                                         logits.cols, logits.row_stride, logits.col_stride, lse,
                                                         targets, ignore_index);
  });
  CUDA_LAUNCH_CHECK(stream, "cross_entropy_bwd");
}

}  // namespace lloco::cuda_kernels
