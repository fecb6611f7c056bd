// CPU matmul through Eigen: out [B, M, N] (+)= a [B, M, K] @ b [B, K, N]. Operands with a unit inner
// or outer stride are mapped in place (row- or column-major), so transposed views cost no copy.
// Eigen's GEMM uses OpenMP threads; batches run in parallel instead when there are enough of them.
// f32 products of few rows against a [N, K] weight view (x @ w^T) take gemm_skinny instead, and so do
// f16 / bf16 ones of up to kHalfSkinnyMaxRows rows: the weight is read in its own type (a half model's
// decode streams 2 bytes per weight). Half weights against more rows are widened a panel at a time
// into Eigen's GEMM; no path widens a whole half weight.

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

// A [B, M, X] view whose rows have unit stride, in f32 or a half type: rows are converted by vector code.
bool unit_rows(const TensorRef& r) {
  return r.ndim == 3 && (r.strides[2] == 1 || r.shape[2] == 1) &&
         (r.dtype == DType::F32 || is_half(r.dtype));
}

// Calls fn(row start, index of the row's first element in a dense [B, M, X] layout) for every row of a
// unit_rows view, rows in parallel when there is enough work.
template <typename Fn>
void for_each_row(const TensorRef& r, Fn&& fn) {
  const int64_t rows = r.shape[0] * r.shape[1], X = r.shape[2], esize = static_cast<int64_t>(dtype_size(r.dtype));
  char* base = static_cast<char*>(r.data);
#pragma omp parallel for schedule(static) if (rows * X > kGrain)
  for (int64_t q = 0; q < rows; ++q) {
    const int64_t i = q / r.shape[1], m = q % r.shape[1];
    fn(base + (i * r.strides[0] + m * r.strides[1]) * esize, q * X);
  }
}

