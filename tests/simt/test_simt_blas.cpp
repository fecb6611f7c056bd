// Tests of the simt fake cuBLAS/cuBLASLt (cuda/simt/blas.cpp) against a straightforward double loop over
// independently generated operands, called the way cuda/matmul.cpp calls the real libraries.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace lloco {
namespace {

template <class T>
struct Elem;
template <>
struct Elem<__half> {
  static constexpr cudaDataType_t type = CUDA_R_16F;
  static constexpr double eps = 0x1p-10, tiny = 0x1p-24;
  static double get(__half v) { return __half2float(v); }
  static __half make(double v) { return __double2half(v); }
};
template <>
struct Elem<__nv_bfloat16> {
  static constexpr cudaDataType_t type = CUDA_R_16BF;
  static constexpr double eps = 0x1p-7, tiny = 0x1p-133;
  static double get(__nv_bfloat16 v) { return __bfloat162float(v); }
  static __nv_bfloat16 make(double v) { return __double2bfloat16(v); }
};
template <>
struct Elem<float> {
  static constexpr cudaDataType_t type = CUDA_R_32F;
  static constexpr double eps = 0x1p-23, tiny = 0x1p-149;
  static double get(float v) { return v; }
  static float make(double v) { return static_cast<float>(v); }
};
template <>
struct Elem<double> {
  static constexpr cudaDataType_t type = CUDA_R_64F;
  static constexpr double eps = 0x1p-52, tiny = 0x1p-1074;
  static double get(double v) { return v; }
  static double make(double v) { return v; }
};

template <class T>
cublasComputeType_t default_compute() {
  return Elem<T>::type == CUDA_R_64F ? CUBLAS_COMPUTE_64F : CUBLAS_COMPUTE_32F;
}

struct Shape {
  int64_t m, n, k, batch;
  bool ta = false, tb = false;
  int64_t pad = 0;  // extra rows in every ld and extra elements between batches
};

constexpr double kSentinel = 7.0;  // exactly representable in every type: marks D's padding

// Column-major operands as cuBLAS sees them: A stored [ta ? k : m, ta ? m : k] with ld >= its rows, etc.
template <class TAB, class TCD = TAB>
struct Problem {
  Shape s;
  int64_t lda, ldb, ldc, sa, sb, sc;
  std::vector<TAB> a, b;
  std::vector<TCD> c, d;

  Problem(Shape shape, uint32_t seed, bool broadcast_a = false) : s(shape) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    lda = (s.ta ? s.k : s.m) + s.pad;
    ldb = (s.tb ? s.n : s.k) + s.pad;
    ldc = s.m + s.pad;
    sa = broadcast_a ? 0 : lda * (s.ta ? s.m : s.k) + s.pad;
    sb = ldb * (s.tb ? s.k : s.n) + s.pad;
    sc = ldc * s.n + s.pad;
    auto fill = [&](auto& v, int64_t stride, int64_t ld, int64_t cols) {
      using E = typename std::decay_t<decltype(v)>::value_type;
      v.resize(std::max<int64_t>(1, stride * (s.batch - 1) + ld * cols));
      for (auto& x : v) x = Elem<E>::make(u(rng));
    };
    fill(a, sa, lda, s.ta ? s.m : s.k);
    fill(b, sb, ldb, s.tb ? s.k : s.n);
    fill(c, sc, ldc, s.n);
    d.assign(c.size(), Elem<TCD>::make(kSentinel));
  }

  double A(int64_t bt, int64_t i, int64_t p) const {
    return Elem<TAB>::get(a[bt * sa + (s.ta ? p + i * lda : i + p * lda)]);
  }
  double B(int64_t bt, int64_t p, int64_t j) const {
    return Elem<TAB>::get(b[bt * sb + (s.tb ? j + p * ldb : p + j * ldb)]);
  }
  int64_t cidx(int64_t bt, int64_t i, int64_t j) const { return bt * sc + i + j * ldc; }
};

