#include "cuda/backend.h"

#include <cstring>

#include "cuda/backend_util.h"
#include "cuda/common.h"
#include "cuda/cuda.h"
#include "cuda/kernels/adamw.cuh"
#include "cuda/kernels/cross_entropy.cuh"
#include "cuda/kernels/elementwise.cuh"
#include "cuda/kernels/index.cuh"
#include "cuda/kernels/random.cuh"
#include "cuda/kernels/reduce.cuh"
#include "cuda/kernels/rms_norm.cuh"
#include "cuda/kernels/rope.cuh"
#include "cuda/matmul.h"
#include "cuda/nccl_communicator.h"

namespace lloco {

using namespace cuda_kernels;
using namespace cuda_binding;

namespace {

void check_dim(int dim, const TensorRef& t, const char* op) {
  LLOCO_CHECK(dim >= 0 && dim < t.ndim, op, "dim ", dim, " out of range for rank ", t.ndim);
}

void check_index_dtype(const TensorRef& t, const char* op) {
  LLOCO_CHECK(t.dtype == DType::I32 || t.dtype == DType::I64, op, "index must be i32/i64, got ", dtype_name(t.dtype));
}

// Index kernels report bad indices through a device flag; in debug mode, surface it right away.
void debug_check_flag(cudaStream_t stream) {
  if (cuda_detail::sync_debug_enabled()) check_device_error_flag(stream);
}

IndexArg index_arg(const TensorRef& t) { return IndexArg{t.data, t.dtype, strides_of(t)}; }
RowVec row_vec(const TensorRef& t) { return RowVec{t.data, t.dtype, t.ndim ? t.strides[0] : 0}; }
Matrix matrix(const TensorRef& t) { return Matrix{t.data, t.dtype, t.shape[0], t.shape[1], t.strides[0], t.strides[1]}; }

RowMajor row_major(const TensorRef& t, const char* op, const char* what) {
  LLOCO_CHECK(t.ndim == 2 && (t.strides[1] == 1 || t.shape[1] <= 1), op, what, " must be [N, D] with unit column stride");
  return RowMajor{t.data, t.strides[0]};
}

}  // namespace

CudaBackend::CudaBackend(CachingAllocator& allocator) : alloc_(allocator) {}
CudaBackend::~CudaBackend() = default;

CublasMatmul& CudaBackend::blas() {
  std::call_once(blas_once_, [this] { blas_ = std::make_unique<CublasMatmul>(alloc_); });
  return *blas_;
}

size_t CudaBackend::matmul_plans_cached() const { return blas_ ? blas_->plans_cached() : 0; }

void CudaBackend::synchronize(Stream s) {
  CUDA_CHECK(cudaStreamSynchronize(to_cuda(s)));
  check_device_error_flag(to_cuda(s));
}

void CudaBackend::copy_bytes(void* dst, const void* src, size_t nbytes, bool dst_on_device, bool src_on_device,
                             Stream s) {
  if (nbytes == 0) return;
  if (!dst_on_device && !src_on_device) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  cudaStream_t stream = to_cuda(s);
  // cudaMemcpyDefault infers the direction from unified addressing; pageable host memory works.
  CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDefault, stream));
  if (!dst_on_device) CUDA_CHECK(cudaStreamSynchronize(stream));  // the caller reads the host buffer next
}

void CudaBackend::fill(TensorRef out, double value, Stream s) {
  launch_fill(out.data, out.dtype, dims_of(out), strides_of(out), value, to_cuda(s));
}

void CudaBackend::copy(TensorRef out, TensorRef in, Stream s) {
  check_same_shape(out, in, "copy", "out/in");
  launch_copy(out.data, out.dtype, strides_of(out), in.data, in.dtype, strides_of(in), dims_of(out), to_cuda(s));
}

