// CUDA LoRA kernels vs the CPU reference kernels: punica's segment distributions (identical,
// distinct, uniform, zipf, skewed), per-row (BGMV) ids, adapter-less rows and empty segments;
// shrink (x @ A^T, g @ B) and expand (t @ B^T, dt @ A) shapes; f32 / f16 / bf16 / f64; accumulate
// on and off; padded rows and transposed weights (scalar paths); weight gradients. Outputs start
// as NaN, and whole storages are compared, so skipped or stray writes fail. The fused decode-size
// lora_linear (one launch for base + LoRA) against the CPU composition, forward and backward.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
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

// max |got - want| / max |want| over the whole tensor.
double normalized_err(const Tensor& got, const Tensor& want) {
  const std::vector<double> g = got.to(cpu()).to(DType::F64).contiguous().to_vector<double>();
  const std::vector<double> w = want.to(cpu()).to(DType::F64).contiguous().to_vector<double>();
  EXPECT_EQ(g.size(), w.size());
  double err = 0, scale = 1e-30;
  for (size_t i = 0; i < g.size() && i < w.size(); ++i) {
    err = std::max(err, std::abs(g[i] - w[i]));
    scale = std::max(scale, std::abs(w[i]));
  }
  return err / scale;
}

// Values in `dt`, identical on both devices; N(0, std).
Tensor rounded_randn(const Shape& shape, uint64_t seed, DType dt, double std) {
  return (randn(shape, seed, DType::F32) * std).to(dt);
}

TEST_F(LoraTest, LinearDecodeBatchFusedMatchesCpuWithGrads) {
  // Rows <= 4 take the fused kernel on CUDA; the CPU composes GEMM + shrink + expand. I = 136 is 17
  // bf16 packs (a ragged last group of lanes), O = 75 a ragged last block; per-row ids include
  // "no adapter", and a segment assignment covers the binary search.
  const int64_t I = 136, O = 75, L = 3;
  uint64_t seed = 900;
  for (DType dt : {DType::F32, DType::BF16, DType::F16})
    for (int64_t rank : {8, 64})
      for (int64_t N : {1, 2, 4}) {
        const std::string what = std::string(dtype_name(dt)) + " N " + std::to_string(N) + " r " + std::to_string(rank);
        SCOPED_TRACE(what);
        const Tensor x = rounded_randn({N, I}, ++seed, dt, 1.0), w = rounded_randn({O, I}, ++seed, dt, 0.1);
        const Tensor a = rounded_randn({L, rank, I}, ++seed, dt, 0.1), b = rounded_randn({L, O, rank}, ++seed, dt, 0.1);
        const Tensor dout = rounded_randn({N, O}, ++seed, dt, 1.0);
        const std::vector<int64_t> ids = {2, -1, 0, 1};
        for (bool by_segment : {false, true}) {
          auto segs = [&](Device d) {
            return by_segment ? LoraSegments::by_segment({0, N / 2, N}, {1, 2}, d)
                              : LoraSegments::by_row(std::vector<int64_t>(ids.begin(), ids.begin() + N), d);
          };
          std::vector<Tensor> got, want;
          for (Device d : {cuda(), lloco::cpu()}) {
            Tensor xd = x.to(d), wd = w.to(d), ad = a.to(d), bd = b.to(d);
            for (Tensor* t : {&xd, &wd, &ad, &bd}) t->requires_grad_();
            const Tensor y = lora_linear(xd, wd, ad, bd, 0.75, segs(d));
            std::vector<Tensor>& out = d == cuda() ? got : want;
            out = autograd_grad(y, dout.to(d), {xd, wd, ad, bd});
            out.insert(out.begin(), y.detach());
          }
          const double tol = dt == DType::F32 ? 2e-5 : (dt == DType::F16 ? 4e-3 : 2e-2);
          const char* names[] = {"y", "dx", "dw", "da", "db"};
          for (size_t i = 0; i < got.size(); ++i)
            EXPECT_LE(normalized_err(got[i], want[i]), tol) << names[i] << (by_segment ? " by segment" : " by row");
        }
      }
}

TEST_F(LoraTest, LinearFusedDeclinesWhatItCannotRun) {
  // The backend says false and writes nothing (y stays NaN) for more rows than the kernel takes,
  // f64, and feature counts that are not whole 16-byte packs; it runs a decode-size bf16 batch.
  struct Case {
    int64_t N, I;
    DType dt;
    bool fused;
  };
  const Case cases[] = {{4, 64, DType::BF16, true}, {5, 64, DType::BF16, false},
                        {2, 64, DType::F64, false}, {2, 60, DType::BF16, false}};
  for (const Case& c : cases) {
    const int64_t O = 16, r = 8, L = 2;
    const Tensor x = rounded_randn({c.N, c.I}, 1, c.dt, 1.0).to(cuda());
    const Tensor w = rounded_randn({O, c.I}, 2, c.dt, 0.1).to(cuda());
    const Tensor a = rounded_randn({L, r, c.I}, 3, c.dt, 0.1).to(cuda());
    const Tensor b = rounded_randn({L, O, r}, 4, c.dt, 0.1).to(cuda());
    const Tensor y = full({c.N, O}, std::nan(""), c.dt, cuda()), t = full({c.N, r}, std::nan(""), c.dt, cuda());
    const LoraSegments seg = LoraSegments::single(c.N, 1, cuda());
    const bool fused = gpu().lora_linear_fused(to_ref(y), to_ref(t), to_ref(x), to_ref(w), to_ref(a), to_ref(b),
                                               to_ref(seg.indptr_dev), to_ref(seg.adapter_dev), 1.0, stream());
    gpu().synchronize(stream());
    EXPECT_EQ(fused, c.fused) << "N " << c.N << " I " << c.I << " " << dtype_name(c.dt);
    const std::vector<double> yv = y.to(lloco::cpu()).to(DType::F64).to_vector<double>();
    for (double v : yv) EXPECT_EQ(std::isnan(v), !c.fused) << "N " << c.N << " I " << c.I;
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
