// Multi-adapter LoRA on the CPU: lora_delta (forward and the three gradients) against an explicit
// per-row f64 loop over punica's segment distributions (identical, distinct, uniform, zipf,
// skewed), per-row (BGMV) assignment, adapter-less rows and empty segments; ranks 1..64 and odd
// hidden sizes; backend-level accumulate semantics; PEFT parity of lora_linear; error messages.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/safetensors.h"

namespace lloco {
namespace {

struct Assignment {
  std::string name;
  std::vector<int64_t> indptr, adapter;  // indptr empty: per row
  LoraSegments build(Device d = cpu()) const {
    return indptr.empty() ? LoraSegments::by_row(adapter, d) : LoraSegments::by_segment(indptr, adapter, d);
  }
  std::vector<int64_t> row_adapters(int64_t N) const {
    if (indptr.empty()) return adapter;
    std::vector<int64_t> out(static_cast<size_t>(N), -1);
    for (size_t s = 0; s < adapter.size(); ++s)
      for (int64_t r = indptr[s]; r < indptr[s + 1]; ++r) out[r] = adapter[s];
    return out;
  }
};

Assignment from_lengths(std::string name, const std::vector<int64_t>& lengths, std::vector<int64_t> adapter) {
  Assignment a{std::move(name), {0}, std::move(adapter)};
  for (int64_t len : lengths) a.indptr.push_back(a.indptr.back() + len);
  return a;
}

// punica's sweep (tests/test_sgmv.py) plus per-row ids, adapter-less rows and empty segments.
std::vector<Assignment> distributions(int64_t N, int64_t L, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  std::vector<Assignment> out;
  out.push_back(from_lengths("identical", {N}, {L - 1}));
  {  // every segment its own adapter, sizes as even as possible
    std::vector<int64_t> len, ad;
    for (int64_t l = 0; l < L; ++l) {
      len.push_back(N * (l + 1) / L - N * l / L);
      ad.push_back(l);
    }
    out.push_back(from_lengths("distinct", len, ad));
  }
  {  // random cut points, random adapters
    std::vector<int64_t> cuts{0, N};
    for (int k = 0; k < 4; ++k) cuts.push_back(pick(0, N));
    std::sort(cuts.begin(), cuts.end());
    std::vector<int64_t> len, ad;
    for (size_t k = 0; k + 1 < cuts.size(); ++k) {
      len.push_back(cuts[k + 1] - cuts[k]);
      ad.push_back(pick(0, L - 1));
    }
    out.push_back(from_lengths("uniform", len, ad));
  }
  {  // zipf(1.5) segment lengths: a few long segments and a tail of short ones
    std::vector<int64_t> len, ad;
    int64_t left = N;
    for (int64_t k = 1; left > 0; ++k) {
      const int64_t want = std::max<int64_t>(1, static_cast<int64_t>(N * 0.6 / std::pow(static_cast<double>(k), 1.5)));
      len.push_back(std::min(want, left));
      left -= len.back();
      ad.push_back((k - 1) % L);
    }
    out.push_back(from_lengths("zipf", len, ad));
  }
  {  // one segment holds almost every row, the rest are single rows
    std::vector<int64_t> len{N - std::min<int64_t>(N, 3)}, ad{0};
    for (int64_t k = 0; k < std::min<int64_t>(N, 3); ++k) {
      len.push_back(1);
      ad.push_back((k + 1) % L);
    }
    out.push_back(from_lengths("skewed", len, ad));
  }
  {  // empty segments anywhere, and segments without an adapter
    std::vector<int64_t> len{0, N / 3, 0, N / 4, N - N / 3 - N / 4, 0}, ad{0, L - 1, 0, -1, 0, L - 1};
    out.push_back(from_lengths("empty_and_no_adapter", len, ad));
  }
  Assignment per_row{"per_row", {}, {}};
  for (int64_t n = 0; n < N; ++n) per_row.adapter.push_back(pick(-1, L - 1));
  out.push_back(per_row);
  return out;
}

struct Ref {
  std::vector<double> y, dx, da, db;
};

// y[n] = scale * b[l] (a[l] x[n]); the gradients of sum(y * g), one explicit loop per formula.
Ref loop_reference(const Tensor& x, const Tensor& a, const Tensor& b, const Tensor& g, double scale,
                   const std::vector<int64_t>& row_adapter) {
  const int64_t N = x.size(0), I = x.size(1), L = a.size(0), R = a.size(1), O = b.size(1);
  const std::vector<double> X = x.to_vector<double>(), Aw = a.to_vector<double>(), Bw = b.to_vector<double>(),
                            G = g.to_vector<double>();
  Ref r;
  r.y.assign(N * O, 0.0);
  r.dx.assign(N * I, 0.0);
  r.da.assign(L * R * I, 0.0);
  r.db.assign(L * O * R, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t l = row_adapter[n];
    if (l < 0) continue;
    std::vector<double> t(R, 0.0), dt(R, 0.0);
    for (int64_t k = 0; k < R; ++k)
      for (int64_t i = 0; i < I; ++i) t[k] += Aw[(l * R + k) * I + i] * X[n * I + i];
    for (int64_t o = 0; o < O; ++o)
      for (int64_t k = 0; k < R; ++k) {
        r.y[n * O + o] += scale * Bw[(l * O + o) * R + k] * t[k];
        r.db[(l * O + o) * R + k] += scale * G[n * O + o] * t[k];
        dt[k] += scale * G[n * O + o] * Bw[(l * O + o) * R + k];
      }
    for (int64_t k = 0; k < R; ++k)
      for (int64_t i = 0; i < I; ++i) {
        r.da[(l * R + k) * I + i] += dt[k] * X[n * I + i];
        r.dx[n * I + i] += dt[k] * Aw[(l * R + k) * I + i];
      }
  }
  return r;
}

// max |got - want| / (1 + max |want|)
double rel_err(const Tensor& got, const std::vector<double>& want) {
  const std::vector<double> g = got.to_vector<double>();
  EXPECT_EQ(g.size(), want.size());
  double err = 0, ref = 0;
  for (size_t i = 0; i < g.size() && i < want.size(); ++i) {
    const double d = std::fabs(g[i] - want[i]);
    err = std::isnan(d) ? INFINITY : std::max(err, d);
    ref = std::max(ref, std::fabs(want[i]));
  }
  return err / (1 + ref);
}

// Runs lora_delta in `dt` on inputs drawn in f64 and rounded to dt; checks y and all gradients.
void check_against_loop(int64_t N, int64_t I, int64_t O, int64_t R, int64_t L, const Assignment& as, DType dt,
                        double tol, uint64_t seed) {
  const std::string what = as.name + " N=" + std::to_string(N) + " I=" + std::to_string(I) + " O=" +
                           std::to_string(O) + " r=" + std::to_string(R) + " " + dtype_name(dt);
  Tensor x = randn({N, I}, seed, DType::F64).to(dt), a = mul(randn({L, R, I}, seed + 1, DType::F64), 0.3).to(dt);
  Tensor b = mul(randn({L, O, R}, seed + 2, DType::F64), 0.3).to(dt), g = randn({N, O}, seed + 3, DType::F64).to(dt);
  const double scale = 1.75;
  const Ref ref = loop_reference(x, a, b, g, scale, as.row_adapters(N));
  x.requires_grad_(true);
  a.requires_grad_(true);
  b.requires_grad_(true);
  Tensor y = lora_delta(x, a, b, scale, as.build());
  ASSERT_EQ(y.shape(), (Shape{N, O})) << what;
  ASSERT_EQ(y.dtype(), dt) << what;
  sum(mul(y, g)).backward();
  EXPECT_LE(rel_err(y, ref.y), tol) << what << " y";
  EXPECT_LE(rel_err(x.grad(), ref.dx), tol) << what << " dx";
  EXPECT_LE(rel_err(a.grad(), ref.da), tol) << what << " da";
  EXPECT_LE(rel_err(b.grad(), ref.db), tol) << what << " db";
}

TEST(Lora, DistributionsAndRanksMatchLoopReferenceF64) {
  const int64_t N = 23, I = 37, O = 29, L = 4;
  for (int64_t R : {1, 8, 16, 64})
    for (const Assignment& as : distributions(N, L, 100 + R)) check_against_loop(N, I, O, R, L, as, DType::F64, 1e-12, R);
}

TEST(Lora, DistributionsMatchLoopReferenceLowPrecision) {
  // Tolerances: the f64 loop runs on the same rounded inputs; f32 rounds sums of <= 64 terms and the
  // [N, r] intermediate once, bf16/f16 round the intermediate and the output to 8/11 mantissa bits.
  const int64_t N = 19, I = 45, O = 31, R = 8, L = 3;
  for (const Assignment& as : distributions(N, L, 7)) {
    check_against_loop(N, I, O, R, L, as, DType::F32, 2e-6, 3);
    check_against_loop(N, I, O, R, L, as, DType::BF16, 3e-2, 4);
    check_against_loop(N, I, O, R, L, as, DType::F16, 4e-3, 5);
  }
}

TEST(Lora, LlamaHiddenSizeF32) {
  const int64_t N = 6, L = 2;
  for (const Assignment& as : distributions(N, L, 11))
    if (as.name == "uniform" || as.name == "per_row") check_against_loop(N, 4096, 4100, 16, L, as, DType::F32, 5e-6, 9);
}

TEST(Lora, NoRows) {
  Tensor x = zeros({0, 5}), a = randn({2, 3, 5}, 1), b = randn({2, 4, 3}, 2);
  Tensor y = lora_delta(x, a, b, 1.0, LoraSegments::by_segment({0, 0}, {1}, cpu()));
  EXPECT_EQ(y.shape(), (Shape{0, 4}));
  Tensor y2 = lora_delta(x, a, b, 1.0, LoraSegments::by_row({}, cpu()));
  EXPECT_EQ(y2.shape(), (Shape{0, 4}));
}

// Backend semantics the op does not exercise: accumulate leaves adapter-less rows untouched, a
// strided y, and zero weight gradients for adapters that own no row.
TEST(Lora, BackendAccumulateAndWeightGrad) {
  Backend& be = backend_for(DeviceType::CPU);
  const int64_t N = 5, I = 6, O = 7, L = 3;
  Tensor x = randn({N, I}, 21, DType::F64), w = randn({L, O, I}, 22, DType::F64);
  LoraSegments seg = LoraSegments::by_segment({0, 2, 3, 5}, {2, -1, 0}, cpu());
  Tensor base = randn({O, N}, 23, DType::F64);
  Tensor y = base.clone().transpose(0, 1);  // [N, O] with column stride N
  LoraMatmulParams p;
  p.scale = 0.5;
  p.accumulate = true;
  be.lora_matmul(to_ref(y), to_ref(x), to_ref(w), to_ref(seg.indptr_dev), to_ref(seg.adapter_dev), p, Stream{});
  const std::vector<double> X = x.to_vector<double>(), W = w.to_vector<double>(), B = base.to_vector<double>(),
                            Y = y.contiguous().to_vector<double>();
  const std::vector<int64_t> rows{2, 2, -1, 0, 0};
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      double want = B[o * N + n];
      if (rows[n] >= 0)
        for (int64_t i = 0; i < I; ++i) want += 0.5 * X[n * I + i] * W[(rows[n] * O + o) * I + i];
      EXPECT_NEAR(Y[n * O + o], want, 1e-12) << "row " << n << " col " << o;
    }
  p.accumulate = false;
  be.lora_matmul(to_ref(y), to_ref(x), to_ref(w), to_ref(seg.indptr_dev), to_ref(seg.adapter_dev), p, Stream{});
  const std::vector<double> Y2 = y.contiguous().to_vector<double>();
  for (int64_t o = 0; o < O; ++o) EXPECT_EQ(Y2[2 * O + o], 0.0) << "row without adapter, col " << o;