void CudaBackend::arange(TensorRef out, double start, double step, Stream s) {
  check_rank(out, 1, "arange", "out");
  launch_arange(out.data, out.dtype, out.shape[0], out.strides[0], start, step, to_cuda(s));
}

void CudaBackend::random(TensorRef out, RandomKind kind, uint64_t seed, uint64_t offset, Stream s) {
  launch_random(out.data, out.dtype, dims_of(out), strides_of(out), kind, seed, offset, to_cuda(s));
}

void CudaBackend::unary(UnaryOp op, TensorRef out, TensorRef in, double param, Stream s) {
  check_same_shape(out, in, "unary", "out/in");
  launch_unary(op, out.data, out.dtype, strides_of(out), in.data, in.dtype, strides_of(in), dims_of(out), param,
               to_cuda(s));
}

void CudaBackend::binary(BinaryOp op, TensorRef out, TensorRef a, TensorRef b, Stream s) {
  check_same_shape(out, a, "binary", "out/a");
  check_same_shape(out, b, "binary", "out/b");
  launch_binary(op, out.data, out.dtype, strides_of(out), a.data, a.dtype, strides_of(a), b.data, b.dtype,
                strides_of(b), dims_of(out), to_cuda(s));
}

void CudaBackend::reduce(ReduceOp op, TensorRef out, TensorRef in, Stream s) {
  LLOCO_CHECK(out.ndim == in.ndim, "reduce", "out rank ", out.ndim, " vs in rank ", in.ndim);
  for (int i = 0; i < in.ndim; ++i)
    LLOCO_CHECK(out.shape[i] == in.shape[i] || out.shape[i] == 1, "reduce", "out dim ", i, " is ", out.shape[i],
                ", in is ", in.shape[i]);
  launch_reduce(op, out.data, out.dtype, dims_of(out), strides_of(out), in.data, in.dtype, dims_of(in), strides_of(in),
                to_cuda(s));
}

void CudaBackend::softmax(TensorRef out, TensorRef in, int dim, bool log, Stream s) {
  check_same_shape(out, in, "softmax", "out/in");
  check_dim(dim, in, "softmax");
  launch_softmax(out.data, out.dtype, strides_of(out), in.data, in.dtype, strides_of(in), dims_of(in), dim, log,
                 to_cuda(s));
}

void CudaBackend::matmul(TensorRef out, TensorRef a, TensorRef b, Stream s) { blas().run(out, a, b, to_cuda(s)); }
void CudaBackend::matmul_add(TensorRef out, TensorRef a, TensorRef b, Stream s) {
  blas().run(out, a, b, to_cuda(s), true);
}

void CudaBackend::index_select(TensorRef out, TensorRef in, int dim, TensorRef index, Stream s) {
  check_dim(dim, in, "index_select");
  check_rank(index, 1, "index_select", "index");
  check_index_dtype(index, "index_select");
  LLOCO_CHECK(out.ndim == in.ndim && out.dtype == in.dtype && out.shape[dim] == index.shape[0], "index_select",
              "out must be in's shape with dim ", dim, " = index length, and in's dtype");
  launch_index_select(out.data, strides_of(out), in.data, strides_of(in), in.shape[dim], out.dtype, dims_of(out), dim,
                      index_arg(index), kErrIndexRange, to_cuda(s));
  debug_check_flag(to_cuda(s));
}

void CudaBackend::index_add(TensorRef out, int dim, TensorRef index, TensorRef src, Stream s) {
  check_dim(dim, out, "index_add");
  check_rank(index, 1, "index_add", "index");
  check_index_dtype(index, "index_add");
  LLOCO_CHECK(out.ndim == src.ndim && out.dtype == src.dtype && src.shape[dim] == index.shape[0], "index_add",
              "src must be out's shape with dim ", dim, " = index length, and out's dtype");
  launch_index_add(out.data, strides_of(out), out.shape[dim], src.data, strides_of(src), out.dtype, dims_of(src), dim,
                   index_arg(index), to_cuda(s));
  debug_check_flag(to_cuda(s));
}

