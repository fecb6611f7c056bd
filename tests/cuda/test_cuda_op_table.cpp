// The op table (tests/core/op_table.cpp) on CUDA against the CPU reference: forward and backward,
// f32 / bf16 / f16, contiguous and strided inputs, outputs compared with per-dtype tolerances.
// Skips, saying why, when no GPU is present.
#include <gtest/gtest.h>

#include <cctype>

#include "core/autograd.h"
#include "cuda/cuda.h"
#include "tests/core/op_table.h"

namespace lloco::testing {
namespace {

struct Result {
  Tensor out;
  std::vector<Tensor> grads;
};

Result run(const OpCase& c, std::vector<Tensor> in, uint64_t seed) {
  for (size_t i = 0; i < in.size(); ++i)
    if (c.differentiable && c.inputs[i].differentiable()) in[i].requires_grad_(true);
  Result r;
  r.out = c.run(in);
  r.grads.resize(in.size());
  if (!c.differentiable || !r.out.requires_grad()) return r;
  Tensor up = randn(r.out.shape(), seed, DType::F64).to(r.out.dtype()).to(r.out.device());
  sum(mul(r.out, up)).backward();
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i].requires_grad()) r.grads[i] = in[i].grad().to(cpu());
  r.out = r.out.to(cpu());
  return r;
}

double rel_error(const Tensor& got, const Tensor& ref) {
  DiffStats d = compare_tensors(got.to(DType::F64), ref.to(DType::F64));
  return d.max_abs / (1.0 + d.max_ref);
}

std::vector<Tensor> to_device(const std::vector<Tensor>& xs, Device d) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(x.to(d));
  return out;
}

class CudaOpTable : public ::testing::TestWithParam<size_t> {
 protected:
  void SetUp() override {
    if (!cuda_backend_init()) GTEST_SKIP() << "no CUDA device: the op table runs on CUDA only on a GPU machine";
  }
};

TEST_P(CudaOpTable, MatchesCpuReference) {
  const OpCase& c = op_table()[GetParam()];
  std::vector<DType> dtypes{DType::F32};
  if (c.low_precision) dtypes.insert(dtypes.end(), {DType::BF16, DType::F16});
  for (DType dt : dtypes) {
    for (bool strided : {false, true}) {
      std::vector<Tensor> host = make_inputs(c, dt, cpu(), 71);
      // CPU reference in f64 on the same rounded inputs; the device computes in dt.
      std::vector<Tensor> ref_in;
      for (const Tensor& t : host) ref_in.push_back(dtype_is_float(t.dtype()) ? t.to(DType::F64) : t);
      std::vector<Tensor> dev = to_device(host, cuda(0));
      if (strided) dev = strided_copies(dev);
      Result ref = run(c, ref_in, 5), got = run(c, dev, 5);
      const double tol = tolerance(dt) * c.tolerance_scale * (dt == DType::F32 ? 5.0 : 1.0);
      const std::string what = c.name + " " + dtype_name(dt) + (strided ? " strided" : "");
      EXPECT_LE(rel_error(got.out, ref.out), tol) << what << " forward";
      for (size_t i = 0; i < ref.grads.size(); ++i) {
        if (!ref.grads[i].defined()) continue;
        ASSERT_TRUE(got.grads[i].defined()) << what << " missing gradient " << i;
        EXPECT_LE(rel_error(got.grads[i], ref.grads[i]), tol) << what << " gradient " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, CudaOpTable, ::testing::Range<size_t>(0, op_table().size()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           std::string n = op_table()[info.param].name;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace lloco::testing
