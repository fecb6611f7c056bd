// Autograd mechanics: accumulation, shared inputs, no-grad, detach, retain_graph, checkpoint.
#include <gtest/gtest.h>

#include <cmath>

#include "core/autograd.h"
#include "core/ops.h"

namespace lloco {
namespace {

TEST(Autograd, AccumulatesAcrossUsesAndCalls) {
  Tensor x = from_vector({1.0f, 2.0f, 3.0f}, {3});
  x.requires_grad_();
  Tensor y = sum(add(mul(x, x), x));  // dy/dx = 2x + 1
  y.backward();
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3, 5, 7}));
  sum(mul(x, 2.0)).backward();  // accumulates into .grad
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{5, 7, 9}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, NoGradGuardAndDetachStopRecording) {
  Tensor w = ones({2});
  w.requires_grad_();
  {
    NoGradGuard ng;
    EXPECT_FALSE(mul(w, 3.0).requires_grad());
  }
  EXPECT_TRUE(mul(w, 3.0).requires_grad());
  EXPECT_FALSE(w.detach().requires_grad());
  EXPECT_THROW(sum(w.detach()).backward(), Error);
}

TEST(Autograd, FreedGraphErrorsUnlessRetained) {
  Tensor w = ones({2});
  w.requires_grad_();
  Tensor y = sum(exp(w));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  EXPECT_NEAR(w.grad().to_vector<float>()[0], 2 * std::exp(1.0), 1e-5);
  EXPECT_THROW(y.backward(), Error);
}

TEST(Autograd, CheckpointMatchesPlainBackwardIncludingCapturedWeights) {
  Tensor x = randn({4, 6}, 1, DType::F64);
  Tensor w = randn({6, 6}, 2, DType::F64);
  x.requires_grad_();
  w.requires_grad_();
  auto block = [&w](const std::vector<Tensor>& in) { return silu(matmul(in[0], w)); };
  sum(square(block({x}))).backward();
  Tensor gx = x.grad(), gw = w.grad();
  x.zero_grad();
  w.zero_grad();
  Tensor y = checkpoint(block, {x});
  EXPECT_TRUE(y.requires_grad());
  sum(square(y)).backward();
  EXPECT_LT(compare_tensors(x.grad(), gx).max_abs, 1e-12);
  ASSERT_TRUE(w.grad().defined()) << "weights captured by the block must receive gradients";
  EXPECT_LT(compare_tensors(w.grad(), gw).max_abs, 1e-12);
}

TEST(Autograd, GradientsReachLeavesThroughViews) {
  Tensor x = arange(0, 6, 1, DType::F64).reshape({2, 3});
  x.requires_grad_();
  Tensor y = x.transpose(0, 1).narrow(0, 1, 2).reshape({4});
  sum(mul(y, from_vector<double>({1, 2, 3, 4}, {4}, DType::F64))).backward();
  // y = [x01, x11, x02, x12]
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 1, 3, 0, 2, 4}));
}

}  // namespace
}  // namespace lloco