void CudaBackend::gather(TensorRef out, TensorRef in, int dim, TensorRef index, Stream s) {
  check_dim(dim, in, "gather");
  check_index_dtype(index, "gather");
  check_same_shape(out, index, "gather", "out/index");
  LLOCO_CHECK(out.ndim == in.ndim && out.dtype == in.dtype, "gather", "out/in rank or dtype differ");
  launch_gather(out.data, strides_of(out), in.data, strides_of(in), in.shape[dim], out.dtype, dims_of(out), dim,
                index_arg(index), to_cuda(s));
  debug_check_flag(to_cuda(s));
}

void CudaBackend::scatter_add(TensorRef out, int dim, TensorRef index, TensorRef src, Stream s) {
  check_dim(dim, out, "scatter_add");
  check_index_dtype(index, "scatter_add");
  check_same_shape(src, index, "scatter_add", "src/index");
  LLOCO_CHECK(out.ndim == src.ndim && out.dtype == src.dtype, "scatter_add", "out/src rank or dtype differ");
  launch_scatter_add(out.data, strides_of(out), out.shape[dim], src.data, strides_of(src), out.dtype, dims_of(src),
                     dim, index_arg(index), to_cuda(s));
  debug_check_flag(to_cuda(s));
}

void CudaBackend::where(TensorRef out, TensorRef cond, TensorRef a, TensorRef b, Stream s) {
  check_same_shape(out, cond, "where", "out/cond");
  check_same_shape(out, a, "where", "out/a");
  check_same_shape(out, b, "where", "out/b");
  launch_where(out.data, out.dtype, strides_of(out), cond.data, cond.dtype, strides_of(cond), a.data, a.dtype,
               strides_of(a), b.data, b.dtype, strides_of(b), dims_of(out), to_cuda(s));
}

void CudaBackend::cross_entropy_fwd(TensorRef loss, TensorRef lse, TensorRef logits, TensorRef targets,
                                    int64_t ignore_index, Stream s) {
  check_rank(logits, 2, "cross_entropy", "logits");
  check_index_dtype(targets, "cross_entropy");
  launch_cross_entropy_fwd(row_vec(loss), row_vec(lse), matrix(logits), row_vec(targets), ignore_index, to_cuda(s));
  debug_check_flag(to_cuda(s));
}

void CudaBackend::cross_entropy_bwd(TensorRef dlogits, TensorRef dloss, TensorRef logits, TensorRef lse,
                                    TensorRef targets, int64_t ignore_index, Stream s) {
  check_rank(logits, 2, "cross_entropy", "logits");
  check_same_shape(dlogits, logits, "cross_entropy", "dlogits/logits");
  check_index_dtype(targets, "cross_entropy");
  launch_cross_entropy_bwd(matrix(dlogits), row_vec(dloss), matrix(logits), row_vec(lse), row_vec(targets),
                           ignore_index, to_cuda(s));
}

void CudaBackend::rms_norm_fwd(TensorRef out, TensorRef rstd, TensorRef x, TensorRef weight, double eps, Stream s) {
  check_same_shape(out, x, "rms_norm", "out/x");
  LLOCO_CHECK(out.dtype == x.dtype, "rms_norm", "out dtype must match x");
  launch_rms_norm_fwd(row_major(out, "rms_norm", "out"), row_vec(rstd), row_major(x, "rms_norm", "x"), x.dtype,
                      row_vec(weight), x.shape[0], x.shape[1], eps, to_cuda(s));
}

