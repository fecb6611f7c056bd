// The CPU backend's matmul on the shapes its skinny path takes (x [M, K] @ w^T with w [N, K],
// M <= kSkinnyMaxRows: core/cpu/matmul_skinny.cpp) and just outside them, against a double
// product summed here in the test: register-tile edges (M % 4, N % 6), the 16-lane k tail, several
// k blocks (K > 1024), accumulation (matmul_add) and out views that are padded or transposed.
// f32, and bf16 / f16 (weights widened in registers for one row tile, through a scratch block for
// more, in blocks of kSkinnyMaxRows rows beyond that), each held to one rounding of the output to
// its dtype.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/backend.h"
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
void check(int64_t M, int64_t N, int64_t K, bool accumulate, OutView view, uint64_t seed, DType dt = DType::F32) {
  const std::string what = std::string(dtype_name(dt)) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                           std::to_string(K) +
                           (accumulate ? " add" : "") +
                           (view == OutView::kPadded ? " padded out" : view == OutView::kTransposed ? " transposed out" : "");
  SCOPED_TRACE(what);
  const Tensor x = randn({1, M, K}, seed, dt), w = randn({N, K}, seed + 1, dt);
  const Tensor wt = w.transpose(0, 1).unsqueeze(0);  // [1, K, N] view: element (k, n) at n * K + k
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
  if (accumulate) cpu.matmul_add(to_ref(out), to_ref(x), to_ref(wt), Stream{});
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
  // One row tile (M <= 4) widens w in registers over whole rows; more rows widen each weight block
  // into a scratch; above kSkinnyMaxRows the rows go in blocks (the last one partial).
  uint64_t seed = 200;
  for (DType dt : {DType::BF16, DType::F16})
    for (int64_t M : std::vector<int64_t>{1, 3, 4, 5, 17, cpu_impl::kSkinnyMaxRows + 1, 2 * cpu_impl::kSkinnyMaxRows + 5})
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
