// CPU matmul: lloco's matmul op against OpenBLAS sgemm on the same shapes in the same run. Prints
// GFLOP/s for both and their ratio per shape at the end.
// bf16 / f16 rows (x and W in the half type, f32 accumulation, half out) run the LLaMA shapes with W
// cold (rotating through 3 GB of copies), against the same f32 OpenBLAS baseline (warm W) and against
// the memory floor: the bytes of W over the read bandwidth of a 2 GB buffer measured in the same run
// (the faster of two read patterns, bench/cpu_bandwidth.h).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench/cpu_bandwidth.h"
#include "core/ops.h"

namespace {

struct Shape3 {
  const char* name;
  int64_t M, N, K;
  bool b_transposed;  // x @ W^T with W stored [N, K] (nn.Linear layout)
};

const std::vector<Shape3>& shapes() {
  static const std::vector<Shape3> s{
      {"square256", 256, 256, 256, false},      {"square512", 512, 512, 512, false},
      {"square1024", 1024, 1024, 1024, false},  {"square2048", 2048, 2048, 2048, false},
      {"llama_qkvo_m1", 1, 4096, 4096, true},   {"llama_up_m1", 1, 11008, 4096, true},
      {"llama_down_m1", 1, 4096, 11008, true},  {"llama_qkvo_m16", 16, 4096, 4096, true},
      {"llama_qkvo_m64", 64, 4096, 4096, true}, {"llama_up_m64", 64, 11008, 4096, true},
      {"llama_down_m64", 64, 4096, 11008, true}, {"llama_qkvo_m512", 512, 4096, 4096, true},
      {"llama_up_m512", 512, 11008, 4096, true}, {"llama_down_m512", 512, 4096, 11008, true},
  };
  return s;
}

void set_flops(benchmark::State& state, const Shape3& s) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.M * s.N * s.K * state.iterations() / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void bm_lloco(benchmark::State& state, Shape3 s, lloco::DType dtype) {
  lloco::Tensor a = lloco::randn({s.M, s.K}, 1, dtype);
  lloco::Tensor b = s.b_transposed ? lloco::randn({s.N, s.K}, 2, dtype).transpose(0, 1)
                                   : lloco::randn({s.K, s.N}, 2, dtype);
  for (auto _ : state) {
    lloco::Tensor c = lloco::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_flops(state, s);
}

// Half rows: each iteration multiplies by the next of enough weight copies to fill 3 GB (the L3 of
// this VM reports 480 MB), so W comes from DRAM as it does when a decode step walks a whole model.
void bm_lloco_cold(benchmark::State& state, Shape3 s, lloco::DType dtype) {
  const int64_t w_bytes = s.N * s.K * static_cast<int64_t>(lloco::dtype_size(dtype));
  const int64_t copies = std::max<int64_t>(1, ((int64_t{3} << 30) + w_bytes - 1) / w_bytes);
  lloco::Tensor a = lloco::randn({s.M, s.K}, 1, dtype);
  lloco::Tensor pool = lloco::empty({copies * s.N, s.K}, dtype);
  const lloco::Tensor w0 = lloco::randn({s.N, s.K}, 2, dtype);
  for (int64_t c = 0; c < copies; ++c) lloco::copy_(pool.narrow(0, c * s.N, s.N), w0);
  int64_t next = 0;
  for (auto _ : state) {
    lloco::Tensor w = pool.narrow(0, next * s.N, s.N);
    next = (next + 1) % copies;
    lloco::Tensor c = lloco::matmul(a, w.transpose(0, 1));
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_flops(state, s);
}

void bm_openblas(benchmark::State& state, Shape3 s) {
  std::vector<float> a = lloco::randn({s.M, s.K}, 1).to_vector<float>();
  std::vector<float> b = lloco::randn({s.b_transposed ? s.N : s.K, s.b_transposed ? s.K : s.N}, 2).to_vector<float>();
  std::vector<float> c(static_cast<size_t>(s.M * s.N));
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, s.b_transposed ? CblasTrans : CblasNoTrans, s.M, s.N, s.K, 1.0f,
                a.data(), s.K, b.data(), s.b_transposed ? s.K : s.N, 0.0f, c.data(), s.N);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, s);
}

// Collects GFLOP/s per benchmark name so main can print lloco/OpenBLAS ratios.
class CollectingReporter : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, double> gflops;
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) {
      auto it = r.counters.find("GFLOP/s");
      if (it != r.counters.end() && r.run_type == Run::RT_Iteration) gflops[r.benchmark_name()] = it->second;
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

const std::vector<std::pair<const char*, lloco::DType>>& half_types() {
  static const std::vector<std::pair<const char*, lloco::DType>> t{{"bf16", lloco::DType::BF16},
                                                                    {"f16", lloco::DType::F16}};
  return t;
}

std::string bench_name(const char* impl, const char* dtype, const Shape3& s) {
  return std::string("matmul_") + dtype + "/" + impl + "/" + s.name;
}

}  // namespace

