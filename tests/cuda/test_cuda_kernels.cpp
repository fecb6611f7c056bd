// CUDA backend vs CPU backend, kernel by kernel, for the primitive ops: random inputs with odd
// sizes, strided/transposed/broadcast views, every float dtype, poisoned outputs.
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "cuda/cuda.h"
#include "tests/cuda/cuda_test_util.h"

namespace lloco::cuda_test {
namespace {

using KernelTest = CudaTest;

std::string tag(const char* op, DType dt, Layout l) { return std::string(op) + "/" + dtype_name(dt) + "/" + layout_name(l); }

TEST_F(KernelTest, FillStridedViews) {
  for (DType dt : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64})
    for (Layout l : {Layout::Contig, Layout::Padded, Layout::Transposed}) {
      Buf out = make_output({7, 13}, dt, l);
      cpu().fill(out.href(), -2.75, stream());
      gpu().fill(out.dref(), -2.75, stream());
      expect_close(out, 0, 0, tag("fill", dt, l));
    }
}

TEST_F(KernelTest, CopyCastsEveryDtypePair) {
  const std::vector<DType> all = {DType::F32, DType::F16, DType::BF16, DType::F64, DType::I32, DType::I64};
  std::uniform_int_distribution<int> ud(-100, 100);
  for (DType src : all)
    for (DType dst : all)
      for (Layout l : {Layout::Contig, Layout::Transposed}) {
        Buf in = make_input({9, 4099}, src, l, [&](int64_t) { return ud(rng()) * 0.37; });
        Buf out = make_output({9, 4099}, dst);
        cpu().copy(out.href(), in.href(), stream());
        gpu().copy(out.dref(), in.dref(), stream());
        expect_close(out, 0, 0, std::string("copy from ") + dtype_name(src) + " " + layout_name(l));
      }
}

TEST_F(KernelTest, CopyLargeInt64IsExact) {
  Buf in = make_input({1000}, DType::I64, Layout::Contig, [](int64_t i) { return 0.0 + i; });
  for (int64_t i = 0; i < 1000; ++i) reinterpret_cast<int64_t*>(in.host.data())[i] = (int64_t(1) << 60) + 3 * i + 1;
  in.upload();
  Buf out = make_output({500}, DType::I64);
  TensorRef hs = in.href(), ds = in.dref();
  hs.shape[0] = ds.shape[0] = 500;
  hs.strides[0] = ds.strides[0] = 2;
  cpu().copy(out.href(), hs, stream());
  gpu().copy(out.dref(), ds, stream());
  std::vector<uint8_t> got = out.download();
  EXPECT_EQ(std::memcmp(got.data(), out.host.data(), got.size()), 0);
}

TEST_F(KernelTest, Arange) {
  for (DType dt : {DType::F32, DType::BF16, DType::F64, DType::I32, DType::I64}) {
    Buf out = make_output({1031}, dt);
    cpu().arange(out.href(), 3.0, 2.0, stream());
    gpu().arange(out.dref(), 3.0, 2.0, stream());
    expect_close(out, 0, 0, std::string("arange/") + dtype_name(dt));
  }
}

TEST_F(KernelTest, RandomUniformIsBitIdenticalNormalIsClose) {
  for (DType dt : float_dtypes()) {
    Buf u = make_output({3, 1001}, dt);
    cpu().random(u.href(), RandomKind::Uniform, 0xdeadbeefcafeull, 12345, stream());
    gpu().random(u.dref(), RandomKind::Uniform, 0xdeadbeefcafeull, 12345, stream());
    expect_close(u, 0, 0, "uniform");
    Buf z = make_output({3, 1001}, dt);
    cpu().random(z.href(), RandomKind::Normal, 7, (uint64_t(1) << 33) + 5, stream());
    gpu().random(z.dref(), RandomKind::Normal, 7, (uint64_t(1) << 33) + 5, stream());
    // logf/cosf may differ from libm in the last bit; the value is then rounded to dt.
    expect_close(z, std::max(ulp_tol(dt), 4e-6), 4e-6, "normal");
  }
}

double unary_domain_value(UnaryOp op, double z) {
  switch (op) {
    case UnaryOp::Log:
    case UnaryOp::Sqrt:
    case UnaryOp::Rsqrt:
    case UnaryOp::PowScalar: return 0.05 + std::fabs(z) * 2;
    default: return z * 2;
  }
}

TEST_F(KernelTest, UnaryOpsAllDtypesAndLayouts) {
  const UnaryOp ops[] = {UnaryOp::Neg,       UnaryOp::Exp,       UnaryOp::Log,    UnaryOp::Sqrt,    UnaryOp::Rsqrt,
                         UnaryOp::Silu,      UnaryOp::Erf,       UnaryOp::Gelu,   UnaryOp::Sigmoid, UnaryOp::Tanh,
                         UnaryOp::Sin,       UnaryOp::Cos,       UnaryOp::Abs,    UnaryOp::Relu,    UnaryOp::PowScalar,
                         UnaryOp::MulScalar, UnaryOp::AddScalar, UnaryOp::Square};
  std::normal_distribution<double> nd;
  for (UnaryOp op : ops)
    for (DType dt : float_dtypes())
      for (Layout l : {Layout::Contig, Layout::Transposed, Layout::Padded}) {
        Buf in = make_input({33, 257}, dt, l, [&](int64_t) { return unary_domain_value(op, nd(rng())); });
        Buf out = make_output({33, 257}, dt);
        double param = op == UnaryOp::PowScalar ? 1.7 : 0.625;
        cpu().unary(op, out.href(), in.href(), param, stream());
        gpu().unary(op, out.dref(), in.dref(), param, stream());
        // f32 math on the GPU against f64 (one rounding) on the CPU; exp/pow amplify by |x|.
        double tol = dt == DType::F32 ? 8e-6 : (dt == DType::F64 ? 1e-12 : ulp_tol(dt));
        expect_close(out, tol, tol, tag("unary", dt, l) + " op " + std::to_string(static_cast<int>(op)));
      }
}

TEST_F(KernelTest, UnaryMixedDtypes) {
  Buf in = make_input({1000}, DType::BF16);
  Buf out = make_output({1000}, DType::F32);
  cpu().unary(UnaryOp::Exp, out.href(), in.href(), 0, stream());
  gpu().unary(UnaryOp::Exp, out.dref(), in.dref(), 0, stream());
  expect_close(out, 2e-6, 0, "unary bf16->f32");
}

TEST_F(KernelTest, BinaryOpsWithBroadcastAndStrides) {
  const BinaryOp ops[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum,
                          BinaryOp::Minimum, BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le,
                          BinaryOp::Gt, BinaryOp::Ge};
  std::uniform_int_distribution<int> ud(-4, 4);
  for (BinaryOp op : ops)
    for (DType dt : float_dtypes())
      for (Layout lb : {Layout::Contig, Layout::Broadcast0, Layout::Transposed}) {
        // Small integers make equality comparisons meaningful; Div avoids zero.
        auto gen = [&](int64_t) {
          int v = ud(rng());
          return op == BinaryOp::Div && v == 0 ? 0.5 : v * 0.5;
        };
        Buf a = make_input({5, 17, 67}, dt, Layout::Contig, gen);
        Buf b = make_input({5, 17, 67}, dt, lb, gen);
        Buf out = make_output({5, 17, 67}, dt, Layout::Padded);
        cpu().binary(op, out.href(), a.href(), b.href(), stream());
        gpu().binary(op, out.dref(), a.dref(), b.dref(), stream());
        expect_close(out, ulp_tol(dt), 0, tag("binary", dt, lb) + " op " + std::to_string(static_cast<int>(op)));
      }
}

TEST_F(KernelTest, BinaryDenseVectorPathAndMixedDtypes) {
  for (DType dt : float_dtypes()) {
    Buf a = make_input({100003}, dt), b = make_input({100003}, dt);
    Buf out = make_output({100003}, dt);
    cpu().binary(BinaryOp::Mul, out.href(), a.href(), b.href(), stream());
    gpu().binary(BinaryOp::Mul, out.dref(), a.dref(), b.dref(), stream());
    expect_close(out, ulp_tol(dt), 0, std::string("mul dense/") + dtype_name(dt));
  }
  Buf a = make_input({777}, DType::BF16), b = make_input({777}, DType::F32);
  Buf out = make_output({777}, DType::F32);
  cpu().binary(BinaryOp::Add, out.href(), a.href(), b.href(), stream());
  gpu().binary(BinaryOp::Add, out.dref(), a.dref(), b.dref(), stream());
  expect_close(out, 1e-7, 0, "add bf16+f32");
}

TEST_F(KernelTest, WhereAnyConditionDtype) {
  std::bernoulli_distribution bd(0.4);
  for (DType dt : float_dtypes())
    for (DType cdt : {DType::F32, DType::I64}) {
      Buf cond = make_input({6, 301}, cdt, Layout::Contig, [&](int64_t) { return bd(rng()) ? 1.0 : 0.0; });
      Buf a = make_input({6, 301}, dt, Layout::Transposed), b = make_input({6, 301}, dt, Layout::Broadcast0);
      Buf out = make_output({6, 301}, dt);
      cpu().where(out.href(), cond.href(), a.href(), b.href(), stream());
      gpu().where(out.dref(), cond.dref(), a.dref(), b.dref(), stream());
      expect_close(out, 0, 0, std::string("where/") + dtype_name(dt));
    }
}

struct ReduceCase {
  std::vector<int64_t> in, out;
  Layout layout;
};

TEST_F(KernelTest, ReduceSumMaxMin) {
  const std::vector<ReduceCase> cases = {
      {{37, 129}, {37, 1}, Layout::Contig},       {{37, 129}, {1, 129}, Layout::Contig},
      {{5, 7, 9}, {1, 7, 1}, Layout::Transposed}, {{5, 7, 9}, {1, 1, 1}, Layout::Padded},
      {{3, 100003}, {3, 1}, Layout::Contig},      {{4099, 3}, {1, 3}, Layout::Contig},
      {{3000, 700}, {1, 700}, Layout::Contig},    {{4, 6}, {4, 6}, Layout::Contig},
      {{257, 4099}, {1, 4099}, Layout::Contig},  // many outputs, strided reduction: thread per output
  };
  for (const ReduceCase& c : cases)
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min})
      for (DType dt : float_dtypes()) {
        Buf in = make_input(c.in, dt, c.layout);
        Buf out = make_output(c.out, dt);
        cpu().reduce(op, out.href(), in.href(), stream());
        gpu().reduce(op, out.dref(), in.dref(), stream());
        int64_t n = in.numel() / out.numel();
        // f32 partial sums in another order than the CPU's f64 loop; max/min are exact.
        double tol = op != ReduceOp::Sum ? 0.0 : dt == DType::F64 ? 1e-10 : 1e-7 * static_cast<double>(n);
        expect_close(out, ulp_tol(dt), tol, tag("reduce", dt, c.layout) + " op " + std::to_string(int(op)));
      }
}

