// The CPU backend's matmul on the shapes its skinny path takes (x [M, K] @ w^T with w [N, K],
// M <= kSkinnyMaxRows: core/cpu/matmul_skinny.cpp) and just outside them, against a double
// product summed here in the test: register-tile edges (M % 4, N % 6), the 16-lane k tail, several
// k blocks (K > 1024), accumulation (matmul_add) and out views that are padded or transposed.
// f32, and bf16 / f16 (weights widened in registers for one row tile, through a scratch block for
// more, in f32 panels into Eigen beyond kHalfSkinnyMaxRows rows or when b has unit stride along N),
// each held to one rounding of the output to its dtype.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/cpu/cpu_common.h"
#include "core/cpu/matmul_skinny.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace lloco {
namespace {

// out0 (if accumulating) + x @ w^T in double, [M, N].
std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& out0,
                              int64_t M, int64_t N, int64_t K, bool accumulate) {
  std::vector<double> r(static_cast<size_t>(M * N));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = accumulate ? out0[m * N + n] : 0.0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(x[m * K + k]) * w[n * K + k];
      r[m * N + n] = s;
    }
  return r;
}

enum class OutView { kContiguous, kPadded, kTransposed };

// Runs the CPU backend's matmul / matmul_add into an out view and compares with the reference. Every
// element may be off by the f32 rounding of K products (2e-6 of the largest |reference|) plus, for a
// half dtype, one rounding of the result to that dtype (dtype_eps of the element).
// b is w^T as a view of w [N, K] (nn.Linear layout: unit stride along K), or w^T materialized [K, N]
// (unit stride along N, as in the backward's dy @ w).
enum class BLayout { kWeightView, kRowMajor };

// panel_bytes > 0 calls cpu_impl::matmul with that budget for a half b's f32 panels (so small shapes
// cross panel edges); 0 goes through the backend with the default.
void check(int64_t M, int64_t N, int64_t K, bool accumulate, OutView view, uint64_t seed, DType dt = DType::F32,
           BLayout layout = BLayout::kWeightView, int64_t panel_bytes = 0) {
  const std::string what = std::string(dtype_name(dt)) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                           std::to_string(K) +
                           (accumulate ? " add" : "") +
                           (view == OutView::kPadded ? " padded out" : view == OutView::kTransposed ? " transposed out" : "") +
                           (layout == BLayout::kRowMajor ? " b [K, N]" : "") +
                           (panel_bytes > 0 ? " panels of " + std::to_string(panel_bytes) + " B" : "");
  SCOPED_TRACE(what);
  const Tensor x = randn({1, M, K}, seed, dt), w = randn({N, K}, seed + 1, dt);
  // [1, K, N]: element (k, n) at n * K + k (the view), or at k * N + n (materialized).
  const Tensor wt = layout == BLayout::kWeightView ? w.transpose(0, 1).unsqueeze(0)
                                                    : w.transpose(0, 1).contiguous().unsqueeze(0);
  const Tensor out0 = randn({M, N}, seed + 2, dt);
  // Taken now: with M = 1 the transposed out below may share out0's storage.
  const std::vector<float> out0_values = out0.to_vector<float>();
  Tensor storage;
  Tensor out;  // [1, M, N] view with the requested strides, holding out0
  if (view == OutView::kContiguous) {
    out = out0.clone().unsqueeze(0);
  } else if (view == OutView::kPadded) {
    storage = zeros({M, N + 3}, dt);
    out = storage.narrow(1, 0, N).unsqueeze(0);
    copy_(out, out0.unsqueeze(0));
  } else {
    storage = out0.transpose(0, 1).contiguous();  // [N, M]
    out = storage.transpose(0, 1).unsqueeze(0);
  }
  Backend& cpu = backend_for(DeviceType::CPU);
  if (panel_bytes > 0) cpu_impl::matmul(to_ref(out), to_ref(x), to_ref(wt), accumulate, panel_bytes);
  else if (accumulate) cpu.matmul_add(to_ref(out), to_ref(x), to_ref(wt), Stream{});
  else cpu.matmul(to_ref(out), to_ref(x), to_ref(wt), Stream{});

  const std::vector<double> want =
      reference(x.to_vector<float>(), w.to_vector<float>(), out0_values, M, N, K, accumulate);
  const std::vector<float> got = out.squeeze(0).contiguous().to_vector<float>();
  double scale = 1e-30;
  for (double v : want) scale = std::max(scale, std::abs(v));
  const double rounding = dt == DType::F32 ? 0.0 : dtype_eps(dt);
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::abs(got[i] - want[i]), tol = 2e-6 * scale + rounding * std::abs(want[i]);
    if (err > tol && bad++ < 3)
      ADD_FAILURE() << "out[" << i / N << ", " << i % N << "] = " << got[i] << ", reference " << want[i] << " (error "
                    << err << " > " << tol << ")";
  }
  EXPECT_EQ(bad, 0) << "elements outside the tolerance";
}

