// CPU matmul: lloco's matmul op (Eigen GEMM under the hood) against OpenBLAS sgemm on the same
// shapes in the same run. Prints GFLOP/s for both and their ratio per shape at the end.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

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
      {"llama_qkvo_m1", 1, 4096, 4096, true},   {"llama_qkvo_m16", 16, 4096, 4096, true},
      {"llama_qkvo_m64", 64, 4096, 4096, true}, {"llama_up_m64", 64, 11008, 4096, true},
      {"llama_down_m64", 64, 4096, 11008, true}, {"llama_qkvo_m512", 512, 4096, 4096, true},
  };
  return s;
}

void set_flops(benchmark::State& state, const Shape3& s) {
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * s.M * s.N * s.K * state.iterations() / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void bm_lloco(benchmark::State& state, Shape3 s) {
  lloco::Tensor a = lloco::randn({s.M, s.K}, 1);
  lloco::Tensor b = s.b_transposed ? lloco::randn({s.N, s.K}, 2).transpose(0, 1) : lloco::randn({s.K, s.N}, 2);
  for (auto _ : state) {
    lloco::Tensor c = lloco::matmul(a, b);
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

}  // namespace

int main(int argc, char** argv) {
  for (const Shape3& s : shapes()) {
    benchmark::RegisterBenchmark((std::string("matmul_f32/lloco/") + s.name).c_str(), bm_lloco, s)->UseRealTime();
    benchmark::RegisterBenchmark((std::string("matmul_f32/openblas/") + s.name).c_str(), bm_openblas, s)->UseRealTime();
  }
  benchmark::Initialize(&argc, argv);
  CollectingReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  std::printf("\n%-18s %12s %12s %8s\n", "shape", "lloco GF/s", "OpenBLAS", "ratio");
  for (const Shape3& s : shapes()) {
    auto ours = reporter.gflops.find(std::string("matmul_f32/lloco/") + s.name + "/real_time");
    auto base = reporter.gflops.find(std::string("matmul_f32/openblas/") + s.name + "/real_time");
    if (ours == reporter.gflops.end() || base == reporter.gflops.end()) continue;
    std::printf("%-18s %12.1f %12.1f %8.2f\n", s.name, ours->second, base->second, ours->second / base->second);
  }
  benchmark::Shutdown();
  return 0;
}
