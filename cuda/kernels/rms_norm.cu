// RMSNorm kernels: one 256-thread block per row (4096 bf16 = 2 packs of 8 per thread). The row is
// read twice (statistics, then output); the second read hits L1/L2.
#include "cuda/kernels/rms_norm.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

constexpr int kThreads = 256;
constexpr int64_t kBwdBlocks = 256;  // fixed, so dweight's summation order is device-independent

template <typename T, typename W, int V>
__global__ void rms_norm_fwd_kernel(T* out, int64_t ors, RowVec rstd, const T* x, int64_t xrs, const W* w, int64_t ws,
                                    int64_t D, acc_t<T> eps) {
  using A = acc_t<T>;
  __shared__ A scratch[32];
  const T* row = x + blockIdx.x * xrs;
  T* orow = out + blockIdx.x * ors;
  int64_t packs = V > 1 ? D / V : 0;
  A ss = 0;
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    Pack<T, V> v = reinterpret_cast<const Pack<T, V>*>(row)[p];
#pragma unroll
    for (int k = 0; k < V; ++k) {
      A a = to_acc<A>(v.v[k]);
      ss += a * a;
    }
  }
  for (int64_t j = packs * V + threadIdx.x; j < D; j += blockDim.x) {
    A a = to_acc<A>(row[j]);
    ss += a * a;
  }
  ss = block_reduce(ss, SumOp{}, A(0), scratch);
  A r = A(1) / d_sqrt(ss / static_cast<A>(D) + eps);
  if (threadIdx.x == 0) store_from_double(rstd.data, rstd.dtype, blockIdx.x * rstd.stride, static_cast<double>(r));
  for (int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
    Pack<T, V> v = reinterpret_cast<const Pack<T, V>*>(row)[p];
#pragma unroll
    for (int k = 0; k < V; ++k) v.v[k] = from_acc<T>(to_acc<A>(v.v[k]) * r * to_acc<A>(w[(p * V + k) * ws]));
    reinterpret_cast<Pack<T, V>*>(orow)[p] = v;
  }
  for (int64_t j = packs * V + threadIdx.x; j < D; j += blockDim.x)
    orow[j] = from_acc<T>(to_acc<A>(row[j]) * r * to_acc<A>(w[j * ws]));
}

// Block g handles rows g, g + G, ...; its dweight partial lives in shared memory (D floats).
template <typename T, typename W>
__global__ void rms_norm_bwd_kernel(T* dx, int64_t dxrs, const T* dy, int64_t dyrs, const T* x, int64_t xrs,
                                    const W* w, int64_t ws, RowVec rstd, int64_t N, int64_t D, acc_t<T>* partial) {
  using A = acc_t<T>;
  LLOCO_DYNAMIC_SMEM(unsigned char, dw_raw, 16);
  A* dw_s = reinterpret_cast<A*>(dw_raw);
  __shared__ A scratch[32];
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) dw_s[j] = A(0);
  for (int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * xrs;
    const T* gr = dy + n * dyrs;
    A r = static_cast<A>(load_as_double(rstd.data, rstd.dtype, n * rstd.stride));
    A dot = 0;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
      dot += to_acc<A>(w[j * ws]) * to_acc<A>(gr[j]) * to_acc<A>(xr[j]);
    dot = block_reduce(dot, SumOp{}, A(0), scratch);
    A c = dot * r * r * r / static_cast<A>(D);
    T* dr = dx + n * dxrs;
    for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
      A xv = to_acc<A>(xr[j]), g = to_acc<A>(gr[j]);
      dr[j] = from_acc<T>(to_acc<A>(w[j * ws]) * g * r - xv * c);
      dw_s[j] += g * xv * r;  // each j is owned by one thread: no race
    }
  }
  __syncthreads();
  for (int64_t j = threadIdx.x; j < D; j += blockDim.x) partial[blockIdx.x * D + j] = dw_s[j];
}

template <typename A>
__global__ void sum_partials_kernel(RowVec dweight, const A* partial, int64_t G, int64_t D) {
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < D;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A s = 0;
    for (int64_t g = 0; g < G; ++g) s += partial[g * D + j];
    store_from_double(dweight.data, dweight.dtype, j * dweight.stride, s);
  }
}

