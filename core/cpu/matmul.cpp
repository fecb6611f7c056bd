// CPU matmul through Eigen: out [B, M, N] (+)= a [B, M, K] @ b [B, K, N]. Operands with a unit inner
// or outer stride are mapped in place (row- or column-major), so transposed views cost no copy.
// Eigen's GEMM uses OpenMP threads; batches run in parallel instead when there are enough of them.
// f32 products of few rows against a [N, K] weight view (x @ w^T) take gemm_skinny instead, and so do
// f16 / bf16 ones of any row count, in blocks of rows: the weight is read in its own type (a half
// model's decode streams 2 bytes per weight) and never widened whole.

// GCC 12 warns inside its own AVX-512 intrinsics where Eigen's reductions inline them (GCC bug
// 105593); the warnings point into the compiler's headers, not at this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <Eigen/Core>
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_common.h"
#include "core/cpu/half_convert.h"
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
        gemm_skinny(c, out.strides[1], out.strides[2], A.ptr, A.rs, Bm.ptr, DType::F32, Bm.cs, M, N, K, accumulate);
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

// True when r's elements fill [data, data + numel) exactly, in some order of its dims (contiguous or a
// permuted view of a contiguous tensor, such as a transposed weight): it can be converted as one run.
bool is_dense(const TensorRef& r) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of the dims that are not 1
  for (int d = 0; d < r.ndim; ++d)
    if (r.shape[d] != 1) dims.emplace_back(r.strides[d], r.shape[d]);
  std::sort(dims.begin(), dims.end());
  int64_t expected = 1;
  for (const auto& [stride, size] : dims) {
    if (stride != expected) return false;
    expected *= size;
  }
  return true;
}

bool is_half(DType dt) { return dt == DType::F16 || dt == DType::BF16; }

// Half types: widen to f32, multiply, round once on store (f32 accumulation, as on GPUs). A dense half
// view (keep_layout) or a contiguous one is converted as one vectorized run and keeps its strides;
// anything else is gathered into a contiguous buffer.
TensorRef widen(TensorRef r, std::vector<float>& buf, bool keep_layout = true) {
  const int64_t n = r.numel();
  if (is_half(r.dtype) && (keep_layout ? is_dense(r) : is_contiguous(r))) {
    buf.resize(static_cast<size_t>(n));
    const auto* src = static_cast<const uint16_t*>(r.data);
    const int64_t chunks = std::max<int64_t>(1, n / kGrain);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
      widen_half(src + begin, buf.data() + begin, end - begin, r.dtype);
    }
    TensorRef w = keep_layout ? r : widen_shape(r, buf);
    w.data = buf.data();
    w.dtype = DType::F32;
    return w;
  }
  TensorRef w = widen_shape(r, buf);
  for_each_element<1>(r, {&r}, [&](int64_t i, const std::array<int64_t, 1>& off) {
    buf[static_cast<size_t>(i)] = static_cast<float>(load(r.data, r.dtype, off[0]));
  });
  return w;
}

// Writes the contiguous f32 result `values` (shaped like out) into out, rounding to its dtype.
void store_result(TensorRef out, const std::vector<float>& values) {
  if (is_half(out.dtype) && is_contiguous(out)) {
    auto* dst = static_cast<uint16_t*>(out.data);
    const int64_t n = out.numel(), chunks = std::max<int64_t>(1, n / kGrain);
#pragma omp parallel for schedule(static) if (chunks > 1)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
      narrow_to_half(values.data() + begin, dst + begin, end - begin, out.dtype);
    }
    return;
  }
  for_each_element<1>(out, {&out}, [&](int64_t i, const std::array<int64_t, 1>& off) {
    store(out.data, out.dtype, off[0], values[static_cast<size_t>(i)]);
  });
}

// Rows [m0, m0 + rows) of batch i of a [B, M, X] view, as a [1, rows, X] view.
TensorRef row_block(TensorRef r, int64_t i, int64_t m0, int64_t rows) {
  TensorRef v = r;
  v.data = static_cast<char*>(r.data) +
           (i * r.strides[0] + m0 * r.strides[1]) * static_cast<int64_t>(dtype_size(r.dtype));
  v.shape[0] = 1;
  v.shape[1] = rows;
  return v;
}

// x @ w^T where w is f16 / bf16 in nn.Linear layout (b = w^T has unit stride along K). w goes to
// gemm_skinny in its own dtype, never widened whole; x and out pass through f32 in blocks of
// kSkinnyMaxRows rows, so a prefill of thousands of tokens needs buffers of 128 rows only (whole
// widened operands cost more in page faults and conversion than the product at these sizes).
bool half_linear(TensorRef out, TensorRef a, TensorRef b, bool accumulate) {
  const int64_t B = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  if (!is_half(b.dtype) || b.strides[1] != 1 || K < 16 || N < 1) return false;
  std::vector<float> xbuf, obuf;  // reused by every row block
  for (int64_t i = 0; i < B; ++i)
    for (int64_t m0 = 0; m0 < M; m0 += kSkinnyMaxRows) {
      const int64_t rows = std::min(kSkinnyMaxRows, M - m0);
      const TensorRef x_rows = row_block(a, i, m0, rows), out_rows = row_block(out, i, m0, rows);
      const TensorRef wx = widen(x_rows, xbuf, /*keep_layout=*/false);  // contiguous: unit stride along K
      const TensorRef wo = accumulate ? widen(out_rows, obuf, /*keep_layout=*/false) : widen_shape(out_rows, obuf);
      const auto* w = static_cast<const uint16_t*>(b.data) + i * b.strides[0];
      gemm_skinny(static_cast<float*>(wo.data), N, 1, static_cast<const float*>(wx.data), K, w, b.dtype,
                  b.strides[2], rows, N, K, accumulate);
      store_result(out_rows, obuf);
    }
  return true;
}

}  // namespace

void matmul(TensorRef out, TensorRef a, TensorRef b, bool accumulate) {
  if (accumulate)
    LLOCO_CHECK(out.shape[0] == 1 || out.strides[0] != 0, "matmul_add", "out must not broadcast over the batch");
  if (out.dtype == DType::F32 && a.dtype == DType::F32 && b.dtype == DType::F32)
    return gemm_native<float>(out, a, b, accumulate);
  if (out.dtype == DType::F64 && a.dtype == DType::F64 && b.dtype == DType::F64)
    return gemm_native<double>(out, a, b, accumulate);
  if (half_linear(out, a, b, accumulate)) return;
  std::vector<float> abuf, bbuf, obuf;
  TensorRef wa = widen(a, abuf), wb = widen(b, bbuf);
  TensorRef wo = accumulate ? widen(out, obuf, /*keep_layout=*/false) : widen_shape(out, obuf);
  gemm_native<float>(wo, wa, wb, accumulate);
  store_result(out, obuf);
}

}  // namespace lloco::cpu_impl
