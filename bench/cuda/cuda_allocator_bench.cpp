// Caching allocator: cost of an allocate/deallocate pair in a steady-state loop, and proof that the
// loop never reaches cudaMalloc (counter cuda_mallocs_in_loop must read 0).
#include "bench/cuda/bench_util.h"
#include "cuda/cuda.h"

namespace lloco::bench {
namespace {

void BM_alloc_free_steady(benchmark::State& state) {
  const size_t sizes[] = {256, 4096, 65536, size_t{1} << 20, size_t{8} << 20, size_t{64} << 20, size_t{3} << 20, 1000};
  Allocator& a = allocator_for(DeviceType::CUDA);
  auto round = [&] {
    void* p[8];
    for (int i = 0; i < 8; ++i) p[i] = a.allocate(sizes[i], Stream{});
    for (int i = 7; i >= 0; --i) a.deallocate(p[i], sizes[i], Stream{});
  };
  round();
  const uint64_t before = cuda_allocator_stats().num_cuda_mallocs;
  for (auto _ : state) round();
  state.counters["cuda_mallocs_in_loop"] = static_cast<double>(cuda_allocator_stats().num_cuda_mallocs - before);
  state.counters["ns_per_alloc_free"] =
      benchmark::Counter(8.0, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["cuda_mallocs_total"] = static_cast<double>(cuda_allocator_stats().num_cuda_mallocs);
}

BENCHMARK(BM_alloc_free_steady)->MinTime(0.2);

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) { return lloco::bench::bench_main(argc, argv); }
