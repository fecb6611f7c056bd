// CPU reference kernels for multi-adapter LoRA (punica's SGMV/BGMV semantics): every operand may
// have any strides; sums accumulate in f64 and each output is rounded once. Rows run in parallel
// for lora_matmul, (adapter, row of dw) pairs for lora_weight_grad, so results are deterministic.
#include <type_traits>
#include <vector>

#include "core/cpu/cpu_common.h"
#include "core/error.h"

namespace lloco::cpu_impl {

namespace {

// Adapter id of every row, from segments (indptr [S + 1], adapter [S]) or per row (adapter [N]).
std::vector<int64_t> row_adapters(TensorRef indptr, TensorRef adapter, int64_t rows, int64_t adapters,
                                  const char* op) {
  std::vector<int64_t> out(static_cast<size_t>(rows), -1);
  auto checked = [&](int64_t a) {
    LLOCO_CHECK(a < adapters, op, "adapter id ", a, " out of range for L = ", adapters);
    return a;
  };
  if (indptr.data == nullptr) {
    LLOCO_CHECK_EQ(adapter.shape[0], rows, op, "per-row adapter length vs rows");
    for (int64_t r = 0; r < rows; ++r) out[r] = checked(load_index(adapter, r * adapter.strides[0]));
    return out;
  }
  const int64_t S = adapter.shape[0];
  LLOCO_CHECK_EQ(indptr.shape[0], S + 1, op, "indptr length vs segments + 1");
  for (int64_t s = 0; s < S; ++s) {
    const int64_t lo = load_index(indptr, s * indptr.strides[0]), hi = load_index(indptr, (s + 1) * indptr.strides[0]);
    LLOCO_CHECK(lo >= 0 && lo <= hi && hi <= rows, op, "segment ", s, " rows [", lo, ", ", hi,
                ") are not a valid range of ", rows, " rows");
    const int64_t a = checked(load_index(adapter, s * adapter.strides[0]));
    for (int64_t r = lo; r < hi; ++r) out[r] = a;
  }
  return out;
}

// The dtype is a template argument so load/store's switch folds away in the inner loops.
template <DType DT>
void lora_matmul_typed(TensorRef y, TensorRef x, TensorRef w, const std::vector<int64_t>& row_adapter,
                       const LoraMatmulParams& p) {
  const int64_t N = x.shape[0], I = x.shape[1], O = y.shape[1];
  // Strides of w[l] along the reduction (i) and output (o) dims for either layout.
  const int64_t ws_i = p.transpose_w ? w.strides[2] : w.strides[1];
  const int64_t ws_o = p.transpose_w ? w.strides[1] : w.strides[2];
  const bool o_inner = ws_o == 1;  // w rows contiguous in o: stream over o in the inner loop
#pragma omp parallel if (N * I * O > kGrain)
  {
    std::vector<double> xr(static_cast<size_t>(I)), acc(static_cast<size_t>(O));
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t l = row_adapter[n];
      const int64_t yrow = n * y.strides[0];
      if (l < 0) {
        if (!p.accumulate)
          for (int64_t o = 0; o < O; ++o) store(y.data, DT, yrow + o * y.strides[1], 0.0);
        continue;
      }
      for (int64_t i = 0; i < I; ++i) xr[i] = load(x.data, DT, n * x.strides[0] + i * x.strides[1]);
      const int64_t wl = l * w.strides[0];
      if (o_inner) {
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t i = 0; i < I; ++i)
          for (int64_t o = 0; o < O; ++o) acc[o] += xr[i] * load(w.data, DT, wl + i * ws_i + o);
      } else {
        for (int64_t o = 0; o < O; ++o) {
          double s = 0;
          for (int64_t i = 0; i < I; ++i) s += xr[i] * load(w.data, DT, wl + i * ws_i + o * ws_o);
          acc[o] = s;
        }
      }
      for (int64_t o = 0; o < O; ++o) {
        const int64_t off = yrow + o * y.strides[1];
        const double base = p.accumulate ? load(y.data, DT, off) : 0.0;
        store(y.data, DT, off, base + p.scale * acc[o]);
      }
    }
  }
}

