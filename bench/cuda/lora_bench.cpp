// Multi-LoRA on CUDA through the public ops, LLaMA-2-7B attention projections (4096 x 4096, bf16,
// rank 8, scale 2 = alpha 16 / r 8).
//
// qkvo: the four projections of one layer, base `linear` alone vs `lora_linear` with one adapter,
// at 1, 16 and 2048 tokens. The reported time is the LoRA path; base_us is the base path measured
// in the same benchmark and overhead_% = (lora - base) / base. At 1 token `lora_linear` runs the
// fused decode kernel (base GEMV and both LoRA products in one launch) against cuBLAS's GEMV as
// the base; at 16 and 2048 tokens it is the shrink, the expand writing the delta, and cuBLAS adding
// x W^T onto it (beta = 1).
// SGMV / BGMV: `lora_delta` alone for a 2048-token batch split into equal segments over 1, 8 or 64
// distinct adapters, and for 16 rows with 16 distinct adapters (one per row). These are memory
// bound (2 * r * (I + O) FLOP per row), so GB/s counts x read, the used adapters read and the delta
// written, next to a same-run cudaMemcpy; vs_linear_% puts the time next to one base projection of
// the same rows.
#include <cuda_runtime.h>

#include <vector>

#include "bench/cuda/bench_util.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "cuda/common.h"
#include "cuda/stream.h"