int main(int argc, char** argv) {
  for (const Shape3& s : shapes()) {
    benchmark::RegisterBenchmark(bench_name("lloco", "f32", s).c_str(), bm_lloco, s, lloco::DType::F32)->UseRealTime();
    benchmark::RegisterBenchmark(bench_name("openblas", "f32", s).c_str(), bm_openblas, s)->UseRealTime();
  }
  for (const auto& [dname, dtype] : half_types())
    for (const Shape3& s : shapes())
      if (s.b_transposed)
        benchmark::RegisterBenchmark(bench_name("lloco", dname, s).c_str(), bm_lloco_cold, s, dtype)->UseRealTime();
  benchmark::Initialize(&argc, argv);
  CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  auto gflops = [&](const std::string& name) {
    auto it = reporter.gflops.find(name + "/real_time");
    return it == reporter.gflops.end() ? 0.0 : it->second;
  };
  std::printf("\n%-18s %12s %12s %8s\n", "shape", "lloco GF/s", "OpenBLAS", "ratio");
  for (const Shape3& s : shapes()) {
    const double ours = gflops(bench_name("lloco", "f32", s)), base = gflops(bench_name("openblas", "f32", s));
    if (ours > 0 && base > 0) std::printf("%-18s %12.1f %12.1f %8.2f\n", s.name, ours, base, ours / base);
  }
  // Floor: the half W read once at the read bandwidth, the best of 5 passes of each read pattern
  // measured now, after the products; "of floor" = floor time / our time.
  const bool any_half = std::any_of(reporter.gflops.begin(), reporter.gflops.end(),
                                    [](const auto& kv) { return kv.first.find("f16/") != std::string::npos; });
  const double read_gbs = any_half ? lloco::bench::cpu_read_gbps() : 0.0;
  if (read_gbs > 0) std::printf("\nread bandwidth: %.1f GB/s (%d threads)\n", read_gbs, omp_get_max_threads());
  std::printf("%-6s %-18s %12s %14s %8s %12s %9s\n", "dtype", "shape", "lloco GF/s", "OpenBLAS f32", "ratio",
              "W GB/s", "of floor");
  for (const auto& [dname, dtype] : half_types())
    for (const Shape3& s : shapes()) {
      const double ours = gflops(bench_name("lloco", dname, s)), base = gflops(bench_name("openblas", "f32", s));
      if (ours <= 0) continue;
      const double seconds = 2.0 * s.M * s.N * s.K / (ours * 1e9), w_gbs = 2.0 * s.N * s.K / seconds / 1e9;
      std::printf("%-6s %-18s %12.1f %14.1f %8.2f %12.1f %9.2f\n", dname, s.name, ours, base,
                  base > 0 ? ours / base : 0.0, w_gbs, read_gbs > 0 ? w_gbs / read_gbs : 0.0);
    }
  benchmark::Shutdown();
  return 0;
}