template <DType DT>
void lora_weight_grad_typed(TensorRef dw, TensorRef lhs, TensorRef rhs, const std::vector<int64_t>& row_adapter,
                            double scale) {
  const int64_t L = dw.shape[0], P = dw.shape[1], Q = dw.shape[2], N = lhs.shape[0];
  std::vector<std::vector<int64_t>> rows_of(static_cast<size_t>(L));
  for (int64_t n = 0; n < N; ++n)
    if (row_adapter[n] >= 0) rows_of[row_adapter[n]].push_back(n);
#pragma omp parallel if (L * P * Q * (N / (L > 0 ? L : 1) + 1) > kGrain)
  {
    std::vector<double> acc(static_cast<size_t>(Q));
#pragma omp for schedule(dynamic)
    for (int64_t lp = 0; lp < L * P; ++lp) {
      const int64_t l = lp / P, pi = lp % P;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t n : rows_of[l]) {
        const double lv = load(lhs.data, DT, n * lhs.strides[0] + pi * lhs.strides[1]);
        const int64_t rrow = n * rhs.strides[0];
        for (int64_t q = 0; q < Q; ++q) acc[q] += lv * load(rhs.data, DT, rrow + q * rhs.strides[1]);
      }
      const int64_t out = l * dw.strides[0] + pi * dw.strides[1];
      for (int64_t q = 0; q < Q; ++q) store(dw.data, DT, out + q * dw.strides[2], scale * acc[q]);
    }
  }
}

// Calls kernel(std::integral_constant<DType, DT>{}) for the float dtype dt.
template <typename F>
void dispatch_float(DType dt, const char* op, F&& kernel) {
  switch (dt) {
    case DType::F32: return kernel(std::integral_constant<DType, DType::F32>{});
    case DType::F64: return kernel(std::integral_constant<DType, DType::F64>{});
    case DType::F16: return kernel(std::integral_constant<DType, DType::F16>{});
    case DType::BF16: return kernel(std::integral_constant<DType, DType::BF16>{});
    default: LLOCO_FAIL(op, "unsupported dtype ", dtype_name(dt), " (float only)");
  }
}

}  // namespace

void lora_matmul(TensorRef y, TensorRef x, TensorRef w, TensorRef indptr, TensorRef adapter, const LoraMatmulParams& p) {
  const char* op = "lora_matmul";
  LLOCO_CHECK(x.ndim == 2 && y.ndim == 2 && w.ndim == 3, op, "expected x [N, I], w [L, ., .], y [N, O], got ranks ",
              x.ndim, ", ", w.ndim, ", ", y.ndim);
  LLOCO_CHECK(x.dtype == w.dtype && x.dtype == y.dtype, op, "x, w, y dtypes differ: ", dtype_name(x.dtype), ", ",
              dtype_name(w.dtype), ", ", dtype_name(y.dtype));
  const int64_t I = p.transpose_w ? w.shape[2] : w.shape[1], O = p.transpose_w ? w.shape[1] : w.shape[2];
  LLOCO_CHECK_EQ(I, x.shape[1], op, "w input features vs x [N, I] dim 1");
  LLOCO_CHECK_EQ(O, y.shape[1], op, "w output features vs y [N, O] dim 1");
  LLOCO_CHECK_EQ(x.shape[0], y.shape[0], op, "rows of x vs y");
  std::vector<int64_t> rows = row_adapters(indptr, adapter, x.shape[0], w.shape[0], op);
  dispatch_float(x.dtype, op, [&](auto dt) { lora_matmul_typed<decltype(dt)::value>(y, x, w, rows, p); });
}

void lora_weight_grad(TensorRef dw, TensorRef lhs, TensorRef rhs, TensorRef indptr, TensorRef adapter, double scale) {
  const char* op = "lora_weight_grad";
  LLOCO_CHECK(dw.ndim == 3 && lhs.ndim == 2 && rhs.ndim == 2, op,
              "expected dw [L, P, Q], lhs [N, P], rhs [N, Q], got ranks ", dw.ndim, ", ", lhs.ndim, ", ", rhs.ndim);
  LLOCO_CHECK(dw.dtype == lhs.dtype && dw.dtype == rhs.dtype, op, "dw, lhs, rhs dtypes differ: ",
              dtype_name(dw.dtype), ", ", dtype_name(lhs.dtype), ", ", dtype_name(rhs.dtype));
  LLOCO_CHECK_EQ(dw.shape[1], lhs.shape[1], op, "dw [L, P, Q] P vs lhs [N, P] P");
  LLOCO_CHECK_EQ(dw.shape[2], rhs.shape[1], op, "dw [L, P, Q] Q vs rhs [N, Q] Q");
  LLOCO_CHECK_EQ(lhs.shape[0], rhs.shape[0], op, "rows of lhs vs rhs");
  std::vector<int64_t> rows = row_adapters(indptr, adapter, lhs.shape[0], dw.shape[0], op);
  dispatch_float(dw.dtype, op, [&](auto dt) { lora_weight_grad_typed<decltype(dt)::value>(dw, lhs, rhs, rows, scale); });
}

}  // namespace lloco::cpu_impl