TEST_F(KernelTest, ReduceIntegersExact) {
  std::uniform_int_distribution<int> ud(-1000, 1000);
  for (DType dt : {DType::I32, DType::I64}) {
    Buf in = make_input({17, 1025}, dt, Layout::Contig, [&](int64_t) { return ud(rng()); });
    Buf out = make_output({1, 1025}, dt);
    cpu().reduce(ReduceOp::Sum, out.href(), in.href(), stream());
    gpu().reduce(ReduceOp::Sum, out.dref(), in.dref(), stream());
    expect_close(out, 0, 0, "reduce int");
  }
}

TEST_F(KernelTest, SoftmaxAndLogSoftmax) {
  for (DType dt : float_dtypes())
    for (bool log : {false, true})
      for (int dim : {2, 1})
        for (Layout l : {Layout::Contig, Layout::Transposed}) {
          Buf in = make_input({3, 37, 1029}, dt, l, [&](int64_t) { return std::normal_distribution<>(0, 3)(rng()); });
          Buf out = make_output({3, 37, 1029}, dt);
          cpu().softmax(out.href(), in.href(), dim, log, stream());
          gpu().softmax(out.dref(), in.dref(), dim, log, stream());
          double tol = dt == DType::F64 ? 1e-12 : ulp_tol(dt) + 1e-6;
          expect_close(out, tol, log ? tol * 10 : 1e-7, tag(log ? "log_softmax" : "softmax", dt, l));
        }
}

