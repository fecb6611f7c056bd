// CUDA LoRA kernels vs the CPU reference kernels: punica's segment distributions (identical,
// distinct, uniform, zipf, skewed), per-row (BGMV) ids, adapter-less rows and empty segments;
// shrink (x @ A^T, g @ B) and expand (t @ B^T, dt @ A) shapes; f32 / f16 / bf16 / f64; accumulate
// on and off; padded rows and transposed weights (scalar paths); weight gradients. Outputs start
// as NaN, and whole storages are compared, so skipped or stray writes fail.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

using LoraTest = CudaTest;

struct Assignment {
  std::string name;
  std::vector<int64_t> indptr, adapter;  // indptr empty: per row
};

Assignment from_lengths(std::string name, const std::vector<int64_t>& lengths, std::vector<int64_t> adapter) {
  Assignment a{std::move(name), {0}, std::move(adapter)};
  for (int64_t len : lengths) a.indptr.push_back(a.indptr.back() + len);
  return a;
}

std::vector<Assignment> distributions(int64_t N, int64_t L) {
  std::uniform_int_distribution<int64_t> ids(0, L - 1);
  std::vector<Assignment> out;
  out.push_back(from_lengths("identical", {N}, {0}));
  std::vector<int64_t> len, ad;
  for (int64_t l = 0; l < L; ++l) {
    len.push_back(N * (l + 1) / L - N * l / L);
    ad.push_back(l);
  }
  out.push_back(from_lengths("distinct", len, ad));
  std::vector<int64_t> cuts{0, N};
  for (int k = 0; k < 5; ++k) cuts.push_back(std::uniform_int_distribution<int64_t>(0, N)(rng()));
  std::sort(cuts.begin(), cuts.end());
  len.clear();
  ad.clear();
  for (size_t k = 0; k + 1 < cuts.size(); ++k) {
    len.push_back(cuts[k + 1] - cuts[k]);  // repeated cuts give empty segments
    ad.push_back(ids(rng()));
  }
  out.push_back(from_lengths("uniform", len, ad));
  len.clear();
  ad.clear();
  for (int64_t k = 1, left = N; left > 0; ++k) {
    len.push_back(std::min(left, std::max<int64_t>(1, static_cast<int64_t>(N * 0.6 / std::pow(double(k), 1.5)))));
    left -= len.back();
    ad.push_back(ids(rng()));
  }
  out.push_back(from_lengths("zipf", len, ad));
  out.push_back(from_lengths("skewed_no_adapter", {0, N - 3, 1, 0, 2}, {1, 0, -1, L - 1, L - 1}));
  Assignment per_row{"per_row", {}, {}};
  for (int64_t n = 0; n < N; ++n) per_row.adapter.push_back(std::uniform_int_distribution<int64_t>(-1, L - 1)(rng()));
  out.push_back(per_row);
  return out;
}

Buf i32_buf(const std::vector<int64_t>& v) {
  return make_input({static_cast<int64_t>(v.size())}, DType::I32, Layout::Contig,
                    [&](int64_t i) { return static_cast<double>(v[i]); });
}

double tol_for(DType dt) { return dt == DType::F64 ? 1e-12 : std::max(2 * ulp_tol(dt), 2e-5); }

struct MatmulCase {
  const char* name;
  int64_t I, O;
  bool transpose_w;
};

// One lora_matmul on both backends; y starts NaN (overwrite) or random (accumulate).
void check_matmul(const MatmulCase& c, const Assignment& as, int64_t N, int64_t L, DType dt, bool accumulate,
                  Layout xy_layout, Layout w_layout, Backend& cpu_be, Backend& gpu_be) {
  const std::string what = std::string(c.name) + " " + as.name + " " + dtype_name(dt) + " " + layout_name(xy_layout) +
                           "/" + layout_name(w_layout) + (accumulate ? " accumulate" : "");
  Buf x = make_input({N, c.I}, dt, xy_layout);
  Buf w = make_input(c.transpose_w ? std::vector<int64_t>{L, c.O, c.I} : std::vector<int64_t>{L, c.I, c.O}, dt,
                     w_layout);
  Buf y = accumulate ? make_input({N, c.O}, dt, xy_layout) : make_output({N, c.O}, dt, xy_layout);
  Buf adapter = i32_buf(as.adapter);
  Buf indptr = as.indptr.empty() ? Buf{} : i32_buf(as.indptr);
  const TensorRef hi = as.indptr.empty() ? none_ref() : indptr.href();
  const TensorRef di = as.indptr.empty() ? none_ref() : indptr.dref();
  LoraMatmulParams p;
  p.scale = 1.5;
  p.transpose_w = c.transpose_w;
  p.accumulate = accumulate;
  cpu_be.lora_matmul(y.href(), x.href(), w.href(), hi, adapter.href(), p, Stream{});
  gpu_be.lora_matmul(y.dref(), x.dref(), w.dref(), di, adapter.dref(), p, Stream{});
  gpu_be.synchronize(Stream{});
  expect_close_normalized(y, tol_for(dt), what);
}