// Expects `out` (laid out like C) = alpha op(A) op(B) + beta C0 at every valid element and the sentinel elsewhere.
// `round_in` maps each A/B element before multiplying (identity, or TF32 rounding).
template <class TAB, class TCD>
void expect_result(const Problem<TAB, TCD>& p, const std::vector<TCD>& out, const std::vector<TCD>& c0, double alpha,
                   double beta, const std::string& what, double (*round_in)(double) = [](double x) { return x; }) {
  std::vector<bool> valid(out.size(), false);
  int bad = 0;
  for (int64_t bt = 0; bt < p.s.batch; ++bt)
    for (int64_t j = 0; j < p.s.n; ++j)
      for (int64_t i = 0; i < p.s.m; ++i) {
        double sum = 0, sum_abs = 0;
        for (int64_t q = 0; q < p.s.k; ++q) {
          const double t = round_in(p.A(bt, i, q)) * round_in(p.B(bt, q, j));
          sum += t;
          sum_abs += std::fabs(t);
        }
        const int64_t at = p.cidx(bt, i, j);
        const double ref = alpha * sum + (beta != 0 ? beta * Elem<TCD>::get(c0[at]) : 0.0);
        const double got = Elem<TCD>::get(out[at]);
        // Round-to-nearest costs at most half an ulp (<= eps / 2 relative); the double sums may differ in order.
        const double tol = 0.5 * Elem<TCD>::eps * std::fabs(ref) + 4 * p.s.k * 0x1p-52 * sum_abs + Elem<TCD>::tiny;
        valid[at] = true;
        if (!(std::fabs(got - ref) <= tol) && bad++ < 5)
          ADD_FAILURE() << what << ": batch " << bt << " (" << i << ", " << j << "): got " << got << ", want " << ref;
      }
  for (size_t at = 0; at < out.size(); ++at)
    if (!valid[at] && Elem<TCD>::get(out[at]) != kSentinel && bad++ < 5)
      ADD_FAILURE() << what << ": padding element " << at << " overwritten with " << Elem<TCD>::get(out[at]);
}

// The cuda/matmul.cpp call sequence: desc + transposes, layouts (batch attributes only when batched), preference
// with workspace and alignments, heuristic, matmul.
template <class TAB, class TCD>
cublasStatus_t run_lt(cublasLtHandle_t lt, const Problem<TAB, TCD>& p, const void* C, void* D, double alpha,
                      double beta, cublasComputeType_t compute, int64_t ldd = -1, bool skip_heuristic = false) {
  const bool dbl = compute == CUBLAS_COMPUTE_64F;
  cublasLtMatmulDesc_t desc = nullptr;
  EXPECT_EQ(cublasLtMatmulDescCreate(&desc, compute, dbl ? CUDA_R_64F : CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  cublasOperation_t ta = p.s.ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.s.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), CUBLAS_STATUS_SUCCESS);
  auto layout = [&](cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int64_t stride) {
    cublasLtMatrixLayout_t l = nullptr;
    EXPECT_EQ(cublasLtMatrixLayoutCreate(&l, t, rows, cols, ld), CUBLAS_STATUS_SUCCESS);
    if (p.s.batch > 1) {
      int32_t bc = static_cast<int32_t>(p.s.batch);
      EXPECT_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)),
                CUBLAS_STATUS_SUCCESS);
      EXPECT_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                 sizeof(stride)),
                CUBLAS_STATUS_SUCCESS);
    }
    return l;
  };
  cublasLtMatrixLayout_t la = layout(Elem<TAB>::type, p.s.ta ? p.s.k : p.s.m, p.s.ta ? p.s.m : p.s.k, p.lda, p.sa);
  cublasLtMatrixLayout_t lb = layout(Elem<TAB>::type, p.s.tb ? p.s.n : p.s.k, p.s.tb ? p.s.k : p.s.n, p.ldb, p.sb);
  cublasLtMatrixLayout_t lc = layout(Elem<TCD>::type, p.s.m, p.s.n, p.ldc, p.sc);
  cublasLtMatrixLayout_t ld = layout(Elem<TCD>::type, p.s.m, p.s.n, ldd < 0 ? p.ldc : ldd, p.sc);
  cublasLtMatmulPreference_t pref = nullptr;
  EXPECT_EQ(cublasLtMatmulPreferenceCreate(&pref), CUBLAS_STATUS_SUCCESS);
  uint64_t ws = 32u << 20;
  uint32_t align = 4;
  EXPECT_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align,
                                                 sizeof(align)),
            CUBLAS_STATUS_SUCCESS);
  cublasLtMatmulHeuristicResult_t res{};
  int found = -1;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 1, &res, &found);
  EXPECT_EQ(found, st == CUBLAS_STATUS_SUCCESS ? 1 : 0);
  if (st == CUBLAS_STATUS_SUCCESS) {
    const float alpha_f = static_cast<float>(alpha), beta_f = static_cast<float>(beta);
    const void* pa = dbl ? static_cast<const void*>(&alpha) : &alpha_f;
    const void* pb = dbl ? static_cast<const void*>(&beta) : &beta_f;
    const cublasLtMatmulAlgo_t never_searched{};
    st = cublasLtMatmul(lt, desc, pa, p.a.data(), la, p.b.data(), lb, pb, C, lc, D, ld,
                        skip_heuristic ? &never_searched : &res.algo, nullptr, ws, nullptr);
  }
  cublasLtMatmulPreferenceDestroy(pref);
  for (cublasLtMatrixLayout_t l : {la, lb, lc, ld}) cublasLtMatrixLayoutDestroy(l);
  cublasLtMatmulDescDestroy(desc);
  return st;
}

