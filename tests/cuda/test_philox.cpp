// Philox 4x32-10 known-answer vectors (from the Random123 distribution's kat_vectors) and the
// element mapping contract of core/philox.h. Host-only: runs on every machine.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/philox.h"

namespace lloco {
namespace {

TEST(Philox, KnownAnswerVectors) {
  Philox4 r = philox4x32_10(0, 0, 0, 0, 0, 0);
  EXPECT_EQ(r.w[0], 0x6627e8d5u);
  EXPECT_EQ(r.w[1], 0xe169c58du);
  EXPECT_EQ(r.w[2], 0xbc57ac4cu);
  EXPECT_EQ(r.w[3], 0x9b00dbd8u);
  r = philox4x32_10(~0u, ~0u, ~0u, ~0u, ~0u, ~0u);
  EXPECT_EQ(r.w[0], 0x408f276du);
  EXPECT_EQ(r.w[1], 0x41c83b0eu);
  EXPECT_EQ(r.w[2], 0xa20bc7c6u);
  EXPECT_EQ(r.w[3], 0x6d5451fdu);
  r = philox4x32_10(0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(r.w[0], 0xd16cfe09u);
  EXPECT_EQ(r.w[1], 0x94fdccebu);
  EXPECT_EQ(r.w[2], 0x5001e420u);
  EXPECT_EQ(r.w[3], 0x24126ea1u);
}

TEST(Philox, ElementMappingUsesCounterAndSeedHalves) {
  const uint64_t seed = 0x0123456789abcdefull, n = (5ull << 32) | 7u;
  Philox4 direct = philox4x32_10(7u, 5u, 0u, 0u, 0x89abcdefu, 0x01234567u);
  Philox4 mapped = philox_at(seed, n);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(direct.w[i], mapped.w[i]);
  EXPECT_EQ(philox_uniform(seed, n), static_cast<float>(direct.w[0] >> 8) * 0x1p-24f);
}

TEST(Philox, UniformAndNormalRanges) {
  double sum = 0, sq = 0;
  std::set<float> distinct;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    float u = philox_uniform(42, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.f);
    ASSERT_LT(u, 1.f);
    distinct.insert(u);
    float z = philox_normal(42, static_cast<uint64_t>(i));
    ASSERT_TRUE(std::isfinite(z));
    sum += z;
    sq += static_cast<double>(z) * z;
  }
  EXPECT_GT(distinct.size(), static_cast<size_t>(n * 0.99));
  EXPECT_NEAR(sum / n, 0.0, 0.05);
  EXPECT_NEAR(sq / n, 1.0, 0.05);
}

}  // namespace
}  // namespace lloco