struct MatmulCase {
  int64_t B, M, K, N;
  Layout la, lb;
};

TEST_F(KernelTest, MatmulLayoutsAndBroadcast) {
  const std::vector<MatmulCase> cases = {
      {3, 17, 33, 65, Layout::Contig, Layout::Contig},     {3, 17, 33, 65, Layout::Transposed, Layout::Contig},
      {3, 17, 33, 65, Layout::Contig, Layout::Transposed}, {2, 64, 128, 96, Layout::Contig, Layout::Broadcast0},
      {2, 5, 8, 7, Layout::Broadcast0, Layout::Contig},    {1, 1, 4096, 300, Layout::Contig, Layout::Transposed},
      {2, 31, 19, 23, Layout::Padded, Layout::Padded},     {4, 8, 1, 9, Layout::Contig, Layout::Contig},
  };
  for (const MatmulCase& c : cases)
    for (DType dt : float_dtypes()) {
      Buf a = make_input({c.B, c.M, c.K}, dt, c.la), b = make_input({c.B, c.K, c.N}, dt, c.lb);
      Buf out = make_output({c.B, c.M, c.N}, dt);
      cpu().matmul(out.href(), a.href(), b.href(), stream());
      gpu().matmul(out.dref(), a.dref(), b.dref(), stream());
      // Normalised by max |out|: f32 without TF32 is near-exact; half types round inputs once.
      double tol = dt == DType::F64 ? 1e-12 : dt == DType::F32 ? 1e-5 : 4 * ulp_tol(dt);
      expect_close_normalized(out, tol,
                              "matmul " + std::to_string(c.M) + "x" + std::to_string(c.K) + "x" + std::to_string(c.N) +
                                  " " + layout_name(c.la) + "/" + layout_name(c.lb) + " " + dtype_name(dt));
    }
}