// Classic cublasGemmStridedBatchedEx, in place on D (= C).
template <class TAB, class TCD>
cublasStatus_t run_classic(cublasHandle_t h, const Problem<TAB, TCD>& p, void* D, double alpha, double beta,
                           cublasComputeType_t compute) {
  const float alpha_f = static_cast<float>(alpha), beta_f = static_cast<float>(beta);
  const bool dbl = compute == CUBLAS_COMPUTE_64F;
  return cublasGemmStridedBatchedEx(
      h, p.s.ta ? CUBLAS_OP_T : CUBLAS_OP_N, p.s.tb ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(p.s.m),
      static_cast<int>(p.s.n), static_cast<int>(p.s.k), dbl ? static_cast<const void*>(&alpha) : &alpha_f, p.a.data(),
      Elem<TAB>::type, static_cast<int>(p.lda), p.sa, p.b.data(), Elem<TAB>::type, static_cast<int>(p.ldb), p.sb,
      dbl ? static_cast<const void*>(&beta) : &beta_f, D, Elem<TCD>::type, static_cast<int>(p.ldc), p.sc,
      static_cast<int>(p.s.batch), compute, CUBLAS_GEMM_DEFAULT);
}

class SimtBlas : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cublasLtCreate(&lt_), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cublasCreate(&blas_), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cublasSetStream(blas_, nullptr), CUBLAS_STATUS_SUCCESS);
    ASSERT_EQ(cublasSetWorkspace(blas_, workspace_.data(), workspace_.size()), CUBLAS_STATUS_SUCCESS);
  }
  void TearDown() override {
    EXPECT_EQ(cublasDestroy(blas_), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(cublasLtDestroy(lt_), CUBLAS_STATUS_SUCCESS);
  }
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::vector<char> workspace_ = std::vector<char>(1024);
};

template <class T>
class SimtBlasTyped : public SimtBlas {};
using Types = ::testing::Types<__half, __nv_bfloat16, float, double>;
TYPED_TEST_SUITE(SimtBlasTyped, Types);