TEST(MatmulCpu, SkinnyLinearShapesMatchDoubleReference) {
  uint64_t seed = 10;
  for (int64_t M : std::vector<int64_t>{1, 3, 4, 5, 64, cpu_impl::kSkinnyMaxRows, cpu_impl::kSkinnyMaxRows + 1})
    for (int64_t N : {1, 5, 6, 7, 13})
      for (int64_t K : {16, 17, 40, 1024, 2100}) check(M, N, K, false, OutView::kContiguous, ++seed);
}

TEST(MatmulCpu, SkinnyAccumulatesAndWritesStridedOut) {
  uint64_t seed = 100;
  for (OutView view : {OutView::kContiguous, OutView::kPadded, OutView::kTransposed})
    for (bool accumulate : {false, true}) {
      check(9, 31, 1100, accumulate, view, ++seed);
      check(2, 6, 16, accumulate, view, ++seed);
    }
}

TEST(MatmulCpu, HalfWeightsMatchDoubleReference) {
  // One row tile (M <= 4) widens w in registers over whole rows; up to kHalfSkinnyMaxRows rows widen
  // each weight block into a scratch; more rows take f32 panels of w.
  uint64_t seed = 200;
  const int64_t rows = cpu_impl::kHalfSkinnyMaxRows;
  for (DType dt : {DType::BF16, DType::F16})
    for (int64_t M : std::vector<int64_t>{1, 3, 4, 5, 17, rows, rows + 1, 2 * cpu_impl::kSkinnyMaxRows + 5})
      for (int64_t N : {1, 7, 13})
        for (int64_t K : {16, 31, 1100}) check(M, N, K, false, OutView::kContiguous, ++seed, dt);
}

TEST(MatmulCpu, HalfAccumulatesAndWritesStridedOut) {
  uint64_t seed = 300;
  for (DType dt : {DType::BF16, DType::F16})
    for (OutView view : {OutView::kContiguous, OutView::kPadded, OutView::kTransposed})
      for (bool accumulate : {false, true}) {
        check(1, 29, 2100, accumulate, view, ++seed, dt);
        check(9, 31, 1100, accumulate, view, ++seed, dt);
        check(cpu_impl::kSkinnyMaxRows + 3, 10, 40, accumulate, view, ++seed, dt);
      }
}

TEST(MatmulCpu, HalfPanelsMatchDoubleReference) {
  // Above kHalfSkinnyMaxRows rows (and for any rows when b has unit stride along N) a half b is widened
  // a panel of 16 output columns at a time here (a budget of 16 * K floats, or less: the panel floor),
  // so N = 50 ends in a partial panel and N = 7 is a single short one.
  uint64_t seed = 400;
  const int64_t rows = cpu_impl::kHalfSkinnyMaxRows;
  for (DType dt : {DType::BF16, DType::F16})
    for (BLayout layout : {BLayout::kWeightView, BLayout::kRowMajor})
      for (int64_t M : std::vector<int64_t>{rows + 1, 2 * rows + 3})
        for (int64_t N : {7, 50})
          for (int64_t K : {1, 31, 300}) check(M, N, K, false, OutView::kContiguous, ++seed, dt, layout, 16 * K * 4);
  for (DType dt : {DType::BF16, DType::F16})
    for (int64_t M : {1, 5}) check(M, 50, 40, false, OutView::kContiguous, ++seed, dt, BLayout::kRowMajor, 1);
}

TEST(MatmulCpu, HalfPanelsAccumulateAndWriteStridedOut) {
  uint64_t seed = 500;
  const int64_t M = cpu_impl::kHalfSkinnyMaxRows + 9;
  for (DType dt : {DType::BF16, DType::F16})
    for (BLayout layout : {BLayout::kWeightView, BLayout::kRowMajor})
      for (OutView view : {OutView::kContiguous, OutView::kPadded, OutView::kTransposed})
        for (bool accumulate : {false, true}) check(M, 37, 70, accumulate, view, ++seed, dt, layout, 16 * 70 * 4);
  // The default budget through the backend: one panel.
  for (DType dt : {DType::BF16, DType::F16}) check(M, 300, 1100, true, OutView::kPadded, ++seed, dt);
}