// Half types: widen to f32, multiply, round once on store (f32 accumulation, as on GPUs). A dense half
// view (keep_layout) or a contiguous one is converted as one vectorized run and keeps its strides;
// anything else is gathered into a contiguous buffer.
TensorRef widen(TensorRef r, std::vector<float>& buf, bool keep_layout = true) {
  const int64_t n = r.numel();
  if (!keep_layout && !is_contiguous(r) && unit_rows(r)) {  // e.g. a column block of a [B, M, N] out
    TensorRef w = widen_shape(r, buf);
    for_each_row(r, [&](const char* row, int64_t dense) {
      if (r.dtype == DType::F32) std::memcpy(buf.data() + dense, row, static_cast<size_t>(r.shape[2]) * 4);
      else widen_half(reinterpret_cast<const uint16_t*>(row), buf.data() + dense, r.shape[2], r.dtype);
    });
    return w;
  }
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
  if (!is_contiguous(out) && unit_rows(out)) {
    for_each_row(out, [&](char* row, int64_t dense) {
      if (out.dtype == DType::F32) std::memcpy(row, values.data() + dense, static_cast<size_t>(out.shape[2]) * 4);
      else narrow_to_half(values.data() + dense, reinterpret_cast<uint16_t*>(row), out.shape[2], out.dtype);
    });
    return;
  }
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

// Rows [m0, m0 + rows) and columns [c0, c0 + cols) of batch i of a [B, M, X] view, as [1, rows, cols].
TensorRef sub_block(TensorRef r, int64_t i, int64_t m0, int64_t rows, int64_t c0, int64_t cols) {
  TensorRef v = r;
  v.data = static_cast<char*>(r.data) +
           (i * r.strides[0] + m0 * r.strides[1] + c0 * r.strides[2]) * static_cast<int64_t>(dtype_size(r.dtype));
  v.shape[0] = 1;
  v.shape[1] = rows;
  v.shape[2] = cols;
  return v;
}

// A weight shared by the batch ([B, M, K] @ broadcast [K, N]) with batches of a and out that continue
// each other's rows is one [1, B * M, K] product: a batch of decode rows reads the weight once.
void fold_batch(TensorRef& out, TensorRef& a, TensorRef& b) {
  const int64_t B = out.shape[0], M = out.shape[1];
  if (B == 1 || b.strides[0] != 0 || a.strides[0] != M * a.strides[1] || out.strides[0] != M * out.strides[1])
    return;
  out.shape[1] = a.shape[1] = B * M;
  out.shape[0] = a.shape[0] = b.shape[0] = 1;
}

// x @ w^T with few rows, w f16 / bf16 in nn.Linear layout (b = w^T has unit stride along K): w goes to
// gemm_skinny in its own dtype, never widened; x and out pass through f32 (at most
// kHalfSkinnyMaxRows rows, so small buffers).
bool half_linear(TensorRef out, TensorRef a, TensorRef b, bool accumulate) {
  const int64_t B = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  if (!is_half(b.dtype) || b.strides[1] != 1 || K < 16 || N < 1 || M > kHalfSkinnyMaxRows) return false;
  std::vector<float> xbuf, obuf;  // reused by every batch
  for (int64_t i = 0; i < B; ++i) {
    const TensorRef x_rows = sub_block(a, i, 0, M, 0, K), out_rows = sub_block(out, i, 0, M, 0, N);
    const TensorRef wx = widen(x_rows, xbuf, /*keep_layout=*/false);  // contiguous: unit stride along K
    const TensorRef wo = accumulate ? widen(out_rows, obuf, /*keep_layout=*/false) : widen_shape(out_rows, obuf);
    const auto* w = static_cast<const uint16_t*>(b.data) + i * b.strides[0];
    gemm_skinny(static_cast<float*>(wo.data), N, 1, static_cast<const float*>(wx.data), K, w, b.dtype, b.strides[2],
                M, N, K, accumulate);
    store_result(out_rows, obuf);
  }
  return true;
}

// a @ b for an f16 / bf16 b [B, K, N] with unit stride along K (w^T of a [N, K] weight) or along N,
// against many rows of a. Eigen's GEMM packs b anyway; handing it b widened one panel of columns at a
// time (up to panel_bytes of f32) keeps the temporary bounded and widens each weight element once per
// call, a cost the M >= 96 products of that element hide (bf16 4096 x 4096 at M = 512: 324 GFLOP/s,
// against 166 through gemm_skinny's row blocks). A weight shared by the batch is widened once for all.
bool half_panels(TensorRef out, TensorRef a, TensorRef b, bool accumulate, int64_t panel_bytes) {
  const int64_t B = out.shape[0], M = out.shape[1], N = out.shape[2], K = a.shape[2];
  const bool weight_rows = b.strides[1] == 1 || K == 1;  // panel = np rows of w [N, K]
  if (!is_half(b.dtype) || !(weight_rows || b.strides[2] == 1) || K == 0 || N == 0 || M == 0) return false;
  const int64_t by_budget = panel_bytes / (K * static_cast<int64_t>(sizeof(float)));
  const int64_t panel_cols = std::min(N, std::max<int64_t>(16, by_budget / 16 * 16));
  const bool shared_weight = b.strides[0] == 0 || B == 1;
  std::vector<float> abuf, panel(static_cast<size_t>(panel_cols * K)), obuf;
  // Activations: widened once, whole (a dense view such as a transposed dy keeps its layout).
  const TensorRef wa = a.dtype == DType::F32 ? a : widen(a, abuf, /*keep_layout=*/is_dense(a));
  for (int64_t n0 = 0; n0 < N; n0 += panel_cols) {
    const int64_t np = std::min(panel_cols, N - n0);
    for (int64_t i = 0; i < B; ++i) {
      if (i == 0 || !shared_weight) {
        // [np, K] rows of w (weight_rows) or [K, np] slices of b's rows, f32, contiguous.
        const auto* base = static_cast<const uint16_t*>(sub_block(b, i, 0, K, n0, np).data);
        const int64_t lines = weight_rows ? np : K, len = weight_rows ? K : np;
        const int64_t stride = weight_rows ? b.strides[2] : b.strides[1];
#pragma omp parallel for schedule(static) if (np * K > kGrain)
        for (int64_t l = 0; l < lines; ++l) widen_half(base + l * stride, panel.data() + l * len, len, b.dtype);
      }
      const Operand<float> P = weight_rows ? Operand<float>{panel.data(), K, np, 1, K}
                                           : Operand<float>{panel.data(), K, np, np, 1};
      const Operand<float> A{static_cast<const float*>(wa.data) + i * wa.strides[0], M, K, wa.strides[1],
                             wa.strides[2]};
      const TensorRef out_block = sub_block(out, i, 0, M, n0, np);
      if (accumulate) widen(out_block, obuf, /*keep_layout=*/false);  // contiguous [M, np]
      else widen_shape(out_block, obuf);
      gemm_into<float>(Eigen::Map<RowMat<float>>(obuf.data(), M, np), A, P, accumulate);
      store_result(out_block, obuf);
    }
  }
  return true;
}

}  // namespace

void matmul(TensorRef out, TensorRef a, TensorRef b, bool accumulate, int64_t half_panel_bytes) {
  if (accumulate)
    LLOCO_CHECK(out.shape[0] == 1 || out.strides[0] != 0, "matmul_add", "out must not broadcast over the batch");
  fold_batch(out, a, b);
  if (out.dtype == DType::F32 && a.dtype == DType::F32 && b.dtype == DType::F32)
    return gemm_native<float>(out, a, b, accumulate);
  if (out.dtype == DType::F64 && a.dtype == DType::F64 && b.dtype == DType::F64)
    return gemm_native<double>(out, a, b, accumulate);
  if (half_linear(out, a, b, accumulate)) return;
  if (half_panels(out, a, b, accumulate, half_panel_bytes)) return;
  std::vector<float> abuf, bbuf, obuf;
  TensorRef wa = widen(a, abuf), wb = widen(b, bbuf);
  TensorRef wo = accumulate ? widen(out, obuf, /*keep_layout=*/false) : widen_shape(out, obuf);
  gemm_native<float>(wo, wa, wb, accumulate);
  store_result(out, obuf);
}

}  // namespace lloco::cpu_impl