TEST_F(LoraTest, MatmulMatchesCpuAcrossDistributions) {
  const int64_t N = 45, L = 4;
  // Shrink: x @ A^T (A [L, r, I]) and g @ B (B [L, O, r] as [L, I, O]); expand: t @ B^T and dt @ A.
  const std::vector<MatmulCase> cases{{"shrink_xA r=16", 4100, 16, true}, {"shrink_gB r=8", 1031, 8, false},
                                      {"expand_tB r=16", 16, 4104, true},  {"expand_dtA r=8", 8, 1030, false},
                                      {"shrink r=1", 37, 1, true},         {"shrink r=64", 515, 64, true},
                                      {"expand r=64", 64, 515, false},     {"shrink r=5", 37, 5, false}};
  std::vector<Assignment> dists = distributions(N, L);
  for (const MatmulCase& c : cases)
    for (const Assignment& as : dists)
      for (DType dt : float_dtypes())
        for (bool acc : {false, true}) check_matmul(c, as, N, L, dt, acc, Layout::Contig, Layout::Contig, cpu(), gpu());
}

TEST_F(LoraTest, MatmulStridedOperands) {
  const int64_t N = 21, L = 3;
  const std::vector<MatmulCase> cases{{"shrink r=16", 1000, 16, true}, {"shrink r=8", 777, 8, false},
                                      {"expand r=16", 16, 1000, true}, {"expand r=8", 8, 777, false}};
  for (const MatmulCase& c : cases)
    for (const Assignment& as : distributions(N, L))
      for (DType dt : {DType::F32, DType::BF16})
        for (Layout wl : {Layout::Contig, Layout::Transposed, Layout::Padded}) {
          check_matmul(c, as, N, L, dt, false, Layout::Padded, wl, cpu(), gpu());
          check_matmul(c, as, N, L, dt, true, Layout::Padded, wl, cpu(), gpu());
        }
}

TEST_F(LoraTest, WeightGradMatchesCpu) {
  const int64_t N = 70, L = 5;
  struct Shape2 {
    const char* name;
    int64_t P, Q;
  };
  // db = g^T t (P = O, Q = r) and da = dt^T x (P = r, Q = I), plus a square-ish case.
  for (const Shape2& s : {Shape2{"db r=16", 4100, 16}, Shape2{"da r=8", 8, 1031}, Shape2{"da r=1", 1, 300},
                          Shape2{"square", 45, 37}})
    for (const Assignment& as : distributions(N, L))
      for (DType dt : float_dtypes())
        for (Layout layout : {Layout::Contig, Layout::Padded}) {
          Buf lhs = make_input({N, s.P}, dt, layout), rhs = make_input({N, s.Q}, dt, layout);
          Buf dw = make_output({L, s.P, s.Q}, dt, layout);
          Buf adapter = i32_buf(as.adapter);
          Buf indptr = as.indptr.empty() ? Buf{} : i32_buf(as.indptr);
          cpu().lora_weight_grad(dw.href(), lhs.href(), rhs.href(), as.indptr.empty() ? none_ref() : indptr.href(),
                                 adapter.href(), 0.5, stream());
          gpu().lora_weight_grad(dw.dref(), lhs.dref(), rhs.dref(), as.indptr.empty() ? none_ref() : indptr.dref(),
                                 adapter.dref(), 0.5, stream());
          gpu().synchronize(stream());
          expect_close_normalized(dw, tol_for(dt), std::string("weight_grad ") + s.name + " " + as.name + " " +
                                                       dtype_name(dt) + " " + layout_name(layout));
        }
}

TEST_F(LoraTest, AdapterOutOfRangeRaisesDeviceError) {
  Buf x = make_input({4, 64}, DType::F32), w = make_input({2, 8, 64}, DType::F32), y = make_output({4, 8}, DType::F32);
  Buf adapter = i32_buf({0, 1, 2, -1});  // 2 is out of range for L = 2
  LoraMatmulParams p;
  gpu().lora_matmul(y.dref(), x.dref(), w.dref(), none_ref(), adapter.dref(), p, stream());
  EXPECT_THROW(gpu().synchronize(stream()), Error);
}

TEST_F(LoraTest, BindingErrorsNameTheOp) {
  Buf x = make_input({4, 64}, DType::F32), w = make_input({2, 8, 64}, DType::F32), y = make_output({4, 9}, DType::F32);
  Buf adapter = i32_buf({0, 1, 1, 0});
  LoraMatmulParams p;
  try {
    gpu().lora_matmul(y.dref(), x.dref(), w.dref(), none_ref(), adapter.dref(), p, stream());
    ADD_FAILURE() << "expected a shape error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[lora_matmul]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("8 vs 9"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace lloco::cuda_test
