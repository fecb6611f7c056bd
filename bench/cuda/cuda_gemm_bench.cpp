// GEMM throughput of CudaBackend::matmul on LLaMA-2-7B linear shapes: x [M, K] @ W^T with the
// weight stored [N, K] (a transposed view, as linear() passes it), bf16 with f32 accumulation.
// Every result carries TFLOP/s and its fraction of an 8192^3 cublasGemmEx from the same run.
#include "bench/cuda/bench_util.h"

namespace lloco::bench {
namespace {

// args: M, K, N
void BM_linear_bf16(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  DevTensor x({1, M, K}, DType::BF16), w({N, K}, DType::BF16), y({1, M, N}, DType::BF16);
  TensorRef wt = w.view({1, K, N}, {0, 1, K});
  double s = time_loop(state, [&] { gpu().matmul(y.ref, x.ref, wt, Stream{}); });
  report_flops(state, 2.0 * M * N * K, s);
}

void BM_square_bf16(benchmark::State& state) {
  const int64_t n = state.range(0);
  DevTensor a({1, n, n}, DType::BF16), b({1, n, n}, DType::BF16), c({1, n, n}, DType::BF16);
  double s = time_loop(state, [&] { gpu().matmul(c.ref, a.ref, b.ref, Stream{}); });
  report_flops(state, 2.0 * n * n * n, s);
}

// Batched attention-style product with a broadcast operand (batch stride 0).
void BM_batched_bf16(benchmark::State& state) {
  const int64_t B = state.range(0), M = state.range(1), K = state.range(2), N = state.range(3);
  DevTensor a({B, M, K}, DType::BF16), b({B, K, N}, DType::BF16), c({B, M, N}, DType::BF16);
  double s = time_loop(state, [&] { gpu().matmul(c.ref, a.ref, b.ref, Stream{}); });
  report_flops(state, 2.0 * B * M * N * K, s);
}

void BM_linear_f32(benchmark::State& state) {
  const int64_t M = state.range(0), K = state.range(1), N = state.range(2);
  DevTensor x({1, M, K}, DType::F32), w({N, K}, DType::F32), y({1, M, N}, DType::F32);
  TensorRef wt = w.view({1, K, N}, {0, 1, K});
  double s = time_loop(state, [&] { gpu().matmul(y.ref, x.ref, wt, Stream{}); });
  report_flops(state, 2.0 * M * N * K, s);
}

void linear_shapes(benchmark::internal::Benchmark* b) {
  for (int64_t m : {1, 16, 128, 2048, 8192})
    for (auto [k, n] : {std::pair<int64_t, int64_t>{4096, 4096}, {4096, 11008}, {11008, 4096}}) b->Args({m, k, n});
}

BENCHMARK(BM_square_bf16)->Arg(8192)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.2);
BENCHMARK(BM_linear_bf16)->Apply(linear_shapes)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
BENCHMARK(BM_batched_bf16)->Args({32, 2048, 128, 2048})->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);
BENCHMARK(BM_linear_f32)->Args({2048, 4096, 4096})->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) { return lloco::bench::bench_main(argc, argv); }
