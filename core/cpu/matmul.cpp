// CPU matmul through Eigen: out [B, M, N] (+)= a [B, M, K] @ b [B, K, N]. Operands with a unit inner
// or outer stride are mapped in place (row- or column-major), so transposed views cost no copy.
// Eigen's GEMM uses OpenMP threads; batches run in parallel instead when there are enough of them.
// f32 products of few rows against a [N, K] weight view (x @ w^T) take gemm_skinny_f32 instead.

// GCC 12 warns inside its own AVX-512 intrinsics where Eigen's reductions inline them (GCC bug
// 105593); the warnings point into the compiler's headers, not at this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <Eigen/Core>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_common.h"
#include "core/cpu/matmul_skinny.h"
#include "core/error.h"

namespace lloco::cpu_impl {

namespace {

template <typename T>
using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ColMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Stride = Eigen::OuterStride<>;

// 2-D operand: rows x cols with strides (rs, cs) in elements.
template <typename T>
struct Operand {
  const T* ptr;
  int64_t rows, cols, rs, cs;
};

template <typename T, typename Dst>
void gemm_into(Dst&& dst, const Operand<T>& a, const Operand<T>& b, bool accumulate) {
  auto store = [&](const auto& product) {
    if (accumulate) dst.noalias() += product;
    else dst.noalias() = product;
  };
  auto run = [&](const auto& A) {
    if (b.cs == 1 && b.rs >= b.cols) {
      store(A * Eigen::Map<const RowMat<T>, 0, Stride>(b.ptr, b.rows, b.cols, Stride(b.rs)));
    } else if (b.rs == 1 && b.cs >= b.rows) {
      store(A * Eigen::Map<const ColMat<T>, 0, Stride>(b.ptr, b.rows, b.cols, Stride(b.cs)));
    } else {
      ColMat<T> B(b.rows, b.cols);
      for (int64_t i = 0; i < b.rows; ++i)
        for (int64_t j = 0; j < b.cols; ++j) B(i, j) = b.ptr[i * b.rs + j * b.cs];
      store(A * B);
    }
  };
  if (a.cs == 1 && a.rs >= a.cols) {
    run(Eigen::Map<const RowMat<T>, 0, Stride>(a.ptr, a.rows, a.cols, Stride(a.rs)));
  } else if (a.rs == 1 && a.cs >= a.rows) {
    run(Eigen::Map<const ColMat<T>, 0, Stride>(a.ptr, a.rows, a.cols, Stride(a.cs)));
  } else {
    RowMat<T> A(a.rows, a.cols);
    for (int64_t i = 0; i < a.rows; ++i)
      for (int64_t j = 0; j < a.cols; ++j) A(i, j) = a.ptr[i * a.rs + j * a.cs];
    run(A);
  }
}

// Native-type GEMM for f32 / f64. out rows with a unit column stride are written in place; any
// other out view goes through a row-major temporary.
template <typename T>
void gemm_native(TensorRef out, TensorRef a, TensorRef b, bool accumulate) {
  const int64_t B = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  const bool in_place = out.strides[2] == 1 || N == 1;
  auto batch = [&](int64_t i) {
    Operand<T> A{static_cast<const T*>(a.data) + i * a.strides[0], M, K, a.strides[1], a.strides[2]};
    Operand<T> Bm{static_cast<const T*>(b.data) + i * b.strides[0], K, N, b.strides[1], b.strides[2]};
    T* c = static_cast<T*>(out.data) + i * out.strides[0];
    if constexpr (std::is_same_v<T, float>) {
      // b (K x N) is w^T for a row-major w [N, K]: element (k, n) at n * b.cs + k.
      if (M <= kSkinnyMaxRows && A.cs == 1 && Bm.rs == 1 && K >= 16) {
        gemm_skinny_f32(c, out.strides[1], out.strides[2], A.ptr, A.rs, Bm.ptr, Bm.cs, M, N, K, accumulate);
        return;
      }
    }
    if (in_place) {
      Eigen::Map<RowMat<T>, 0, Stride> C(c, M, N, Stride(out.strides[1]));
      if (K == 0) {
        if (!accumulate) C.setZero();
        return;
      }
      gemm_into<T>(C, A, Bm, accumulate);
      return;
    }
    RowMat<T> C(M, N);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < N; ++j) C(r, j) = accumulate ? c[r * out.strides[1] + j * out.strides[2]] : T(0);
    if (K > 0) gemm_into<T>(C, A, Bm, accumulate);
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < N; ++j) c[r * out.strides[1] + j * out.strides[2]] = C(r, j);
  };
  if (B >= omp_get_max_threads() && B > 1) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = 0; i < B; ++i) batch(i);
  } else {
    for (int64_t i = 0; i < B; ++i) batch(i);
  }
}

// An f32 contiguous buffer shaped like r, contents unset.
TensorRef widen_shape(TensorRef r, std::vector<float>& buf) {
  buf.resize(static_cast<size_t>(r.numel()));
  TensorRef w = r;
  w.data = buf.data();
  w.dtype = DType::F32;
  int64_t acc = 1;
  for (int d = r.ndim - 1; d >= 0; --d) {
    w.strides[d] = acc;
    acc *= r.shape[d];
  }
  return w;
}

// Half types: widen to contiguous f32, multiply, round once on store (f32 accumulation, as on GPUs).
TensorRef widen(TensorRef r, std::vector<float>& buf) {
  TensorRef w = widen_shape(r, buf);
  for (int64_t i = 0; i < r.numel(); ++i) buf[i] = static_cast<float>(load(r.data, r.dtype, offset_of(r, i)));
  return w;
}

}  // namespace

void matmul(TensorRef out, TensorRef a, TensorRef b, bool accumulate) {
  if (accumulate)
    LLOCO_CHECK(out.shape[0] == 1 || out.strides[0] != 0, "matmul_add", "out must not broadcast over the batch");
  if (out.dtype == DType::F32 && a.dtype == DType::F32 && b.dtype == DType::F32)
    return gemm_native<float>(out, a, b, accumulate);
  if (out.dtype == DType::F64 && a.dtype == DType::F64 && b.dtype == DType::F64)
    return gemm_native<double>(out, a, b, accumulate);
  std::vector<float> abuf, bbuf, obuf;
  TensorRef wa = widen(a, abuf), wb = widen(b, bbuf);
  TensorRef wo = accumulate ? widen(out, obuf) : widen_shape(out, obuf);
  gemm_native<float>(wo, wa, wb, accumulate);
  for (int64_t i = 0; i < out.numel(); ++i) store(out.data, out.dtype, offset_of(out, i), obuf[i]);
}

}  // namespace lloco::cpu_impl