TEST_F(KernelTest, MatmulAddAccumulatesOntoOut) {
  // out += a @ b on both backends from the same random out: contiguous, padded and transposed out
  // views (on the GPU a transposed out goes through scratch, which must start as out) and K = 0
  // (out unchanged). The CPU result is also held to out0 + the plain matmul, summed on the host.
  struct Case {
    int64_t B, M, K, N;
    Layout la, lb, lo;
  };
  const Case cases[] = {{2, 17, 33, 65, Layout::Contig, Layout::Transposed, Layout::Contig},
                        {1, 9, 40, 31, Layout::Contig, Layout::Contig, Layout::Padded},
                        {3, 5, 8, 7, Layout::Transposed, Layout::Contig, Layout::Transposed},
                        {2, 6, 0, 5, Layout::Contig, Layout::Contig, Layout::Contig}};
  for (const Case& c : cases)
    for (DType dt : float_dtypes()) {
      const std::string what = "matmul_add " + std::to_string(c.M) + "x" + std::to_string(c.K) + "x" +
                               std::to_string(c.N) + " out " + layout_name(c.lo) + " " + dtype_name(dt);
      Buf a = make_input({c.B, c.M, c.K}, dt, c.la), b = make_input({c.B, c.K, c.N}, dt, c.lb);
      Buf out = make_input({c.B, c.M, c.N}, dt, c.lo), prod = make_output({c.B, c.M, c.N}, dt);
      const Buf out0 = make_input({c.B, c.M, c.N}, dt, c.lo, [&](int64_t i) { return out.host_at(i); });
      cpu().matmul(prod.href(), a.href(), b.href(), stream());
      cpu().matmul_add(out.href(), a.href(), b.href(), stream());
      gpu().matmul_add(out.dref(), a.dref(), b.dref(), stream());
      const double tol = dt == DType::F64 ? 1e-12 : dt == DType::F32 ? 1e-5 : 4 * ulp_tol(dt);
      expect_close_normalized(out, tol, what);
      double err = 0, scale = 1e-30;
      for (int64_t i = 0; i < c.B; ++i)
        for (int64_t r = 0; r < c.M; ++r)
          for (int64_t j = 0; j < c.N; ++j) {
            const int64_t at = i * out.strides[0] + r * out.strides[1] + j * out.strides[2];
            const double want = out0.host_at(at) + prod.host_at((i * c.M + r) * c.N + j);
            err = std::max(err, std::abs(out.host_at(at) - want));
            scale = std::max(scale, std::abs(want));
          }
      EXPECT_LE(err / scale, tol) << what << ": CPU matmul_add vs out0 + matmul";
    }
}

