// Shared pieces of the CUDA benchmarks: device tensors built as raw TensorRefs, CUDA-event timing
// reported as Google Benchmark manual time, and the same-run baselines every number is put next
// to (a device-to-device cudaMemcpy for bandwidth, a large square cuBLAS GEMM for TFLOP/s).
#pragma once
#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "core/backend.h"

namespace lloco::bench {

struct DevTensor {
  TensorRef ref;
  size_t bytes = 0;
  DevTensor(const std::vector<int64_t>& shape, DType dt);  // contiguous, N(0, 1) values
  ~DevTensor();
  DevTensor(const DevTensor&) = delete;
  DevTensor& operator=(const DevTensor&) = delete;
  // A view with the given shape/strides over the same memory.
  TensorRef view(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) const;
};

Backend& gpu();
// Times fn() per iteration with CUDA events (default stream) and reports it as manual time;
// returns the mean seconds per call. Use with ->UseManualTime().
double time_loop(benchmark::State& state, const std::function<void()>& fn);

// Mean seconds per call of fn over `reps` calls after one warm-up call (CUDA events, default
// stream): for baselines timed inside another benchmark's body.
double mean_seconds(const std::function<void()>& fn, int reps);
// Runs a benchmark body; an error (an unsupported shape, out of memory) marks this benchmark as
// failed in the report instead of ending the binary.
void guarded(benchmark::State& state, const std::function<void()>& body);

// Same-run baselines, measured once per process on first use.
double memcpy_gbps();          // device-to-device copy of 1 GiB, bytes read + written per second
double square_gemm_tflops();   // 8192^3 bf16 cublasGemmEx with f32 accumulation

// Sets GB/s and the fraction of the memcpy baseline as counters.
void report_bandwidth(benchmark::State& state, double bytes, double seconds);
// Sets TFLOP/s and the fraction of the square-GEMM baseline as counters.
void report_flops(benchmark::State& state, double flops, double seconds);

// main() for CUDA benchmark binaries: prints a skip notice and exits 0 without a GPU.
int bench_main(int argc, char** argv);

}  // namespace lloco::bench
