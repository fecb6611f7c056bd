// The table-driven op test (see op_table.h): every op against an f64 reference in each dtype,
// strided views against contiguous inputs, fused ops against their composed fallbacks, and a
// float64 finite-difference gradient check, forward and backward.
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "tests/core/op_table.h"

namespace lloco::testing {
namespace {

struct RunResult {
  Tensor out;
  std::vector<Tensor> grads;  // per input; undefined for non-differentiable inputs
};

// Runs the case and backpropagates sum(out * upstream); upstream is made from `seed` in out's dtype.
RunResult run_with_grads(const OpCase& c, const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                         std::vector<Tensor> inputs, uint64_t seed) {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (c.differentiable && c.inputs[i].differentiable()) inputs[i].requires_grad_(true);
  RunResult r;
  r.out = fn(inputs);
  r.grads.resize(inputs.size());
  if (!c.differentiable || !r.out.requires_grad()) return r;
  Tensor upstream = randn(r.out.shape(), seed, DType::F64).to(r.out.dtype()).to(r.out.device());
  sum(mul(r.out, upstream)).backward();
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].requires_grad()) r.grads[i] = inputs[i].grad();
  return r;
}

double rel_error(const Tensor& got, const Tensor& ref) {
  DiffStats d = compare_tensors(got.to(DType::F64), ref.to(DType::F64));
  return d.max_abs / (1.0 + d.max_ref);
}

void expect_close(const RunResult& got, const RunResult& ref, double tol, const std::string& what) {
  ASSERT_EQ(got.out.shape(), ref.out.shape()) << what;
  double e = rel_error(got.out, ref.out);
  EXPECT_LE(e, tol) << what << ": forward error " << e;
  for (size_t i = 0; i < ref.grads.size(); ++i) {
    if (!ref.grads[i].defined()) continue;
    ASSERT_TRUE(got.grads[i].defined()) << what << ": missing gradient for input " << i;
    double ge = rel_error(got.grads[i], ref.grads[i]);
    EXPECT_LE(ge, tol) << what << ": gradient error " << ge << " for input " << i;
  }
}

std::vector<Tensor> as_f64(const std::vector<Tensor>& xs) {
  std::vector<Tensor> out;
  for (const Tensor& x : xs) out.push_back(dtype_is_float(x.dtype()) ? x.to(DType::F64) : x);
  return out;
}

class OpTable : public ::testing::TestWithParam<size_t> {
 protected:
  const OpCase& op() const { return op_table()[GetParam()]; }
};

// Each dtype against the f64 computation on the same (rounded) inputs.
TEST_P(OpTable, DtypesMatchF64Reference) {
  const OpCase& c = op();
  std::vector<DType> dtypes{DType::F32};
  if (c.low_precision) dtypes.insert(dtypes.end(), {DType::BF16, DType::F16});
  for (DType dt : dtypes) {
    std::vector<Tensor> in = make_inputs(c, dt, cpu(), 11);
    RunResult ref = run_with_grads(c, c.run, as_f64(in), 5);
    RunResult got = run_with_grads(c, c.run, in, 5);
    EXPECT_EQ(got.out.dtype(), c.f32_output ? DType::F32 : dt) << c.name;
    expect_close(got, ref, tolerance(dt) * c.tolerance_scale, c.name + " in " + dtype_name(dt));
  }
}

// Strided (non-contiguous) inputs give the same values and gradients as contiguous ones.
TEST_P(OpTable, StridedInputsMatchContiguous) {
  const OpCase& c = op();
  std::vector<Tensor> in = make_inputs(c, DType::F32, cpu(), 23);
  std::vector<Tensor> strided = strided_copies(in);
  for (const Tensor& t : strided) ASSERT_FALSE(t.is_contiguous() && t.numel() > 1);
  expect_close(run_with_grads(c, c.run, strided, 3), run_with_grads(c, c.run, in, 3), 1e-6, c.name + " strided");
}

// Fused ops agree with their composed fallback (forward and backward) in f64.
class FusedOpTable : public OpTable {};
TEST_P(FusedOpTable, MatchesComposed) {
  const OpCase& c = op();
  ASSERT_TRUE(c.reference) << c.name;
  std::vector<Tensor> in = make_inputs(c, DType::F64, cpu(), 31);
  expect_close(run_with_grads(c, c.run, in, 9), run_with_grads(c, c.reference, in, 9), 1e-10, c.name + " vs composed");
}

// Central finite differences in f64 against autograd, for every differentiable input element.
TEST_P(OpTable, GradCheckF64) {
  const OpCase& c = op();
  if (!c.differentiable) GTEST_SKIP() << c.name << " is not differentiable";
  std::vector<Tensor> in = make_inputs(c, DType::F64, cpu(), 47);
  RunResult analytic = run_with_grads(c, c.run, in, 13);
  const Tensor upstream = randn(analytic.out.shape(), 13, DType::F64);
  auto loss = [&](const std::vector<Tensor>& xs) {
    NoGradGuard ng;
    return sum(mul(c.run(xs), upstream)).item();
  };
  const double eps = 1e-6;
  for (size_t i = 0; i < in.size(); ++i) {
    if (!c.inputs[i].differentiable()) continue;
    ASSERT_TRUE(analytic.grads[i].defined()) << c.name << ": no gradient for input " << i;
    std::vector<double> ana = analytic.grads[i].to_vector<double>();
    std::vector<Tensor> probe;
    for (const Tensor& t : in) probe.push_back(t.clone().detach());
    double* x = probe[i].data<double>();
    for (int64_t j = 0; j < probe[i].numel(); ++j) {
      const double saved = x[j];
      x[j] = saved + eps;
      const double up = loss(probe);
      x[j] = saved - eps;
      const double down = loss(probe);
      x[j] = saved;
      const double numeric = (up - down) / (2 * eps);
      ASSERT_NEAR(ana[j], numeric, 1e-6 * (1.0 + std::abs(numeric)))
          << c.name << ": input " << i << " element " << j;
    }
  }
}

std::string case_name(const ::testing::TestParamInfo<size_t>& info) {
  std::string n = op_table()[info.param].name;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

std::vector<size_t> fused_cases() {
  std::vector<size_t> idx;
  for (size_t i = 0; i < op_table().size(); ++i)
    if (op_table()[i].reference) idx.push_back(i);
  return idx;
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, ::testing::Range<size_t>(0, op_table().size()), case_name);
INSTANTIATE_TEST_SUITE_P(Fused, FusedOpTable, ::testing::ValuesIn(fused_cases()), case_name);

}  // namespace
}  // namespace lloco::testing
