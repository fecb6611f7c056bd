// Memory-bound kernels of the CUDA backend in GB/s (bytes that must move: each input read once,
// each output written once) and as a fraction of a device-to-device cudaMemcpy from the same run.
// Working sets are far above the 50 MB L2, so no flush is needed between iterations.
#include "bench/cuda/bench_util.h"

namespace lloco::bench {
namespace {

constexpr int64_t kTokens = 16384;  // rows of activations: e.g. 8 sequences of 2048 tokens

void BM_memcpy_d2d(benchmark::State& state) {
  DevTensor a({int64_t{1} << 29}, DType::BF16), b({int64_t{1} << 29}, DType::BF16);
  double s = time_loop(state, [&] { gpu().copy(b.ref, a.ref, Stream{}); });
  report_bandwidth(state, 2.0 * a.bytes, s);
}

void BM_add_bf16(benchmark::State& state) {
  DevTensor a({kTokens, 4096}, DType::BF16), b({kTokens, 4096}, DType::BF16), c({kTokens, 4096}, DType::BF16);
  double s = time_loop(state, [&] { gpu().binary(BinaryOp::Add, c.ref, a.ref, b.ref, Stream{}); });
  report_bandwidth(state, 3.0 * a.bytes, s);
}

// Fused SwiGLU forward (the MLP activation): read gate and up, write y.
void BM_swiglu_bf16(benchmark::State& state) {
  DevTensor g({kTokens / 2, 11008}, DType::BF16), u({kTokens / 2, 11008}, DType::BF16);
  DevTensor y({kTokens / 2, 11008}, DType::BF16);
  double s = time_loop(state, [&] { gpu().swiglu_fwd(y.ref, g.ref, u.ref, Stream{}); });
  report_bandwidth(state, 3.0 * g.bytes, s);
}

// The same SwiGLU unfused, for comparison: silu(gate) (unary), then * up (binary), 5 tensors of traffic.
void BM_swiglu_unfused_bf16(benchmark::State& state) {
  DevTensor g({kTokens / 2, 11008}, DType::BF16), u({kTokens / 2, 11008}, DType::BF16);
  DevTensor t({kTokens / 2, 11008}, DType::BF16), y({kTokens / 2, 11008}, DType::BF16);
  double s = time_loop(state, [&] {
    gpu().unary(UnaryOp::Silu, t.ref, g.ref, 0, Stream{});
    gpu().binary(BinaryOp::Mul, y.ref, t.ref, u.ref, Stream{});
  });
  report_bandwidth(state, 5.0 * g.bytes, s);
}

void BM_cast_bf16_to_f32(benchmark::State& state) {
  DevTensor a({kTokens, 4096}, DType::BF16), b({kTokens, 4096}, DType::F32);
  double s = time_loop(state, [&] { gpu().copy(b.ref, a.ref, Stream{}); });
  report_bandwidth(state, static_cast<double>(a.bytes + b.bytes), s);
}

// [B, T, H, D] -> [B, H, T, D] contiguous (the head transpose before attention).
void BM_transpose_copy_bf16(benchmark::State& state) {
  const int64_t B = 8, T = 2048, H = 32, D = 128;
  DevTensor a({B, T, H, D}, DType::BF16), b({B, H, T, D}, DType::BF16);
  TensorRef view = a.view({B, H, T, D}, {T * H * D, D, H * D, 1});
  double s = time_loop(state, [&] { gpu().copy(b.ref, view, Stream{}); });
  report_bandwidth(state, 2.0 * a.bytes, s);
}

void BM_rms_norm_fwd_bf16(benchmark::State& state) {
  DevTensor x({kTokens, 4096}, DType::BF16), w({4096}, DType::BF16), y({kTokens, 4096}, DType::BF16);
  DevTensor r({kTokens}, DType::F32);
  double s = time_loop(state, [&] { gpu().rms_norm_fwd(y.ref, r.ref, x.ref, w.ref, 1e-5, Stream{}); });
  report_bandwidth(state, 2.0 * x.bytes, s);
}

void BM_rms_norm_bwd_bf16(benchmark::State& state) {
  DevTensor x({kTokens, 4096}, DType::BF16), w({4096}, DType::BF16), dy({kTokens, 4096}, DType::BF16);
  DevTensor dx({kTokens, 4096}, DType::BF16), dw({4096}, DType::BF16), r({kTokens}, DType::F32);
  gpu().rms_norm_fwd(dx.ref, r.ref, x.ref, w.ref, 1e-5, Stream{});
  double s = time_loop(state, [&] { gpu().rms_norm_bwd(dx.ref, dw.ref, dy.ref, x.ref, w.ref, r.ref, Stream{}); });
  report_bandwidth(state, 3.0 * x.bytes, s);
}

void BM_rope_bf16(benchmark::State& state) {
  const int64_t B = 8, H = 32, T = 2048, D = 128;
  DevTensor x({B, H, T, D}, DType::BF16), y({B, H, T, D}, DType::BF16);
  DevTensor c({1, T, D / 2}, DType::F32), sn({1, T, D / 2}, DType::F32);
  double s = time_loop(state, [&] {
    gpu().rope(y.ref, x.ref, c.ref, sn.ref, RopeStyle::HalfRotate, false, Stream{});
  });
  report_bandwidth(state, 2.0 * x.bytes, s);
}

void BM_cross_entropy_fwd_bf16(benchmark::State& state) {
  const int64_t N = 8192, V = 32000;
  DevTensor logits({N, V}, DType::BF16), targets({N}, DType::I64);
  DevTensor loss({N}, DType::F32), lse({N}, DType::F32);
  double s = time_loop(state, [&] {
    gpu().cross_entropy_fwd(loss.ref, lse.ref, logits.ref, targets.ref, -100, Stream{});
  });
  report_bandwidth(state, static_cast<double>(logits.bytes), s);
}

void BM_cross_entropy_bwd_bf16(benchmark::State& state) {
  const int64_t N = 8192, V = 32000;
  DevTensor logits({N, V}, DType::BF16), targets({N}, DType::I64), dlogits({N, V}, DType::BF16);
  DevTensor loss({N}, DType::F32), lse({N}, DType::F32), dloss({N}, DType::F32);
  gpu().cross_entropy_fwd(loss.ref, lse.ref, logits.ref, targets.ref, -100, Stream{});
  double s = time_loop(state, [&] {
    gpu().cross_entropy_bwd(dlogits.ref, dloss.ref, logits.ref, lse.ref, targets.ref, -100, Stream{});
  });
  report_bandwidth(state, 2.0 * logits.bytes, s);
}

void BM_softmax_f32(benchmark::State& state) {
  DevTensor a({32 * 2048, 2048}, DType::F32), b({32 * 2048, 2048}, DType::F32);
  double s = time_loop(state, [&] { gpu().softmax(b.ref, a.ref, 1, false, Stream{}); });
  report_bandwidth(state, 2.0 * a.bytes, s);
}

void BM_adamw_f32(benchmark::State& state) {
  const int64_t n = int64_t{64} << 20;
  DevTensor p({n}, DType::F32), g({n}, DType::F32), m({n}, DType::F32), v({n}, DType::F32);
  gpu().fill(v.ref, 0.01, Stream{});
  AdamWParams hp{1e-4, 0.9, 0.999, 1e-8, 0.0, 0.1, 0.001};
  double s = time_loop(state, [&] { gpu().adamw_step(p.ref, g.ref, m.ref, v.ref, hp, Stream{}); });
  report_bandwidth(state, 7.0 * p.bytes, s);  // read p, g, m, v; write p, m, v
}

#define LLOCO_MEM_BENCH(fn) BENCHMARK(fn)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1)
LLOCO_MEM_BENCH(BM_memcpy_d2d);
LLOCO_MEM_BENCH(BM_add_bf16);
LLOCO_MEM_BENCH(BM_swiglu_bf16);
LLOCO_MEM_BENCH(BM_swiglu_unfused_bf16);
LLOCO_MEM_BENCH(BM_cast_bf16_to_f32);
LLOCO_MEM_BENCH(BM_transpose_copy_bf16);
LLOCO_MEM_BENCH(BM_rms_norm_fwd_bf16);
LLOCO_MEM_BENCH(BM_rms_norm_bwd_bf16);
LLOCO_MEM_BENCH(BM_rope_bf16);
LLOCO_MEM_BENCH(BM_cross_entropy_fwd_bf16);
LLOCO_MEM_BENCH(BM_cross_entropy_bwd_bf16);
LLOCO_MEM_BENCH(BM_softmax_f32);
LLOCO_MEM_BENCH(BM_adamw_f32);

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) { return lloco::bench::bench_main(argc, argv); }
