// Tensor basics: views share storage, strides and offsets are right, dtype conversions round like
// PyTorch, the counter-based RNG is device/shape independent, errors name the op and both values.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops.h"
#include "core/philox.h"

namespace lloco {
namespace {

TEST(Tensor, ViewsShareStorageWithoutCopies) {
  Tensor t = arange(0, 24, 1, DType::F32).reshape({2, 3, 4});
  EXPECT_TRUE(t.is_contiguous());
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Shape{1, 12, 4}));
  EXPECT_FALSE(p.is_contiguous());
  EXPECT_EQ(p.storage().get(), t.storage().get());
  Tensor n = t.narrow(2, 1, 2);
  EXPECT_EQ(n.offset(), 1);
  EXPECT_EQ(n.to_vector<float>(), (std::vector<float>{1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22}));
  Tensor e = t.select(0, 1).narrow(0, 0, 1).expand({5, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1}));
  EXPECT_EQ(e.to_vector<float>()[4 * 4 + 3], 15.0f);
  Tensor u = t.unsqueeze(1);
  EXPECT_EQ(u.shape(), (Shape{2, 1, 3, 4}));
  EXPECT_EQ(u.squeeze(1).shape(), t.shape());
  // A transposed view cannot be viewed flat, but reshape copies.
  EXPECT_THROW(p.view({24}), Error);
  Tensor flat = p.reshape({24});
  EXPECT_NE(flat.storage().get(), t.storage().get());
  EXPECT_EQ(flat.to_vector<float>()[1], 4.0f);  // p[0, 0, 1] = t[0, 1, 0]
  // Writes through a view land in the base.
  fill_(t.narrow(0, 1, 1), -1.0);
  EXPECT_EQ(t.to_vector<float>()[12], -1.0f);
  EXPECT_EQ(t.to_vector<float>()[11], 11.0f);
}

TEST(Tensor, ReshapeMergesCompatibleDimsOfStridedViews) {
  Tensor t = arange(0, 60, 1, DType::F32).reshape({3, 4, 5});
  Tensor n = t.narrow(0, 1, 2);  // rows 1..2: still mergeable with dim 1
  Tensor v = n.view({8, 5});
  EXPECT_EQ(v.storage().get(), t.storage().get());
  EXPECT_EQ(v.to_vector<float>()[0], 20.0f);
  EXPECT_EQ(t.reshape({-1, 5}).shape(), (Shape{12, 5}));
  EXPECT_THROW(t.reshape({7, -1}), Error);
}

TEST(Tensor, ReshapeOfExpandedDimNextToSizeOneDims) {
  // GQA with one key: k [B=1, Hkv=1, Tk=1, D] expanded to 4 query heads and merged, as the composed
  // attention does. The size-1 Tk dim's stride must not make the stride-0 head dim look contiguous
  // with D (that view read 4x past the storage; found by simt_memcheck.sh).
  const Tensor k = arange(0, 8, 1, DType::F32).reshape({1, 1, 1, 8});
  const Tensor merged = k.unsqueeze(2).expand({1, 1, 4, 1, 8}).reshape({1, 4, 1, 8});
  const std::vector<float> got = merged.contiguous().to_vector<float>();
  ASSERT_EQ(got.size(), 32u);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i], static_cast<float>(i % 8)) << i;
  EXPECT_EQ(merged.stride(1), 0) << "still a view: the head dim keeps stride 0";
}

TEST(Tensor, HalfConversionsRoundToNearestEven) {
  // Values and bit patterns from torch.tensor([...]).to(torch.float16 / torch.bfloat16).view(int16).
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);       // rounds up to inf
  EXPECT_EQ(float_to_half(5.9604645e-08f), 0x0001);  // smallest subnormal
  EXPECT_EQ(float_to_half(-2.001953125f), 0xc001);   // exactly representable
  EXPECT_EQ(float_to_half(-2.0009765625f), 0xc000);  // tie -> even (down)
  EXPECT_EQ(float_to_half(1.00048828125f), 0x3c00);  // tie -> even
  EXPECT_EQ(float_to_bf16(1.00390625f), 0x3f80);     // tie -> even
  EXPECT_EQ(float_to_bf16(1.01171875f), 0x3f82);     // tie -> even (up)
  EXPECT_EQ(float_to_bf16(3.14159265f), 0x4049);
  for (uint32_t bits = 0; bits < 0x7c00; bits += 7) {  // every finite half survives a round trip
    EXPECT_EQ(float_to_half(half_to_float(static_cast<uint16_t>(bits))), bits);
  }
  Tensor x = from_vector({1.5f, -2.25f, 1e-3f}, {3});
  EXPECT_EQ(x.to(DType::BF16).to(DType::F32).to_vector<float>(), (std::vector<float>{1.5f, -2.25f, 0.00099945068359375f}));
}

TEST(Tensor, LargeIntegersRoundTripExactly) {
  std::vector<int64_t> v{9007199254740993LL, -9007199254740995LL, INT64_MAX};
  EXPECT_EQ(from_vector<int64_t>(v, {3}, DType::I64).to_vector<int64_t>(), v);
}

TEST(Tensor, PhiloxMatchesKnownAnswer) {
  // Known-answer vectors of Philox4x32-10 (Random123 kat_vectors).
  Philox4 z = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(z.w[0], 0x6627e8d5u);
  EXPECT_EQ(z.w[1], 0xe169c58du);
  EXPECT_EQ(z.w[2], 0xbc57ac4cu);
  EXPECT_EQ(z.w[3], 0x9b00dbd8u);
  Philox4 p = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(p.w[0], 0xd16cfe09u);
  EXPECT_EQ(p.w[1], 0x94fdccebu);
  EXPECT_EQ(p.w[2], 0x5001e420u);
  EXPECT_EQ(p.w[3], 0x24126ea1u);
}

TEST(Tensor, RandomStreamIsShapeIndependent) {
  Tensor a = rand({4, 5}, 42);
  Tensor b = rand({20}, 42);
  EXPECT_EQ(a.reshape({20}).to_vector<float>(), b.to_vector<float>());
  Tensor tail = rand({5}, 42, DType::F32, cpu(), 15);  // offset continues the stream
  EXPECT_EQ(tail.to_vector<float>()[0], b.to_vector<float>()[15]);
  std::vector<float> n = randn({20000}, 7).to_vector<float>();
  double s = 0, s2 = 0;
  for (float v : n) {
    s += v;
    s2 += double(v) * v;
  }
  EXPECT_NEAR(s / n.size(), 0.0, 0.03);
  EXPECT_NEAR(s2 / n.size(), 1.0, 0.05);
}

TEST(Tensor, ErrorsNameTheOpAndBothValues) {
  Tensor a = zeros({2, 3}), b = zeros({4, 3});
  try {
    add(a, b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[add]"), std::string::npos) << m;
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 3]"), std::string::npos) << m;
  }
  try {
    matmul(zeros({2, 3}), zeros({4, 5}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("3 vs 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(add(zeros({2}), zeros({2}, DType::BF16)), Error);
  EXPECT_THROW(index_select(zeros({3, 2}), 0, from_vector<int64_t>({3}, {1}, DType::I64)), Error);
  EXPECT_THROW(cross_entropy(zeros({2, 4}), from_vector<int64_t>({1, 9}, {2}, DType::I64)), Error);
  EXPECT_THROW(zeros({2, 3}).narrow(1, 2, 2), Error);
  EXPECT_THROW(empty({2}, DType::F32, cuda(0)), Error);  // no CUDA backend registered in core tests
}

}  // namespace
}  // namespace lloco
