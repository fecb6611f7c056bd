// Read bandwidth of the host's memory, the floor for CPU kernels that stream an operand once (a
// decode step's weights): a 2 GB buffer, far above the L3 of the machines we use, summed by every
// OpenMP thread as a few concurrent sequential streams, each with its own vector accumulator.
#pragma once
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/tensor.h"

namespace lloco::bench {

inline float stream_sum(const float* p, int64_t n) {
  using V = float __attribute__((vector_size(64)));
  constexpr int kStreams = 4;  // concurrent sequential streams per thread: one alone leaves 10-20% unused
  float total = 0.f;
#pragma omp parallel reduction(+ : total)
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t begin = n * t / threads, len = (n / threads) / kStreams / 16 * 16;
    V acc[kStreams] = {};
    for (int64_t i = 0; i < len; i += 16)
      for (int s = 0; s < kStreams; ++s) {
        V v;
        std::memcpy(&v, p + begin + s * len + i, sizeof(v));
        acc[s] += v;
      }
    V sum = {};
    for (const V& a : acc) sum += a;
    for (int l = 0; l < 16; ++l) total += sum[l];
  }
  return total;
}

// Elements stream_sum reads of a buffer of n (the per-thread stream lengths round down).
inline int64_t stream_sum_reads(int64_t n, int threads) {
  return (n / threads) / 4 / 16 * 16 * 4 * threads;
}

constexpr int64_t kStreamFloats = int64_t{1} << 29;  // 2 GB

// Best of `reps` timed passes, GB/s. The buffer comes from lloco's CPU allocator, so it gets the same
// pages (huge pages where the kernel grants them) as the tensors it is compared with.
inline double cpu_read_gbps(int reps = 5) {
  const Tensor buffer = full({kStreamFloats}, 1.0);
  const float* data = buffer.data<float>();
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    sink = sink + stream_sum(data, kStreamFloats);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(stream_sum_reads(kStreamFloats, omp_get_max_threads())) *
                              sizeof(float) / s / 1e9);
  }
  return best;
}

}  // namespace lloco::bench
