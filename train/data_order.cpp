#include "train/data_order.h"

#include <numeric>
#include <utility>

#include "core/error.h"

namespace lloco::train {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  uint64_t state = seed ^ (0xD1B54A32D192ED03ull * static_cast<uint64_t>(epoch + 1));
  for (int64_t i = n - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(splitmix64(state) % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

EpochSampler::EpochSampler(int64_t n, uint64_t seed) : n_(n), seed_(seed) {
  LLOCO_CHECK(n > 0, "EpochSampler", "needs at least one item, got ", n);
}

int64_t EpochSampler::operator()(int64_t k) {
  LLOCO_CHECK(k >= 0, "EpochSampler", "sample index must be >= 0, got ", k);
  const int64_t epoch = k / n_;
  auto it = orders_.find(epoch);
  if (it == orders_.end()) it = orders_.emplace(epoch, epoch_order(n_, seed_, epoch)).first;
  return it->second[static_cast<size_t>(k % n_)];
}

}  // namespace lloco::train
