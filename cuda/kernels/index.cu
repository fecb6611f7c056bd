// Index kernels, one thread per element of the iterated tensor. The indexed dim is folded into
// the strided iteration: the gathered/scattered operand gets stride 0 on `dim`, and the index
// operand supplies the position, so every family is one offsets_of<3> call per element.
#include "cuda/kernels/index.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

constexpr int kThreads = 256;

// Reads: op 0 = out, op 1 = source with stride 0 on dim, op 2 = index.
template <typename W>
__global__ void gather_rows_kernel(W* out, const W* in, const void* index, DType idx_dt, OperandStrides<3> st,
                                   int64_t src_stride, int64_t src_len, Dims d, int64_t n, int* err, int code) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[3];
    offsets_of<3>(i, n, d, st, off);
    int64_t j = load_as_int(index, idx_dt, off[2]);
    if (j < 0 || j >= src_len) {
      raise_error(err, code);
      out[off[0]] = W(0);
      continue;
    }
    out[off[0]] = in[off[1] + j * src_stride];
  }
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(__half* p, __half v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(__nv_bfloat16* p, __nv_bfloat16 v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(reinterpret_cast<int*>(p), v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));  // two's complement
}

// Writes: op 0 = src, op 1 = destination with stride 0 on dim, op 2 = index.
template <typename T>
__global__ void scatter_add_kernel(T* out, const T* src, const void* index, DType idx_dt, OperandStrides<3> st,
                                   int64_t dst_stride, int64_t dst_len, Dims d, int64_t n, int* err) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t off[3];
    offsets_of<3>(i, n, d, st, off);
    int64_t j = load_as_int(index, idx_dt, off[2]);
    if (j < 0 || j >= dst_len) {
      raise_error(err, kErrIndexRange);
      continue;
    }
    atomic_add(out + off[1] + j * dst_stride, src[off[0]]);
  }
}

void gather_rows(void* out, const void* in, DType dt, const IndexArg& index, OperandStrides<3> st, int64_t src_stride,
                 int64_t src_len, Dims d, int code, cudaStream_t stream) {
  int64_t n = d.numel();
  Strides* ops[3] = {&st.op[0], &st.op[1], &st.op[2]};
  coalesce(d, ops, 3);
  unsigned grid = grid_for(n, kThreads);
  int* err = device_error_flag();
  switch (dtype_size(dt)) {
    case 2: LLOCO_LAUNCH(grid, kThreads, 0, stream, gather_rows_kernel<uint16_t>)(static_cast<uint16_t*>(out), static_cast<const uint16_t*>(in), index.data, index.dtype, st, src_stride, src_len, d, n, err, code); break;
    case 4: LLOCO_LAUNCH(grid, kThreads, 0, stream, gather_rows_kernel<uint32_t>)(static_cast<uint32_t*>(out), static_cast<const uint32_t*>(in), index.data, index.dtype, st, src_stride, src_len, d, n, err, code); break;
    default: LLOCO_LAUNCH(grid, kThreads, 0, stream, gather_rows_kernel<uint64_t>)(static_cast<uint64_t*>(out), static_cast<const uint64_t*>(in), index.data, index.dtype, st, src_stride, src_len, d, n, err, code); break;
  }
}

void scatter_rows(void* out, const void* src, DType dt, const IndexArg& index, OperandStrides<3> st,
                  int64_t dst_stride, int64_t dst_len, Dims d, cudaStream_t stream) {
  int64_t n = d.numel();
  Strides* ops[3] = {&st.op[0], &st.op[1], &st.op[2]};
  coalesce(d, ops, 3);
  unsigned grid = grid_for(n, kThreads);
  int* err = device_error_flag();
  LLOCO_DISPATCH_ALL(dt, "scatter_add", T, {
    LLOCO_LAUNCH(grid, kThreads, 0, stream, scatter_add_kernel<T>)(static_cast<T*>(out), static_cast<const T*>(src), index.data,
                                                         index.dtype, st, dst_stride, dst_len, d, n, err);
  });
}

// Strides with `dim` zeroed (the indexed operand) and the 1-D index spread over `dim` only.
Strides without_dim(Strides s, int dim) {
  s.s[dim] = 0;
  return s;
}
Strides only_dim(int64_t stride, int dim) {
  Strides s;
  s.s[dim] = stride;
  return s;
}

}  // namespace

void launch_index_select(void* out, Strides so, const void* in, Strides si, int64_t src_len, DType dt, Dims d,
                         int dim, IndexArg index, int error_flag_code, cudaStream_t stream) {
  if (d.numel() == 0) return;
  OperandStrides<3> st{{so, without_dim(si, dim), only_dim(index.strides.s[0], dim)}};
  gather_rows(out, in, dt, index, st, si.s[dim], src_len, d, error_flag_code, stream);
  CUDA_LAUNCH_CHECK(stream, "index_select");
}

void launch_index_add(void* out, Strides so, int64_t dst_len, const void* src, Strides ss, DType dt, Dims d, int dim,
                      IndexArg index, cudaStream_t stream) {
  if (d.numel() == 0) return;
  OperandStrides<3> st{{ss, without_dim(so, dim), only_dim(index.strides.s[0], dim)}};
  scatter_rows(out, src, dt, index, st, so.s[dim], dst_len, d, stream);
  CUDA_LAUNCH_CHECK(stream, "index_add");
}

void launch_gather(void* out, Strides so, const void* in, Strides si, int64_t src_len, DType dt, Dims d, int dim,
                   IndexArg index, cudaStream_t stream) {
  if (d.numel() == 0) return;
  OperandStrides<3> st{{so, without_dim(si, dim), index.strides}};
  gather_rows(out, in, dt, index, st, si.s[dim], src_len, d, kErrIndexRange, stream);
  CUDA_LAUNCH_CHECK(stream, "gather");
}

void launch_scatter_add(void* out, Strides so, int64_t dst_len, const void* src, Strides ss, DType dt, Dims d, int dim,
                        IndexArg index, cudaStream_t stream) {
  if (d.numel() == 0) return;
  OperandStrides<3> st{{ss, without_dim(so, dim), index.strides}};
  scatter_rows(out, src, dt, index, st, so.s[dim], dst_len, d, stream);
  CUDA_LAUNCH_CHECK(stream, "scatter_add");
}

}  // namespace lloco::cuda_kernels