TEST(MatmulCpu, LinearThroughTheOpTakesTheSameResult) {
  // matmul(x, w.T) from the op (autograd path, 2-D shapes) agrees with the backend call above.
  const Tensor x = randn({7, 300}, 1), w = randn({50, 300}, 2);
  const Tensor y = matmul(x, w.transpose(0, 1));
  const std::vector<double> want =
      reference(x.to_vector<float>(), w.to_vector<float>(), std::vector<float>(7 * 50), 7, 50, 300, false);
  const std::vector<float> got = y.to_vector<float>();
  for (size_t i = 0; i < want.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << "element " << i;
}

TEST(MatmulCpu, BatchedHalfLinearThroughTheOp) {
  // [B, T, K] activations against one bf16 weight: each batch row block reads the same w.
  for (int64_t T : {int64_t{5}, cpu_impl::kSkinnyMaxRows + 7}) {
    SCOPED_TRACE("T = " + std::to_string(T));
    const int64_t B = 2, K = 40, N = 11;
    const Tensor x = randn({B, T, K}, 3, DType::BF16), w = randn({N, K}, 4, DType::BF16);
    const std::vector<float> got = linear(x, w).to_vector<float>();
    const std::vector<float> xv = x.to_vector<float>(), wv = w.to_vector<float>();
    ASSERT_EQ(got.size(), static_cast<size_t>(B * T * N));
    for (int64_t b = 0; b < B; ++b) {
      const std::vector<float> xb(xv.begin() + b * T * K, xv.begin() + (b + 1) * T * K);
      const std::vector<double> want = reference(xb, wv, {}, T, N, K, false);
      for (int64_t i = 0; i < T * N; ++i)
        ASSERT_NEAR(got[b * T * N + i], want[i], 1e-5 + dtype_eps(DType::BF16) * std::abs(want[i]))
            << "batch " << b << " element " << i;
    }
  }
}

}  // namespace
}  // namespace lloco

namespace lloco {
namespace {

// [B, M, K] @ [B, K, N] in bf16 through the backend, against a double product per batch: a weight
// broadcast over batches (folded into one product when the rows of a and out continue across batches,
// not when either is a permuted view) and distinct weights per batch, each with few rows (gemm_skinny) and many (f32
// panels).
TEST(MatmulCpu, BatchedHalfProductsWithSharedAndDistinctWeights) {
  const int64_t B = 3, N = 21, K = 40;
  for (int64_t M : {int64_t{5}, cpu_impl::kHalfSkinnyMaxRows + 4})
    for (bool shared : {true, false})
      for (int permuted : {0, 1, 2}) {  // none, x, out
        SCOPED_TRACE("M = " + std::to_string(M) + (shared ? " shared weight" : " weight per batch") +
                     (permuted == 1 ? ", x permuted" : permuted == 2 ? ", out permuted" : ""));
        const Tensor x = permuted == 1 ? randn({M, B, K}, 7, DType::BF16).transpose(0, 1)  // [B, M, K], batch stride K
                                  : randn({B, M, K}, 7, DType::BF16);
        const Tensor w = shared ? randn({1, N, K}, 8, DType::BF16).expand({B, N, K}) : randn({B, N, K}, 8, DType::BF16);
        const Tensor b = w.transpose(1, 2);  // [B, K, N]
        Tensor out = permuted == 2 ? zeros({M, B, N}, DType::BF16).transpose(0, 1) : zeros({B, M, N}, DType::BF16);
        backend_for(DeviceType::CPU).matmul(to_ref(out), to_ref(x), to_ref(b), Stream{});
        const std::vector<float> got = out.contiguous().to_vector<float>();
        for (int64_t i = 0; i < B; ++i) {
          const std::vector<double> want = reference(x.narrow(0, i, 1).contiguous().to_vector<float>(),
                                                     w.narrow(0, i, 1).contiguous().to_vector<float>(), {}, M, N, K, false);
          for (int64_t e = 0; e < M * N; ++e)
            ASSERT_NEAR(got[i * M * N + e], want[e], 1e-5 + dtype_eps(DType::BF16) * std::abs(want[e]))
                << "batch " << i << " element " << e;
        }
      }
}

}  // namespace
}  // namespace lloco
