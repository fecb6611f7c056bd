// Read bandwidth of the host's memory, the floor for CPU kernels that stream an operand once (a
// decode step's weights): a 2 GB buffer, far above the L3 of the machines we use, summed by every
// OpenMP thread. Two read patterns, since neither is the fastest on every machine: a few concurrent
// sequential streams per thread, and one stream per thread with software prefetch ahead of it. The
// floor is the faster of the two, so a kernel that issues its own prefetches is not measured against
// a slower reader than itself.
#pragma once
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>

#include "core/tensor.h"

namespace lloco::bench {

enum class ReadPattern { kFourStreams, kPrefetchedStream };

// Elements per thread-stream for a buffer of n floats (each stream's length rounds down to 16).
inline int64_t stream_len(int64_t n, int64_t threads, int streams) { return (n / threads) / streams / 16 * 16; }
inline int streams_of(ReadPattern pattern) { return pattern == ReadPattern::kFourStreams ? 4 : 1; }

template <int kStreams, int64_t kPrefetchFloats>
float stream_sum_pattern(const float* p, int64_t n) {
  using V = float __attribute__((vector_size(64)));
  float total = 0.f;
#pragma omp parallel reduction(+ : total)
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t begin = n * t / threads, len = stream_len(n, threads, kStreams);
    V acc[kStreams] = {};
    for (int64_t i = 0; i < len; i += 16)
      for (int s = 0; s < kStreams; ++s) {
        const float* at = p + begin + s * len + i;
        if constexpr (kPrefetchFloats > 0) __builtin_prefetch(at + kPrefetchFloats, 0, 2);
        V v;
        std::memcpy(&v, at, sizeof(v));
        acc[s] += v;
      }
    V sum = {};
    for (const V& a : acc) sum += a;
    for (int l = 0; l < 16; ++l) total += sum[l];
  }
  return total;
}

// Sum of the buffer as `pattern` reads it. On the development VM (2 threads) one plain stream per
// thread reached 31 GB/s, four streams 33, one stream prefetched 4 KB ahead 33-35.
inline float stream_sum(const float* p, int64_t n, ReadPattern pattern) {
  return pattern == ReadPattern::kFourStreams ? stream_sum_pattern<4, 0>(p, n) : stream_sum_pattern<1, 1024>(p, n);
}

// Elements stream_sum reads of a buffer of n.
inline int64_t stream_sum_reads(int64_t n, int threads, ReadPattern pattern) {
  return stream_len(n, threads, streams_of(pattern)) * streams_of(pattern) * threads;
}

constexpr int64_t kStreamFloats = int64_t{1} << 29;  // 2 GB

// Best of `reps` timed passes of each pattern, GB/s. The buffer comes from lloco's CPU allocator, so it
// gets the same pages as the tensors it is compared with.
inline double cpu_read_gbps(int reps = 5) {
  const Tensor buffer = full({kStreamFloats}, 1.0);
  const float* data = buffer.data<float>();
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r)
    for (ReadPattern pattern : {ReadPattern::kFourStreams, ReadPattern::kPrefetchedStream}) {
      const auto t0 = std::chrono::steady_clock::now();
      sink = sink + stream_sum(data, kStreamFloats, pattern);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::max(best, static_cast<double>(stream_sum_reads(kStreamFloats, omp_get_max_threads(), pattern)) *
                                sizeof(float) / s / 1e9);
    }
  return best;
}

}  // namespace lloco::bench