// Odd sizes incl. 1, all transposes, padded ld and batch strides, both APIs, with and without a C term. With
// beta = 0, C is NaN-poisoned: it must not be read.
TYPED_TEST(SimtBlasTyped, MatchesReferenceAcrossShapes) {
  using T = TypeParam;
  const Shape sizes[] = {{1, 1, 1, 1}, {7, 5, 3, 3}, {17, 9, 33, 2}, {1, 13, 4, 2}, {6, 1, 1, 4}};
  uint32_t seed = 1;
  for (Shape s : sizes)
    for (int t = 0; t < 4; ++t)
      for (int64_t pad : {0, 3}) {
        s.ta = t & 1, s.tb = t & 2, s.pad = pad;
        Problem<T> p(s, seed++);
        const std::string what = "m" + std::to_string(s.m) + " n" + std::to_string(s.n) + " k" +
                                 std::to_string(s.k) + " b" + std::to_string(s.batch) + " ta" +
                                 std::to_string(s.ta) + " tb" + std::to_string(s.tb) + " pad" + std::to_string(pad);
        std::vector<T> nan_c(p.c.size(), Elem<T>::make(std::numeric_limits<double>::quiet_NaN()));

        ASSERT_EQ(run_lt(this->lt_, p, nan_c.data(), p.d.data(), 1.0, 0.0, default_compute<T>()),
                  CUBLAS_STATUS_SUCCESS);
        expect_result(p, p.d, p.c, 1.0, 0.0, "lt beta=0 " + what);

        std::vector<T> d(p.d.size(), Elem<T>::make(kSentinel));
        ASSERT_EQ(run_lt(this->lt_, p, p.c.data(), d.data(), 0.75, -0.5, default_compute<T>()),
                  CUBLAS_STATUS_SUCCESS);
        expect_result(p, d, p.c, 0.75, -0.5, "lt beta=-0.5 " + what);

        // The classic API works in place on C: poison its valid elements, keep the sentinel in its padding.
        std::vector<T> poisoned(p.c.size(), Elem<T>::make(kSentinel));
        for (int64_t bt = 0; bt < s.batch; ++bt)
          for (int64_t j = 0; j < s.n; ++j)
            for (int64_t i = 0; i < s.m; ++i)
              poisoned[p.cidx(bt, i, j)] = Elem<T>::make(std::numeric_limits<double>::quiet_NaN());
        ASSERT_EQ(run_classic(this->blas_, p, poisoned.data(), 1.0, 0.0, default_compute<T>()),
                  CUBLAS_STATUS_SUCCESS);
        expect_result(p, poisoned, p.c, 1.0, 0.0, "classic beta=0 " + what);

        std::vector<T> acc(p.c.size(), Elem<T>::make(kSentinel));
        for (int64_t bt = 0; bt < s.batch; ++bt)
          for (int64_t j = 0; j < s.n; ++j)
            for (int64_t i = 0; i < s.m; ++i) acc[p.cidx(bt, i, j)] = p.c[p.cidx(bt, i, j)];
        ASSERT_EQ(run_classic(this->blas_, p, acc.data(), 0.75, -0.5, default_compute<T>()), CUBLAS_STATUS_SUCCESS);
        expect_result(p, acc, p.c, 0.75, -0.5, "classic beta=-0.5 " + what);
      }
}

// C == D with beta = 1 accumulates in place (how a gradient accumulation would call it).
TYPED_TEST(SimtBlasTyped, AliasedCAndDAccumulate) {
  using T = TypeParam;
  Problem<T> p({9, 4, 11, 3, true, false, 2}, 77);
  std::vector<T> cd(p.c.size(), Elem<T>::make(kSentinel));
  for (int64_t bt = 0; bt < 3; ++bt)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t i = 0; i < 9; ++i) cd[p.cidx(bt, i, j)] = p.c[p.cidx(bt, i, j)];
  ASSERT_EQ(run_lt(this->lt_, p, cd.data(), cd.data(), 1.0, 1.0, default_compute<T>()), CUBLAS_STATUS_SUCCESS);
  expect_result(p, cd, p.c, 1.0, 1.0, "alias");
}

// A batch stride of 0 shares one A across the batch, as matmul.cpp does for a shared weight.
TYPED_TEST(SimtBlasTyped, BroadcastOperandWithZeroStride) {
  using T = TypeParam;
  Problem<T> p({5, 6, 7, 4, false, true, 1}, 99, /*broadcast_a=*/true);
  ASSERT_EQ(run_lt(this->lt_, p, p.c.data(), p.d.data(), 1.0, 0.0, default_compute<T>()), CUBLAS_STATUS_SUCCESS);
  expect_result(p, p.d, p.c, 1.0, 0.0, "broadcast");
}

TEST_F(SimtBlas, Bf16AndF16InputsWithF32Output) {
  Problem<__nv_bfloat16, float> pb({8, 3, 19, 2, false, false, 1}, 5);
  ASSERT_EQ(run_lt(lt_, pb, pb.c.data(), pb.d.data(), 1.0, 0.25, CUBLAS_COMPUTE_32F), CUBLAS_STATUS_SUCCESS);
  expect_result(pb, pb.d, pb.c, 1.0, 0.25, "bf16->f32");
  Problem<__half, float> ph({3, 8, 19, 2, true, true, 0}, 6);
  ASSERT_EQ(run_lt(lt_, ph, ph.c.data(), ph.d.data(), 1.0, 0.0, CUBLAS_COMPUTE_32F), CUBLAS_STATUS_SUCCESS);
  expect_result(ph, ph.d, ph.c, 1.0, 0.0, "f16->f32");
}

// Independent TF32 rounding: keep 11 significant bits, halfway cases away from zero (std::round).
double tf32_ref(double x) {
  int e = 0;
  const double f = std::frexp(x, &e);
  return std::ldexp(std::round(std::ldexp(f, 11)), e - 11);
}