TEST_F(KernelTest, MatmulEmptyK) {
  Buf a = make_input({2, 3, 0}, DType::F32), b = make_input({2, 0, 4}, DType::F32);
  Buf out = make_output({2, 3, 4}, DType::F32);
  cpu().matmul(out.href(), a.href(), b.href(), stream());
  gpu().matmul(out.dref(), a.dref(), b.dref(), stream());
  expect_close(out, 0, 0, "matmul K=0");
}

TEST_F(KernelTest, IndexSelectAndIndexAdd) {
  for (DType dt : float_dtypes())
    for (DType it : {DType::I32, DType::I64})
      for (int dim : {0, 1}) {
        Buf in = make_input({23, 45, 6}, dt, Layout::Padded);
        const int64_t len = in.shape[dim];
        Buf idx = make_index({31}, it, 0, len - 1);  // duplicates likely
        std::vector<int64_t> oshape = in.shape;
        oshape[dim] = 31;
        Buf out = make_output(oshape, dt);
        cpu().index_select(out.href(), in.href(), dim, idx.href(), stream());
        gpu().index_select(out.dref(), in.dref(), dim, idx.dref(), stream());
        expect_close(out, 0, 0, std::string("index_select/") + dtype_name(dt));

        Buf acc = make_input(in.shape, dt);
        Buf src = make_input(oshape, dt, Layout::Transposed);
        cpu().index_add(acc.href(), dim, idx.href(), src.href(), stream());
        gpu().index_add(acc.dref(), dim, idx.dref(), src.dref(), stream());
        // Atomic adds of duplicates land in any order: a few roundings of the target dtype.
        expect_close(acc, 4 * ulp_tol(dt), 4 * ulp_tol(dt), std::string("index_add/") + dtype_name(dt));
      }
}

TEST_F(KernelTest, GatherAndScatterAdd) {
  for (DType dt : float_dtypes())
    for (int dim : {0, 1}) {
      Buf in = make_input({19, 27}, dt, Layout::Transposed);
      Buf idx = dim == 0 ? make_index({11, 27}, DType::I64, 0, 18) : make_index({19, 11}, DType::I32, 0, 26);
      Buf out = make_output(idx.shape, dt);
      cpu().gather(out.href(), in.href(), dim, idx.href(), stream());
      gpu().gather(out.dref(), in.dref(), dim, idx.dref(), stream());
      expect_close(out, 0, 0, std::string("gather/") + dtype_name(dt));

      Buf acc = make_input({19, 27}, dt);
      Buf src = make_input(idx.shape, dt);
      cpu().scatter_add(acc.href(), dim, idx.href(), src.href(), stream());
      gpu().scatter_add(acc.dref(), dim, idx.dref(), src.dref(), stream());
      expect_close(acc, 4 * ulp_tol(dt), 4 * ulp_tol(dt), std::string("scatter_add/") + dtype_name(dt));
    }
}

TEST_F(KernelTest, OutOfRangeIndexIsReportedAtSynchronize) {
  Buf in = make_input({10, 4}, DType::F32);
  Buf idx = make_input({3}, DType::I64, Layout::Contig, [](int64_t i) { return i == 1 ? 10.0 : 0.0; });
  Buf out = make_output({3, 4}, DType::F32);
  gpu().index_select(out.dref(), in.dref(), 0, idx.dref(), stream());
  EXPECT_THROW(gpu().synchronize(stream()), Error);
  EXPECT_NO_THROW(gpu().synchronize(stream()));  // the flag is cleared once reported
}

}  // namespace
}  // namespace lloco::cuda_test