namespace lloco::bench {
namespace {

constexpr int64_t kHidden = 4096, kRank = 8;
constexpr double kScale = 2.0;

Tensor normal(const Shape& shape, uint64_t seed, double stddev) {
  return randn(shape, seed, DType::BF16, cuda()) * stddev;
}

struct Projection {
  Tensor weight, a, b;  // [O, I], [1, r, I], [1, O, r]
};

// args: tokens
void BM_qkvo_lora_r8(benchmark::State& state) {
  guarded(state, [&] {
    NoGradGuard no_grad;
    const int64_t n = state.range(0);
    const Tensor x = normal({n, kHidden}, 1, 1.0);
    std::vector<Projection> proj;
    for (uint64_t i = 0; i < 4; ++i)
      proj.push_back({normal({kHidden, kHidden}, 10 + i, 0.02), normal({1, kRank, kHidden}, 20 + i, 0.02),
                      normal({1, kHidden, kRank}, 30 + i, 0.02)});
    const LoraSegments seg = LoraSegments::single(n, 0, cuda());
    std::vector<Tensor> out(4);
    const double base = mean_seconds(
        [&] {
          for (int i = 0; i < 4; ++i) out[i] = linear(x, proj[i].weight);
        },
        20);
    const double sec = time_loop(state, [&] {
      for (int i = 0; i < 4; ++i) out[i] = lora_linear(x, proj[i].weight, proj[i].a, proj[i].b, kScale, seg);
    });
    state.counters["base_us"] = base * 1e6;
    state.counters["overhead_%"] = sec > 0 ? 100.0 * (sec - base) / base : 0.0;
  });
}

// args: tokens (<= 4), path (0: the fused decode kernel, 1: shrink + expand + GEMM adding onto the
// delta, the composition lora_linear uses above 4 rows), through the backend directly. One 4096 x
// 4096 projection, rank 8; base_us is the GEMM alone (cuBLAS) in the same benchmark, overhead_% =
// (path - base) / base.
void BM_decode_lora_path(benchmark::State& state) {
  guarded(state, [&] {
    NoGradGuard no_grad;
    const int64_t n = state.range(0);
    const bool fused = state.range(1) == 0;
    const Tensor x = normal({n, kHidden}, 1, 1.0), w = normal({kHidden, kHidden}, 2, 0.02);
    const Tensor a = normal({1, kRank, kHidden}, 3, 0.02), b = normal({1, kHidden, kRank}, 4, 0.02);
    const Tensor y = empty({n, kHidden}, DType::BF16, cuda()), t = empty({n, kRank}, DType::BF16, cuda());
    const LoraSegments seg = LoraSegments::single(n, 0, cuda());
    const TensorRef indptr = to_ref(seg.indptr_dev), adapter = to_ref(seg.adapter_dev);
    Backend& be = gpu();
    LoraMatmulParams shrink, expand;
    expand.scale = kScale;
    auto gemm = [&] { be.matmul(to_ref(y), to_ref(x), to_ref(w.transpose(0, 1)), Stream{}); };
    const double base = mean_seconds(gemm, 20);
    state.SetLabel(fused ? "fused" : "shrink+expand+gemm_add");
    const double sec = time_loop(state, [&] {
      if (fused) {
        LLOCO_CHECK(be.lora_linear_fused(to_ref(y), to_ref(t), to_ref(x), to_ref(w), to_ref(a), to_ref(b), indptr,
                                         adapter, kScale, Stream{}),
                    "lora_bench", "the fused kernel declined ", n, " rows");
      } else {
        be.lora_matmul(to_ref(t), to_ref(x), to_ref(a), indptr, adapter, shrink, Stream{});
        be.lora_matmul(to_ref(y), to_ref(t), to_ref(b), indptr, adapter, expand, Stream{});
        be.matmul_add(to_ref(y), to_ref(x), to_ref(w.transpose(0, 1)), Stream{});
      }
    });
    state.counters["base_us"] = base * 1e6;
    state.counters["overhead_%"] = sec > 0 ? 100.0 * (sec - base) / base : 0.0;
  });
}

// Times lora_delta for `seg` over `adapters` stacked adapters; x has seg.rows() rows.
void run_delta(benchmark::State& state, int64_t adapters, const LoraSegments& seg) {
  NoGradGuard no_grad;
  const int64_t n = seg.rows();
  const Tensor x = normal({n, kHidden}, 1, 1.0);
  const Tensor a = normal({adapters, kRank, kHidden}, 2, 0.02), b = normal({adapters, kHidden, kRank}, 3, 0.02);
  const Tensor w = normal({kHidden, kHidden}, 4, 0.02);
  Tensor y;
  const double base = mean_seconds([&] { y = linear(x, w); }, 20);
  const double sec = time_loop(state, [&] { y = lora_delta(x, a, b, kScale, seg); });
  const double bytes = static_cast<double>(x.nbytes() + a.nbytes() + b.nbytes()) + static_cast<double>(n * kHidden * 2);
  report_bandwidth(state, bytes, sec);
  state.counters["base_us"] = base * 1e6;
  state.counters["vs_linear_%"] = base > 0 ? 100.0 * sec / base : 0.0;
}

// args: distinct adapters over 2048 rows, in equal segments
void BM_sgmv_r8(benchmark::State& state) {
  guarded(state, [&] {
    const int64_t adapters = state.range(0), rows = 2048, per = rows / adapters;
    std::vector<int64_t> indptr, ids;
    for (int64_t s = 0; s < adapters; ++s) {
      indptr.push_back(s * per);
      ids.push_back(s);
    }
    indptr.push_back(rows);
    run_delta(state, adapters, LoraSegments::by_segment(indptr, ids, cuda()));
  });
}

// args: rows, each with its own adapter
void BM_bgmv_r8(benchmark::State& state) {
  guarded(state, [&] {
    const int64_t rows = state.range(0);
    std::vector<int64_t> ids;
    for (int64_t r = 0; r < rows; ++r) ids.push_back(r);
    run_delta(state, rows, LoraSegments::by_row(ids, cuda()));
  });
}

BENCHMARK(BM_qkvo_lora_r8)->ArgName("tokens")->Arg(1)->Arg(16)->Arg(2048)->UseManualTime()
    ->Unit(benchmark::kMicrosecond)->MinTime(0.05);
BENCHMARK(BM_decode_lora_path)->ArgNames({"tokens", "path"})->ArgsProduct({{1, 4}, {0, 1}})->UseManualTime()
    ->Unit(benchmark::kMicrosecond)->MinTime(0.05);
BENCHMARK(BM_sgmv_r8)->ArgName("adapters")->Arg(1)->Arg(8)->Arg(64)->UseManualTime()
    ->Unit(benchmark::kMicrosecond)->MinTime(0.05);
BENCHMARK(BM_bgmv_r8)->ArgName("rows")->Arg(16)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.05);

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) { return lloco::bench::bench_main(argc, argv); }
