// CudaBackend's LoRA kernels: shape/dtype validation naming the op, then TensorRefs -> raw
// pointers and strides for cuda/kernels/lora.cu. Adapter ids are range-checked in-kernel through
// the device error flag (the op layer has already checked its host copies).
#include "cuda/backend.h"
#include "cuda/backend_util.h"
#include "cuda/common.h"
#include "cuda/kernels/lora.cuh"

namespace lloco {

using namespace cuda_kernels;

namespace {

// Size-1 dims never step, so their stride is irrelevant; 0 keeps pack checks from tripping on it.
int64_t stride_of(const TensorRef& t, int d) { return t.shape[d] == 1 ? 0 : t.strides[d]; }

LoraMat lora_mat(const TensorRef& t) { return LoraMat{t.data, stride_of(t, 0), t.shape[1] == 1 ? 1 : t.strides[1]}; }

void check_rank(const TensorRef& t, int rank, const char* op, const char* what, const char* shape) {
  LLOCO_CHECK(t.ndim == rank, op, what, " must be ", shape, " (rank ", rank, "), got rank ", t.ndim);
}

LoraRows lora_rows(const TensorRef& indptr, const TensorRef& adapter, int64_t rows, const char* op) {
  check_rank(adapter, 1, op, "adapter", "[S] or [N]");
  LLOCO_CHECK(adapter.dtype == DType::I32, op, "adapter must be i32, got ", dtype_name(adapter.dtype));
  LoraRows r{nullptr, static_cast<const int32_t*>(adapter.data), 0, adapter.strides[0], adapter.shape[0]};
  if (indptr.data == nullptr) {
    LLOCO_CHECK_EQ(adapter.shape[0], rows, op, "per-row adapter length vs rows");
    return r;
  }
  check_rank(indptr, 1, op, "indptr", "[S + 1]");
  LLOCO_CHECK(indptr.dtype == DType::I32, op, "indptr must be i32, got ", dtype_name(indptr.dtype));
  LLOCO_CHECK_EQ(indptr.shape[0], adapter.shape[0] + 1, op, "indptr length vs segments + 1");
  LLOCO_CHECK(adapter.shape[0] > 0 || rows == 0, op, "no segments for ", rows, " rows");
  r.indptr = static_cast<const int32_t*>(indptr.data);
  r.indptr_stride = indptr.strides[0];
  return r;
}

}  // namespace

void CudaBackend::lora_matmul(TensorRef y, TensorRef x, TensorRef w, TensorRef indptr, TensorRef adapter,
                              const LoraMatmulParams& p, Stream s) {
  const char* op = "lora_matmul";
  check_rank(x, 2, op, "x", "[N, I]");
  check_rank(y, 2, op, "y", "[N, O]");
  check_rank(w, 3, op, "w", p.transpose_w ? "[L, O, I]" : "[L, I, O]");
  LLOCO_CHECK(x.dtype == w.dtype && x.dtype == y.dtype, op, "x, w, y dtypes differ: ", dtype_name(x.dtype), ", ",
              dtype_name(w.dtype), ", ", dtype_name(y.dtype));
  const int in_dim = p.transpose_w ? 2 : 1, out_dim = p.transpose_w ? 1 : 2;
  const int64_t N = x.shape[0], I = x.shape[1], O = y.shape[1];
  LLOCO_CHECK_EQ(w.shape[in_dim], I, op, "w input features vs x [N, I] dim 1");
  LLOCO_CHECK_EQ(w.shape[out_dim], O, op, "w output features vs y [N, O] dim 1");
  LLOCO_CHECK_EQ(y.shape[0], N, op, "rows of y vs rows of x");
  LoraRows rows = lora_rows(indptr, adapter, N, op);
  LoraStack stack{w.data, stride_of(w, 0), w.shape[in_dim] == 1 ? 1 : w.strides[in_dim],
                  w.shape[out_dim] == 1 ? 1 : w.strides[out_dim]};
  launch_lora_matmul(lora_mat(y), lora_mat(x), stack, x.dtype, N, I, O, w.shape[0], rows, p.scale, p.accumulate,
                     to_cuda(s));
}

bool CudaBackend::lora_linear_fused(TensorRef y, TensorRef t, TensorRef x, TensorRef w, TensorRef a, TensorRef b,
                                    TensorRef indptr, TensorRef adapter, double scale, Stream s) {
  const char* op = "lora_linear_fused";
  check_rank(x, 2, op, "x", "[N, I]");
  check_rank(y, 2, op, "y", "[N, O]");
  check_rank(t, 2, op, "t", "[N, r]");
  check_rank(w, 2, op, "w", "[O, I]");
  check_rank(a, 3, op, "a", "[L, r, I]");
  check_rank(b, 3, op, "b", "[L, O, r]");
  for (const TensorRef* u : {&y, &t, &w, &a, &b})
    LLOCO_CHECK(u->dtype == x.dtype, op, "operand dtypes differ: ", dtype_name(u->dtype), " vs x ",
                dtype_name(x.dtype));
  const int64_t N = x.shape[0], I = x.shape[1], O = w.shape[0], R = a.shape[1], L = a.shape[0];
  LLOCO_CHECK_EQ(w.shape[1], I, op, "w in-features vs x [N, I] dim 1");
  LLOCO_CHECK_EQ(a.shape[2], I, op, "a [L, r, I] dim 2 vs x features");
  LLOCO_CHECK(b.shape[0] == L && b.shape[1] == O && b.shape[2] == R, op, "b must be [L, O, r] = [", L, ", ", O, ", ",
              R, "], got [", b.shape[0], ", ", b.shape[1], ", ", b.shape[2], "]");
  LLOCO_CHECK(y.shape[0] == N && y.shape[1] == O, op, "y must be [N, O] = [", N, ", ", O, "], got [", y.shape[0],
              ", ", y.shape[1], "]");
  LLOCO_CHECK(t.shape[0] == N && t.shape[1] == R, op, "t must be [N, r] = [", N, ", ", R, "], got [", t.shape[0],
              ", ", t.shape[1], "]");
  const LoraRows rows = lora_rows(indptr, adapter, N, op);
  const LoraStack a_stack{a.data, stride_of(a, 0), a.shape[2] == 1 ? 1 : a.strides[2], stride_of(a, 1)};
  const LoraStack b_stack{b.data, stride_of(b, 0), b.shape[2] == 1 ? 1 : b.strides[2], stride_of(b, 1)};
  return launch_lora_linear_small(lora_mat(y), lora_mat(t), lora_mat(x), lora_mat(w), a_stack, b_stack, x.dtype, N,
                                  I, O, R, L, rows, scale, to_cuda(s));
}

void CudaBackend::lora_weight_grad(TensorRef dw, TensorRef lhs, TensorRef rhs, TensorRef indptr, TensorRef adapter,
                                   double scale, Stream s) {
  const char* op = "lora_weight_grad";
  check_rank(dw, 3, op, "dw", "[L, P, Q]");
  check_rank(lhs, 2, op, "lhs", "[N, P]");
  check_rank(rhs, 2, op, "rhs", "[N, Q]");
  LLOCO_CHECK(dw.dtype == lhs.dtype && dw.dtype == rhs.dtype, op, "dw, lhs, rhs dtypes differ: ",
              dtype_name(dw.dtype), ", ", dtype_name(lhs.dtype), ", ", dtype_name(rhs.dtype));
  LLOCO_CHECK_EQ(dw.shape[1], lhs.shape[1], op, "dw [L, P, Q] P vs lhs [N, P] P");
  LLOCO_CHECK_EQ(dw.shape[2], rhs.shape[1], op, "dw [L, P, Q] Q vs rhs [N, Q] Q");
  LLOCO_CHECK_EQ(lhs.shape[0], rhs.shape[0], op, "rows of lhs vs rows of rhs");
  LoraRows rows = lora_rows(indptr, adapter, lhs.shape[0], op);
  const int64_t dw_strides[3] = {dw.strides[0], dw.strides[1], dw.strides[2]};
  const int64_t N = lhs.shape[0], P = dw.shape[1], Q = dw.shape[2], L = dw.shape[0];
  // Partial sums of the row splits; stream order makes returning it right after the launch safe.
  const size_t bytes = lora_weight_grad_workspace_bytes(N, P, Q, L, dw.dtype);
  cuda_binding::Workspace ws(alloc_, bytes, to_cuda(s));
  launch_lora_weight_grad(dw.data, dw_strides, lora_mat(lhs), lora_mat(rhs), dw.dtype, N, P, Q, L, rows, scale,
                          ws.get(), to_cuda(s));
}

}  // namespace lloco