  Tensor lhs = randn({N, 4}, 24, DType::F64), rhs = randn({N, 3}, 25, DType::F64);
  Tensor dw = full({L, 4, 3}, std::nan(""), DType::F64);
  be.lora_weight_grad(to_ref(dw), to_ref(lhs), to_ref(rhs), to_ref(seg.indptr_dev), to_ref(seg.adapter_dev), 2.0,
                      Stream{});
  const std::vector<double> D = dw.to_vector<double>(), Lh = lhs.to_vector<double>(), Rh = rhs.to_vector<double>();
  for (int64_t l = 0; l < L; ++l)
    for (int64_t pi = 0; pi < 4; ++pi)
      for (int64_t q = 0; q < 3; ++q) {
        double want = 0;
        for (int64_t n = 0; n < N; ++n)
          if (rows[n] == l) want += 2.0 * Lh[n * 4 + pi] * Rh[n * 3 + q];
        EXPECT_NEAR(D[(l * 4 + pi) * 3 + q], want, 1e-12) << "adapter " << l;  // adapter 1 owns no row: 0
      }
}

TEST(Lora, LinearGradsOnlyWhereRequired) {
  Tensor x = randn({2, 3, 5}, 31), w = randn({4, 5}, 32), a = randn({2, 3, 5}, 33), b = randn({2, 4, 3}, 34);
  x.requires_grad_(true);
  a.requires_grad_(true);
  LoraSegments seg = LoraSegments::by_segment({0, 4, 6}, {1, 0}, cpu());
  Tensor y = lora_linear(x, w, a, b, 2.0, seg);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  Tensor want = add(linear(x.detach(), w), composed::lora_delta(x.detach().reshape({6, 5}), a.detach(), b, 2.0, seg)
                                               .reshape({2, 3, 4}));
  EXPECT_LE(compare_tensors(y.detach(), want).max_abs, 1e-5);
  sum(y).backward();
  EXPECT_TRUE(x.grad().defined());
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

// PEFT LoRA on a torch Linear (tests/fixtures/gen_lora_fixtures.py): r = 8, lora_alpha = 16.
// Tolerance 1e-5 * (1 + max|ref|): float32 sums of <= 40 terms on both sides (observed ~1e-7).
TEST(Lora, MatchesPeftLinear) {
  SafetensorsFile f = load_safetensors(std::string(LLOCO_FIXTURES_DIR) + "/lora/peft_linear.safetensors");
  const double scale = std::stod(f.metadata().at("scaling"));
  EXPECT_EQ(scale, 2.0);
  Tensor x = f.get("x").clone(), W = f.get("W").clone();
  Tensor a = f.get("A").clone().unsqueeze(0), b = f.get("B").clone().unsqueeze(0);
  for (Tensor* t : {&x, &W, &a, &b}) t->requires_grad_(true);
  const int64_t rows = x.size(0) * x.size(1);
  Tensor y = lora_linear(x, W, a, b, scale, LoraSegments::single(rows, 0, cpu()));
  sum(mul(y, f.get("g"))).backward();
  auto check = [](const Tensor& got, const Tensor& want, const char* what) {
    ASSERT_TRUE(got.defined()) << what;
    ASSERT_EQ(got.shape(), want.shape()) << what;
    DiffStats d = compare_tensors(got, want);
    EXPECT_LE(d.max_abs, 1e-5 * (1 + d.max_ref)) << what;
  };
  check(y, f.get("y"), "y");
  check(x.grad(), f.get("dx"), "dx");
  check(W.grad(), f.get("dW"), "dW");
  check(a.grad().squeeze(0), f.get("dA"), "dA");
  check(b.grad().squeeze(0), f.get("dB"), "dB");
}

void expect_error(const std::function<void()>& fn, const std::vector<std::string>& parts) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one mentioning " << parts[0];
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

TEST(Lora, ErrorsNameOpFieldAndValues) {
  Tensor x = randn({4, 5}, 1), a = randn({2, 3, 5}, 2), b = randn({2, 6, 3}, 3);
  LoraSegments seg = LoraSegments::by_segment({0, 1, 4}, {0, 1}, cpu());
  expect_error([&] { lora_delta(x, a, randn({2, 6, 4}, 4), 1.0, seg); }, {"[lora_delta]", "rank", "3 vs 4"});
  expect_error([&] { lora_delta(x, randn({2, 3, 7}, 5), b, 1.0, seg); }, {"[lora_delta]", "input features", "7 vs 5"});
  expect_error([&] { lora_delta(x, a, randn({3, 6, 3}, 6), 1.0, seg); }, {"[lora_delta]", "adapter count", "2 vs 3"});
  expect_error([&] { lora_delta(x, a, b, 1.0, LoraSegments::by_segment({0, 1, 4}, {0, 2}, cpu())); },
               {"[lora_delta]", "adapter id 2", "L = 2"});
  expect_error([&] { lora_delta(x, a, b, 1.0, LoraSegments::by_segment({0, 1, 3}, {0, 1}, cpu())); },
               {"[lora_delta]", "rows", "3 vs 4"});
  expect_error([&] { lora_delta(x, a, b, 1.0, LoraSegments::by_row({0, 1, 1}, cpu())); },
               {"[lora_delta]", "rows", "3 vs 4"});
  expect_error([&] { lora_delta(x, a.to(DType::F64), b, 1.0, seg); }, {"[lora_delta]", "f64"});
  expect_error([&] { lora_delta(x.unsqueeze(0), a, b, 1.0, seg); }, {"[lora_delta]", "x must be [N, I]"});
  expect_error([&] { lora_delta(x, a, b, 1.0, LoraSegments{}); }, {"[lora_delta]", "not built"});
  expect_error([] { LoraSegments::by_segment({1, 4}, {0}, cpu()); }, {"[LoraSegments::by_segment]", "start at 0", "1"});
  expect_error([] { LoraSegments::by_segment({0, 3, 2}, {0, 1}, cpu()); },
               {"[LoraSegments::by_segment]", "non-decreasing", "indptr[1] = 3", "indptr[2] = 2"});
  expect_error([] { LoraSegments::by_segment({0, 3}, {0, 1}, cpu()); },
               {"[LoraSegments::by_segment]", "S + 1 = 3", "got 2"});
  expect_error([&] { lora_linear(x, randn({6, 4}, 7), a, b, 1.0, seg); },
               {"[lora_linear]", "weight in-features", "4 vs 5"});
}

}  // namespace
}  // namespace lloco