TEST_F(SimtBlas, Tf32RoundsInputsToTenMantissaBits) {
  Problem<float> p({8, 8, 64, 2, false, true, 1}, 123);
  std::vector<float> exact(p.d), tf32(p.d);
  ASSERT_EQ(run_lt(lt_, p, p.c.data(), exact.data(), 1.0, 0.0, CUBLAS_COMPUTE_32F), CUBLAS_STATUS_SUCCESS);
  ASSERT_EQ(run_lt(lt_, p, p.c.data(), tf32.data(), 1.0, 0.0, CUBLAS_COMPUTE_32F_FAST_TF32), CUBLAS_STATUS_SUCCESS);
  expect_result(p, exact, p.c, 1.0, 0.0, "f32 exact");
  expect_result(p, tf32, p.c, 1.0, 0.0, "f32 tf32", tf32_ref);
  int differ = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    differ += exact[i] != tf32[i];
    // Each input is within 2^-11 relative of exact and |a|, |b| <= 1: the product error is below 2^-10 per term.
    EXPECT_LE(std::fabs(exact[i] - tf32[i]), 64 * 0x1p-10) << i;
  }
  EXPECT_GT(differ, static_cast<int>(exact.size()) / 2) << "TF32 rounding should visibly change most outputs";

  // 1 x 1 x 1 probes: below half a TF32 ulp rounds down, above rounds up, the exact tie rounds away from zero.
  const std::pair<float, float> probes[] = {{1.f + 0x1p-12f, 1.f},
                                            {1.f + 0x3p-12f, 1.f + 0x1p-10f},
                                            {1.f + 0x1p-11f, 1.f + 0x1p-10f},
                                            {-(1.f + 0x1p-11f), -(1.f + 0x1p-10f)}};
  for (auto [in, want] : probes) {
    Problem<float> q({1, 1, 1, 1, false, false, 0}, 1);
    q.a[0] = in;
    q.b[0] = 1.f;
    ASSERT_EQ(run_lt(lt_, q, q.c.data(), q.d.data(), 1.0, 0.0, CUBLAS_COMPUTE_32F_FAST_TF32), CUBLAS_STATUS_SUCCESS);
    EXPECT_EQ(q.d[0], want) << "input " << in;
  }
}

TEST_F(SimtBlas, ZeroSizes) {
  Problem<float> p({4, 3, 0, 2, false, false, 1}, 8);  // k = 0: D = beta C, A and B never read
  ASSERT_EQ(run_lt(lt_, p, p.c.data(), p.d.data(), 1.0, 2.0, CUBLAS_COMPUTE_32F), CUBLAS_STATUS_SUCCESS);
  expect_result(p, p.d, p.c, 1.0, 2.0, "k=0");
  const float one = 1.f;
  EXPECT_EQ(cublasGemmStridedBatchedEx(blas_, CUBLAS_OP_N, CUBLAS_OP_N, 0, 5, 5, &one, nullptr, CUDA_R_32F, 1, 0,
                                       nullptr, CUDA_R_32F, 5, 0, &one, nullptr, CUDA_R_32F, 1, 0, 1,
                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            CUBLAS_STATUS_SUCCESS);
}

// Heuristic status for a (possibly broken) problem; layouts are built directly so each field can be wrong.
struct LtCase {
  cudaDataType_t ta = CUDA_R_32F, tb = CUDA_R_32F, tc = CUDA_R_32F, td = CUDA_R_32F;
  uint64_t a_rows = 4, a_cols = 3, b_rows = 3, b_cols = 2, d_rows = 4;
  int64_t lda = 4, ldd = 4;
  int32_t d_batch = 1;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
};

cublasStatus_t heuristic(cublasLtHandle_t lt, const LtCase& c, int* found) {
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, lc, ld;
  cublasLtMatmulPreference_t pref;
  cublasLtMatmulDescCreate(&desc, c.compute, CUDA_R_32F);
  cublasLtMatrixLayoutCreate(&la, c.ta, c.a_rows, c.a_cols, c.lda);
  cublasLtMatrixLayoutCreate(&lb, c.tb, c.b_rows, c.b_cols, static_cast<int64_t>(c.b_rows));
  cublasLtMatrixLayoutCreate(&lc, c.tc, 4, 2, 4);
  cublasLtMatrixLayoutCreate(&ld, c.td, c.d_rows, 2, c.ldd);
  cublasLtMatrixLayoutSetAttribute(ld, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &c.d_batch, sizeof(c.d_batch));
  cublasLtMatmulPreferenceCreate(&pref);
  cublasLtMatmulHeuristicResult_t res{};
  *found = -1;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 1, &res, found);
  cublasLtMatmulPreferenceDestroy(pref);
  for (cublasLtMatrixLayout_t l : {la, lb, lc, ld}) cublasLtMatrixLayoutDestroy(l);
  cublasLtMatmulDescDestroy(desc);
  return st;
}

