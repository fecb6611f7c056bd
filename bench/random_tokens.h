// Token ids for the end-to-end LLaMA benchmarks: uniform over the vocabulary past BOS/EOS, so no
// prompt stops generation early, and deterministic in the seed.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace lloco::bench {

inline std::vector<int32_t> random_tokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> dist(3, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (auto& t : ids) t = dist(rng);
  return ids;
}

}  // namespace lloco::bench
