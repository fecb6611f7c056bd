#include "bench/cuda/bench_util.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <exception>

#include "cuda/common.h"
#include "cuda/cuda.h"
#include "cuda/stream.h"

namespace lloco::bench {

DevTensor::DevTensor(const std::vector<int64_t>& shape, DType dt) {
  ref.dtype = dt;
  ref.ndim = static_cast<int>(shape.size());
  int64_t n = 1;
  for (int i = ref.ndim - 1; i >= 0; --i) {
    ref.shape[i] = shape[i];
    ref.strides[i] = n;
    n *= shape[i];
  }
  bytes = static_cast<size_t>(n) * dtype_size(dt);
  ref.data = allocator_for(DeviceType::CUDA).allocate(bytes, Stream{});
  if (dtype_is_float(dt)) gpu().random(ref, RandomKind::Normal, 17, 0, Stream{});
  else gpu().fill(ref, 1.0, Stream{});
}

DevTensor::~DevTensor() { allocator_for(DeviceType::CUDA).deallocate(ref.data, bytes, Stream{}); }

TensorRef DevTensor::view(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) const {
  TensorRef r = ref;
  r.ndim = static_cast<int>(shape.size());
  for (int i = 0; i < r.ndim; ++i) {
    r.shape[i] = shape[i];
    r.strides[i] = strides[i];
  }
  return r;
}

Backend& gpu() { return backend_for(DeviceType::CUDA); }

double time_loop(benchmark::State& state, const std::function<void()>& fn) {
  CudaEvent start(true), stop(true);
  fn();  // warm-up: plans, workspaces, caches
  CUDA_CHECK(cudaDeviceSynchronize());
  double total = 0;
  int64_t n = 0;
  for (auto _ : state) {
    start.record(nullptr);
    fn();
    stop.record(nullptr);
    stop.synchronize();
    double s = stop.elapsed_ms_since(start) * 1e-3;
    state.SetIterationTime(s);
    total += s;
    ++n;
  }
  return n ? total / static_cast<double>(n) : 0.0;
}

double mean_seconds(const std::function<void()>& fn, int reps) {
  fn();
  CUDA_CHECK(cudaDeviceSynchronize());
  CudaEvent start(true), stop(true);
  start.record(nullptr);
  for (int i = 0; i < reps; ++i) fn();
  stop.record(nullptr);
  stop.synchronize();
  return stop.elapsed_ms_since(start) * 1e-3 / reps;
}

void guarded(benchmark::State& state, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

double memcpy_gbps() {
  static const double gbps = [] {
    const size_t bytes = size_t{1} << 30;
    void *a = nullptr, *b = nullptr;
    CUDA_CHECK(cudaMalloc(&a, bytes));
    CUDA_CHECK(cudaMalloc(&b, bytes));
    CUDA_CHECK(cudaMemset(a, 1, bytes));
    CudaEvent start(true), stop(true);
    CUDA_CHECK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
    const int reps = 10;
    start.record(nullptr);
    for (int i = 0; i < reps; ++i) CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, nullptr));
    stop.record(nullptr);
    stop.synchronize();
    double s = stop.elapsed_ms_since(start) * 1e-3 / reps;
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaFree(b));
    return 2.0 * static_cast<double>(bytes) / s / 1e9;
  }();
  return gbps;
}

double square_gemm_tflops() {
  static const double tflops = [] {
    const int n = 8192;
    DevTensor a({n, n}, DType::BF16), b({n, n}, DType::BF16), c({n, n}, DType::BF16);
    cublasHandle_t h;
    CUBLAS_CHECK(cublasCreate(&h));
    float alpha = 1.f, beta = 0.f;
    auto run = [&] {
      CUBLAS_CHECK(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a.ref.data, CUDA_R_16BF, n, b.ref.data,
                                CUDA_R_16BF, n, &beta, c.ref.data, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
    };
    run();
    CudaEvent start(true), stop(true);
    const int reps = 10;
    start.record(nullptr);
    for (int i = 0; i < reps; ++i) run();
    stop.record(nullptr);
    stop.synchronize();
    double s = stop.elapsed_ms_since(start) * 1e-3 / reps;
    CUBLAS_CHECK(cublasDestroy(h));
    return 2.0 * n * n * static_cast<double>(n) / s / 1e12;
  }();
  return tflops;
}

void report_bandwidth(benchmark::State& state, double bytes, double seconds) {
  if (seconds <= 0) return;
  double gbps = bytes / seconds / 1e9;
  state.counters["GB/s"] = gbps;
  state.counters["memcpy_GB/s"] = memcpy_gbps();
  state.counters["frac_memcpy"] = gbps / memcpy_gbps();
}

void report_flops(benchmark::State& state, double flops, double seconds) {
  if (seconds <= 0) return;
  double tf = flops / seconds / 1e12;
  state.counters["TFLOP/s"] = tf;
  state.counters["square_TFLOP/s"] = square_gemm_tflops();
  state.counters["frac_square"] = tf / square_gemm_tflops();
}

int bench_main(int argc, char** argv) {
  if (!cuda_backend_init()) {
    std::printf("no CUDA device: %d devices visible; CUDA benchmarks skipped\n", cuda_device_count());
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

}  // namespace lloco::bench
