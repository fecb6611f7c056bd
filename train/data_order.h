// Deterministic data order for resumable training: global sample k (counted across epochs) of n
// items is item epoch_order(n, seed, k / n)[k % n]. Each epoch is a Fisher-Yates shuffle driven by a
// counter-based generator, so a resumed run draws exactly what an uninterrupted one would, on every
// platform.
#pragma once
#include <cstdint>
#include <map>
#include <vector>

namespace lloco::train {

// SplitMix64: advances `state` and returns the next 64-bit value.
uint64_t splitmix64(uint64_t& state);

// The permutation of [0, n) for (seed, epoch).
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch);

// Item of global sample k; each epoch's permutation is made on first use and kept.
class EpochSampler {
 public:
  EpochSampler(int64_t n, uint64_t seed);
  int64_t operator()(int64_t k);

 private:
  int64_t n_;
  uint64_t seed_;
  std::map<int64_t, std::vector<int64_t>> orders_;
};

}  // namespace lloco::train