void CudaBackend::rms_norm_bwd(TensorRef dx, TensorRef dweight, TensorRef dy, TensorRef x, TensorRef weight,
                               TensorRef rstd, Stream s) {
  check_same_shape(dx, x, "rms_norm", "dx/x");
  check_same_shape(dy, x, "rms_norm", "dy/x");
  LLOCO_CHECK(dx.dtype == x.dtype && dy.dtype == x.dtype, "rms_norm", "dx/dy dtypes must match x");
  const int64_t N = x.shape[0], D = x.shape[1];
  Workspace ws(alloc_, rms_norm_bwd_workspace_bytes(N, D), to_cuda(s));
  launch_rms_norm_bwd(row_major(dx, "rms_norm", "dx"), row_vec(dweight), row_major(dy, "rms_norm", "dy"),
                      row_major(x, "rms_norm", "x"), x.dtype, row_vec(weight), row_vec(rstd), N, D, ws.get(),
                      to_cuda(s));
}

void CudaBackend::rope(TensorRef out, TensorRef x, TensorRef cos, TensorRef sin, RopeStyle style, bool inverse,
                       Stream s) {
  check_rank(x, 4, "rope", "x");
  check_same_shape(out, x, "rope", "out/x");
  check_rank(cos, 3, "rope", "cos");
  check_same_shape(cos, sin, "rope", "cos/sin");
  LLOCO_CHECK(out.dtype == x.dtype, "rope", "out dtype must match x");
  LLOCO_CHECK(cos.dtype == DType::F32 && sin.dtype == DType::F32, "rope", "tables must be f32");
  LLOCO_CHECK(cos.strides[0] == sin.strides[0] && cos.strides[1] == sin.strides[1] && cos.strides[2] == sin.strides[2],
              "rope", "cos and sin must share strides");
  RopeArgs a{};
  a.B = x.shape[0];
  a.H = x.shape[1];
  a.T = x.shape[2];
  a.D = x.shape[3];
  for (int i = 0; i < 4; ++i) {
    a.x_strides[i] = x.strides[i];
    a.out_strides[i] = out.strides[i];
  }
  for (int i = 0; i < 3; ++i) a.table_strides[i] = cos.strides[i];
  a.table_per_batch = cos.shape[0] != 1;
  launch_rope(out.data, x.data, x.dtype, static_cast<const float*>(cos.data), static_cast<const float*>(sin.data), a,
              style, inverse, to_cuda(s));
}

void CudaBackend::adamw_step(TensorRef param, TensorRef grad, TensorRef m, TensorRef v, const AdamWParams& p,
                             Stream s) {
  const int64_t n = param.numel();
  LLOCO_CHECK(grad.numel() == n && m.numel() == n && v.numel() == n, "adamw", "param/grad/m/v sizes differ");
  LLOCO_CHECK(m.dtype == param.dtype && v.dtype == param.dtype, "adamw", "m/v must have param's dtype ",
              dtype_name(param.dtype));
  launch_adamw(param.data, m.data, v.data, param.dtype, grad.data, grad.dtype, n, p, to_cuda(s));
}

// ---- registration ---------------------------------------------------------------------------------

namespace {
CachingAllocator* g_allocator = nullptr;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver / no device: clear the sticky-free error and report none
    return 0;
  }
  return n;
}

bool cuda_backend_init() {
  static const bool ok = [] {
    if (cuda_device_count() == 0) return false;
    // Leaked on purpose: tensors freed during static destruction still need the allocator, and
    // the CUDA runtime may be gone by then.
    g_allocator = new CachingAllocator();
    register_allocator(DeviceType::CUDA, g_allocator);
    register_backend(DeviceType::CUDA, new CudaBackend(*g_allocator));
    register_nccl_communicator();  // loads NCCL only when a communicator is first made
    return true;
  }();
  return ok;
}

CudaAllocatorStats cuda_allocator_stats() {
  LLOCO_CHECK(g_allocator != nullptr, "cuda", "allocator stats requested but the CUDA backend is not initialized");
  return g_allocator->stats();
}

void cuda_allocator_reset_peak() {
  if (g_allocator) g_allocator->reset_peak();
}

void cuda_empty_cache() {
  if (g_allocator) g_allocator->empty_cache();
}

}  // namespace lloco