TEST_F(SimtBlas, HeuristicValidatesProblems) {
  int found = 0;
  EXPECT_EQ(heuristic(lt_, LtCase{}, &found), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(found, 1);
  auto expect = [&](cublasStatus_t want, auto edit, const char* what) {
    LtCase c;
    edit(c);
    EXPECT_EQ(heuristic(lt_, c, &found), want) << what;
    EXPECT_EQ(found, 0) << what;
  };
  const cublasStatus_t bad = CUBLAS_STATUS_INVALID_VALUE, unsup = CUBLAS_STATUS_NOT_SUPPORTED;
  expect(bad, [](LtCase& c) { c.lda = 3; }, "lda < rows");
  expect(bad, [](LtCase& c) { c.ldd = 0; }, "ldd < rows");
  expect(bad, [](LtCase& c) { c.b_rows = 5; }, "k mismatch");
  expect(bad, [](LtCase& c) { c.d_rows = 5, c.ldd = 5; }, "D rows mismatch");
  expect(bad, [](LtCase& c) { c.a_rows = static_cast<uint64_t>(int64_t{-4}); }, "negative rows");
  expect(bad, [](LtCase& c) { c.d_batch = 2; }, "batch mismatch");
  expect(bad, [](LtCase& c) { c.d_batch = -1; }, "negative batch");
  expect(bad, [](LtCase& c) { c.tb = CUDA_R_16F; }, "A/B type mismatch");
  expect(bad, [](LtCase& c) { c.td = CUDA_R_64F; }, "C/D type mismatch");
  expect(unsup, [](LtCase& c) { c.ta = c.tb = c.tc = c.td = CUDA_R_8I; }, "int8");
  expect(unsup, [](LtCase& c) { c.compute = CUBLAS_COMPUTE_64F; }, "f32 data, f64 compute");
  auto f16_tf32 = [](LtCase& c) {
    c.ta = c.tb = c.tc = c.td = CUDA_R_16F;
    c.compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  };
  expect(unsup, f16_tf32, "f16 with tf32");
  EXPECT_EQ(cublasLtMatmulAlgoGetHeuristic(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, nullptr,
                                           &found),
            CUBLAS_STATUS_NOT_INITIALIZED);
  cublasLtMatmulHeuristicResult_t res{};
  EXPECT_EQ(cublasLtMatmulAlgoGetHeuristic(lt_, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 1, &res, &found),
            bad);
}

TEST_F(SimtBlas, DescriptorAttributesRejectUnsupportedMath) {
  cublasLtMatmulDesc_t desc;
  ASSERT_EQ(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  uint32_t relu = CUBLASLT_EPILOGUE_RELU, plain = CUBLASLT_EPILOGUE_DEFAULT;
  int32_t device = CUBLASLT_POINTER_MODE_DEVICE, op_bad = 7, op_t = CUBLAS_OP_T;
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &relu, sizeof(relu)),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &plain, sizeof(plain)),
            CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_POINTER_MODE, &device, sizeof(device)),
            CUBLAS_STATUS_NOT_SUPPORTED);
  const void* bias = &plain;
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_bad, sizeof(op_bad)),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, 2), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, nullptr, 4), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasLtMatmulDescSetAttribute(nullptr, CUBLASLT_MATMUL_DESC_TRANSA, &op_t, 4), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasLtMatmulDescDestroy(desc), CUBLAS_STATUS_SUCCESS);

  cublasLtMatrixLayout_t l;
  ASSERT_EQ(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 4, 4, 4), CUBLAS_STATUS_SUCCESS);
  int32_t row = CUBLASLT_ORDER_ROW, col = CUBLASLT_ORDER_COL;
  EXPECT_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ORDER, &row, sizeof(row)),
            CUBLAS_STATUS_NOT_SUPPORTED);
  EXPECT_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ORDER, &col, sizeof(col)),
            CUBLAS_STATUS_SUCCESS);
  int32_t small = 1;
  EXPECT_EQ(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &small, sizeof(small)),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(cublasLtMatrixLayoutDestroy(l), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(cublasLtMatmulDescCreate(nullptr, CUBLAS_COMPUTE_32F, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
}

TEST_F(SimtBlas, MatmulRejectsInvalidArguments) {
  Problem<float> p({4, 4, 4, 1, false, false, 0}, 3);
  EXPECT_EQ(run_lt(lt_, p, p.c.data(), p.d.data(), 1.0, 0.0, CUBLAS_COMPUTE_32F), CUBLAS_STATUS_SUCCESS);
  // In-place C == D needs identical layouts: otherwise D's writes could clobber unread C.
  std::vector<float> big(64, 0.f);
  EXPECT_EQ(run_lt(lt_, p, big.data(), big.data(), 1.0, 1.0, CUBLAS_COMPUTE_32F, /*ldd=*/5),
            CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(run_lt(lt_, p, p.c.data(), p.d.data(), 1.0, 0.0, CUBLAS_COMPUTE_32F, -1, /*skip_heuristic=*/true),
            CUBLAS_STATUS_INVALID_VALUE);
  // Overlapping output batches would race on a GPU.
  Problem<float> overlap({4, 4, 4, 3, false, false, 0}, 3);
  overlap.sc = 4;
  EXPECT_EQ(run_classic(blas_, overlap, overlap.d.data(), 1.0, 0.0, CUBLAS_COMPUTE_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(run_lt(lt_, overlap, overlap.c.data(), overlap.d.data(), 1.0, 0.0, CUBLAS_COMPUTE_32F),
            CUBLAS_STATUS_INVALID_VALUE);

  const float one = 1.f;
  std::vector<float> a(64), b(64), c(64);
  auto classic = [&](cublasHandle_t h, int op, int m, int n, int k, int lda, int ldc, int batch, const void* alpha,
                     cudaDataType_t tc) {
    return cublasGemmStridedBatchedEx(h, static_cast<cublasOperation_t>(op), CUBLAS_OP_N, m, n, k, alpha, a.data(),
                                      CUDA_R_32F, lda, 0, b.data(), CUDA_R_32F, 4, 0, &one, c.data(), tc, ldc, 16,
                                      batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  EXPECT_EQ(classic(blas_, CUBLAS_OP_N, 4, 4, 4, 4, 4, 1, &one, CUDA_R_32F), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(classic(nullptr, CUBLAS_OP_N, 4, 4, 4, 4, 4, 1, &one, CUDA_R_32F), CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_EQ(classic(blas_, CUBLAS_OP_N, -1, 4, 4, 4, 4, 1, &one, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(classic(blas_, CUBLAS_OP_N, 4, 4, -2, 4, 4, 1, &one, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(classic(blas_, CUBLAS_OP_N, 4, 4, 4, 4, 4, -1, &one, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(classic(blas_, CUBLAS_OP_N, 4, 4, 4, 3, 4, 1, &one, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(classic(blas_, CUBLAS_OP_T, 4, 4, 2, 1, 4, 1, &one, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(classic(blas_, CUBLAS_OP_N, 4, 4, 4, 4, 3, 1, &one, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(classic(blas_, 9, 4, 4, 4, 4, 4, 1, &one, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(classic(blas_, CUBLAS_OP_N, 4, 4, 4, 4, 4, 1, nullptr, CUDA_R_32F), CUBLAS_STATUS_INVALID_VALUE);
  EXPECT_EQ(classic(blas_, CUBLAS_OP_N, 4, 4, 4, 4, 4, 1, &one, CUDA_R_64F), CUBLAS_STATUS_NOT_SUPPORTED);
}

TEST_F(SimtBlas, StatusNamesAndStrings) {
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE");
  EXPECT_STREQ(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED");
  EXPECT_GT(std::strlen(cublasGetStatusString(CUBLAS_STATUS_ALLOC_FAILED)), 0u);
  EXPECT_STRNE(cublasGetStatusString(CUBLAS_STATUS_SUCCESS), cublasGetStatusString(CUBLAS_STATUS_INVALID_VALUE));
  EXPECT_EQ(cublasLtDestroy(nullptr), CUBLAS_STATUS_NOT_INITIALIZED);
  EXPECT_EQ(cublasCreate(nullptr), CUBLAS_STATUS_INVALID_VALUE);
}

}  // namespace
}  // namespace lloco
