// The resumable data order (train/data_order.h): every epoch is a permutation, epochs and seeds
// differ, and a sample's item does not depend on which samples were drawn before it (what exact
// resume relies on).
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "train/data_order.h"

namespace lloco::train {
namespace {

TEST(DataOrder, EpochsArePermutationsThatDifferBySeedAndEpoch) {
  const int64_t n = 37;
  std::vector<int64_t> identity(n);
  std::iota(identity.begin(), identity.end(), 0);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int64_t> order = epoch_order(n, 42, epoch);
    EXPECT_NE(order, identity) << "epoch " << epoch;
    std::sort(order.begin(), order.end());
    EXPECT_EQ(order, identity) << "epoch " << epoch;
  }
  EXPECT_NE(epoch_order(n, 42, 0), epoch_order(n, 42, 1));
  EXPECT_NE(epoch_order(n, 42, 0), epoch_order(n, 43, 0));
  EXPECT_EQ(epoch_order(n, 42, 5), epoch_order(n, 42, 5));
}

TEST(DataOrder, SamplerDrawsTheSameItemInAnyAccessOrder) {
  EpochSampler straight(10, 7), resumed(10, 7);
  std::vector<int64_t> want;
  for (int64_t k = 0; k < 35; ++k) want.push_back(straight(k));
  for (int64_t k = 34; k >= 20; --k) EXPECT_EQ(resumed(k), want[static_cast<size_t>(k)]) << k;
  for (int64_t k = 0; k < 10; ++k) EXPECT_EQ(want[static_cast<size_t>(k)], epoch_order(10, 7, 0)[static_cast<size_t>(k)]);
  for (int64_t k = 10; k < 20; ++k) EXPECT_EQ(want[static_cast<size_t>(k)], epoch_order(10, 7, 1)[static_cast<size_t>(k - 10)]);
  EXPECT_THROW(EpochSampler(0, 7), Error);
}

}  // namespace
}  // namespace lloco::train