template <typename T>
bool vec_ok(const RowMajor& m) {
  return aligned16(m.data) && (m.row_stride * static_cast<int64_t>(sizeof(T))) % 16 == 0;
}

}  // namespace

void launch_rms_norm_fwd(RowMajor out, RowVec rstd, RowMajor x, DType dt, RowVec weight, int64_t N, int64_t D,
                         double eps, cudaStream_t stream) {
  if (N == 0) return;
  LLOCO_CHECK(N < (int64_t(1) << 31), "rms_norm", "too many rows: ", N);
  LLOCO_CHECK(weight.dtype == dt || weight.dtype == DType::F32, "rms_norm", "weight dtype ",
              dtype_name(weight.dtype), " must be ", dtype_name(dt), " or f32");
  LLOCO_DISPATCH_FLOAT(dt, "rms_norm", T, {
    using A = acc_t<T>;
    constexpr int V = kVec<T>;
    auto launch = [&](auto wtag) {
      using W = decltype(wtag);
      const W* w = static_cast<const W*>(weight.data);
      T* o = static_cast<T*>(out.data);
      const T* xi = static_cast<const T*>(x.data);
      if (vec_ok<T>(out) && vec_ok<T>(x) && D >= V)
        LLOCO_LAUNCH(static_cast<unsigned>(N), kThreads, 0, stream, rms_norm_fwd_kernel<T, W, V>)(
            o, out.row_stride, rstd, xi, x.row_stride, w, weight.stride, D, static_cast<A>(eps));
      else
        LLOCO_LAUNCH(static_cast<unsigned>(N), kThreads, 0, stream, rms_norm_fwd_kernel<T, W, 1>)(
            o, out.row_stride, rstd, xi, x.row_stride, w, weight.stride, D, static_cast<A>(eps));
    };
    if (weight.dtype == dt) launch(T{});
    else launch(float{});
  });
  CUDA_LAUNCH_CHECK(stream, "rms_norm_fwd");
}

size_t rms_norm_bwd_workspace_bytes(int64_t N, int64_t D) {
  int64_t G = N < kBwdBlocks ? N : kBwdBlocks;
  return static_cast<size_t>(G < 1 ? 1 : G) * static_cast<size_t>(D) * sizeof(double);
}

void launch_rms_norm_bwd(RowMajor dx, RowVec dweight, RowMajor dy, RowMajor x, DType dt, RowVec weight, RowVec rstd,
                         int64_t N, int64_t D, void* workspace, cudaStream_t stream) {
  if (D == 0) return;
  LLOCO_CHECK(weight.dtype == dt || weight.dtype == DType::F32, "rms_norm", "weight dtype ",
              dtype_name(weight.dtype), " must be ", dtype_name(dt), " or f32");
  int64_t G = N < kBwdBlocks ? N : kBwdBlocks;
  LLOCO_DISPATCH_FLOAT(dt, "rms_norm", T, {
    using A = acc_t<T>;
    A* partial = static_cast<A*>(workspace);
    size_t smem = static_cast<size_t>(D) * sizeof(A);
    if (G > 0) {
      auto launch = [&](auto wtag) {
        using W = decltype(wtag);
        auto kernel = rms_norm_bwd_kernel<T, W>;
        if (smem > 48 * 1024)
          CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)));
        LLOCO_LAUNCH(static_cast<unsigned>(G), kThreads, smem, stream, kernel)(
            static_cast<T*>(dx.data), dx.row_stride, static_cast<const T*>(dy.data), dy.row_stride,
            static_cast<const T*>(x.data), x.row_stride, static_cast<const W*>(weight.data), weight.stride, rstd, N, D,
            partial);
      };
      if (weight.dtype == dt) launch(T{});
      else launch(float{});
      CUDA_LAUNCH_CHECK(stream, "rms_norm_bwd");
    } else {  // no rows: dweight = 0
      CUDA_CHECK(cudaMemsetAsync(partial, 0, static_cast<size_t>(D) * sizeof(A), stream));
    }
    LLOCO_LAUNCH(grid_for(D, kThreads), kThreads, 0, stream, sum_partials_kernel<A>)(dweight, partial, G > 0 ? G : 1, D);
  });
  CUDA_LAUNCH_CHECK(stream, "rms_norm_bwd");
}

}  // namespace lloco::cuda_kernels
