// Attention through the public op `attention` on CUDA tensors (bf16), the shapes of the
// flash-attention benchmark sweep and of LLaMA decoding.
//
// Sweep (Dao-AILab benchmark_flash_attention.py): b * s = 16k tokens, s = 512 .. 16k, h * d = 2048
// (hd 64 -> 32 heads, hd 128 -> 16 heads), causal and not. q/k/v are stored [B, S, H, D] and passed
// as [B, H, S, D] transposed views, as the LLaMA layer passes them. TFLOP/s uses the flash-attention
// convention: fwd = 4 * b * s^2 * h * d, halved when causal; fwd+bwd = 3.5x fwd (bwd = 2.5x).
//
// Decode: one query row per sequence against a KV cache of Tk = 4k / 32k / 128k positions, 32 query
// heads of dim 128, 32 or 8 kv heads (MHA, GQA 4), batch 1 and 8. GB/s counts the K and V bytes,
// next to a same-run device-to-device cudaMemcpy (frac_memcpy).
// Each benchmark's label names the kernel family the op dispatched to (cuda/attention_dispatch.h)
// and, for "flash", its kernels: path=flash(wgmma) or path=flash(mma.sync); LLOCO_FLASH_KERNEL picks.
//
// Kernels: the flash forward and backward launchers called directly on the sweep shapes with each
// kernel forced (forward: mma.sync with 64- / 128-row query tiles, wgmma; backward: mma.sync, wgmma)
// and with their own choice, so one run shows which kernel the device prefers and whether the
// automatic choice takes it.
#include <cmath>
#include <string>
#include <vector>

#include "bench/cuda/bench_util.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "cuda/attention_dispatch.h"
#include "cuda/cuda.h"
#include "cuda/kernels/flash.h"

namespace lloco::bench {
namespace {

constexpr int64_t kSweepTokens = 16384;
constexpr int64_t kSweepHidden = 2048;  // h * d

double sweep_fwd_flops(int64_t b, int64_t s, int64_t h, int64_t d, bool causal) {
  const double f = 4.0 * static_cast<double>(b) * static_cast<double>(s) * static_cast<double>(s) * h * d;
  return causal ? f / 2 : f;
}

// [B, H, S, D] view over a [B, S, H, D] N(0, 1) bf16 tensor on the GPU.
Tensor bhsd(int64_t b, int64_t s, int64_t h, int64_t d, uint64_t seed) {
  return randn({b, s, h, d}, seed, DType::BF16, cuda()).transpose(1, 2);
}

std::string path_label(const Tensor& q, const Tensor& k, bool backward) {
  const char* fwd = attention_path(to_ref(q), to_ref(k), TensorRef{}, false);
  std::string label = std::string("path=") + fwd;
  if (std::string(fwd) == "flash") label += std::string("(") + flash_kernel_name() + ")";
  if (backward) label += std::string("+bwd:") + attention_path(to_ref(q), to_ref(k), TensorRef{}, true);
  return label;
}

struct SweepShape {
  int64_t b, s, h, d;
  bool causal;
};

SweepShape sweep_shape(const benchmark::State& state) {
  const int64_t d = state.range(0), s = state.range(2);
  return {kSweepTokens / s, s, kSweepHidden / d, d, state.range(1) != 0};
}

// args: head dim, causal, seqlen
void BM_attention_fwd(benchmark::State& state) {
  guarded(state, [&] {
    NoGradGuard no_grad;
    const SweepShape p = sweep_shape(state);
    const Tensor q = bhsd(p.b, p.s, p.h, p.d, 1), k = bhsd(p.b, p.s, p.h, p.d, 2), v = bhsd(p.b, p.s, p.h, p.d, 3);
    AttentionOptions opts;
    opts.causal = p.causal;
    state.SetLabel(path_label(q, k, false));
    Tensor out;
    const double sec = time_loop(state, [&] { out = attention(q, k, v, opts); });
    report_flops(state, sweep_fwd_flops(p.b, p.s, p.h, p.d, p.causal), sec);
  });
}

// Forward, then the gradients of q, k and v for a random dout (autograd_grad: no accumulation
// into .grad, so each iteration does the same work).
void BM_attention_fwd_bwd(benchmark::State& state) {
  guarded(state, [&] {
    const SweepShape p = sweep_shape(state);
    Tensor q = bhsd(p.b, p.s, p.h, p.d, 1), k = bhsd(p.b, p.s, p.h, p.d, 2), v = bhsd(p.b, p.s, p.h, p.d, 3);
    q.requires_grad_();
    k.requires_grad_();
    v.requires_grad_();
    const Tensor dout = bhsd(p.b, p.s, p.h, p.d, 4);
    AttentionOptions opts;
    opts.causal = p.causal;
    state.SetLabel(path_label(q, k, true));
    std::vector<Tensor> grads;
    const double sec = time_loop(state, [&] {
      const Tensor out = attention(q, k, v, opts);
      grads = autograd_grad(out, dout, {q, k, v});
    });
    report_flops(state, 3.5 * sweep_fwd_flops(p.b, p.s, p.h, p.d, p.causal), sec);
  });
}

void sweep_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"hd", "causal", "seqlen"});
  for (int64_t d : {64, 128})
    for (int64_t causal : {0, 1})
      for (int64_t s = 512; s <= kSweepTokens; s *= 2) b->Args({d, causal, s});
}

// [B, S, H, D] bf16 q/k/v/o/dout with lse, and for the backward dq/dk/dv.
struct SweepTensors {
  Tensor q, k, v, o, lse, dout, dq, dk, dv;
  explicit SweepTensors(const SweepShape& p)
      : q(randn({p.b, p.s, p.h, p.d}, 1, DType::BF16, cuda())),
        k(randn({p.b, p.s, p.h, p.d}, 2, DType::BF16, cuda())),
        v(randn({p.b, p.s, p.h, p.d}, 3, DType::BF16, cuda())),
        o(empty({p.b, p.s, p.h, p.d}, DType::BF16, cuda())),
        lse(empty({p.b, p.h, p.s}, DType::F32, cuda())) {}
  void add_backward(const SweepShape& p) {
    dout = randn({p.b, p.s, p.h, p.d}, 4, DType::BF16, cuda());
    dq = empty({p.b, p.s, p.h, p.d}, DType::BF16, cuda());
    dk = empty({p.b, p.s, p.h, p.d}, DType::BF16, cuda());
    dv = empty({p.b, p.s, p.h, p.d}, DType::BF16, cuda());
  }
};

cuda_kernels::FlashParams sweep_flash_params(const SweepShape& p, const SweepTensors& t) {
  cuda_kernels::FlashParams fp;
  fp.q = t.q.data_ptr();
  fp.k = t.k.data_ptr();
  fp.v = t.v.data_ptr();
  fp.o = t.o.data_ptr();
  const int64_t batch_stride = p.s * p.h * p.d, row_stride = p.h * p.d, head_stride = p.d;  // [B, S, H, D]
  fp.q_batch_stride = fp.k_batch_stride = fp.v_batch_stride = fp.o_batch_stride = batch_stride;
  fp.q_row_stride = fp.k_row_stride = fp.v_row_stride = fp.o_row_stride = row_stride;
  fp.q_head_stride = fp.k_head_stride = fp.v_head_stride = fp.o_head_stride = head_stride;
  fp.lse = static_cast<float*>(t.lse.data_ptr());
  fp.lse_batch_stride = p.h * p.s;
  fp.lse_head_stride = p.s;
  fp.batch = static_cast<int>(p.b);
  fp.heads_q = fp.heads_kv = static_cast<int>(p.h);
  fp.seqlen_q = fp.seqlen_k = static_cast<int>(p.s);
  fp.head_dim = static_cast<int>(p.d);
  fp.scale = 1.0f / std::sqrt(static_cast<float>(p.d));
  fp.scale_log2 = fp.scale * 1.4426950408889634f;
  fp.causal = p.causal;
  fp.is_bf16 = true;
  return fp;
}

// args: head dim, causal, seqlen, kernel: 0 = the launcher's choice, 1 / 2 = mma.sync with 64- /
// 128-row query tiles, 3 = wgmma with its default key tile (128), 4 = wgmma with 64-key tiles (hd128;
// hd64 takes 128 either way); 3 and 4 need sm_90a builds on compute capability 9.0. q/k/v/o
// [B, S, H, D] bf16.
void BM_flash_fwd_kernel(benchmark::State& state) {
  guarded(state, [&] {
    const SweepShape p = sweep_shape(state);
    const int kernel = static_cast<int>(state.range(3));
    if (kernel >= 3 && !cuda_kernels::flash_wgmma_available()) {
      state.SkipWithError("no wgmma forward: needs an sm_90a build on a compute capability 9.0 device");
      return;
    }
    const SweepTensors t(p);
    cuda_kernels::FlashParams fp = sweep_flash_params(p, t);
    fp.fwd_kernel = kernel == 0 ? 0 : (kernel >= 3 ? 2 : 1);
    fp.fwd_block_m = kernel == 1 ? 64 : (kernel == 2 ? 128 : 0);
    fp.fwd_block_n = kernel == 4 ? 64 : 0;
    const double sec = time_loop(state, [&] { cuda_kernels::launch_flash_fwd(fp, nullptr); });
    report_flops(state, sweep_fwd_flops(p.b, p.s, p.h, p.d, p.causal), sec);
  });
}

// args: head dim, causal, seqlen, kernel: 0 = the launcher's choice, 1 = mma.sync, 2 = wgmma. The
// backward alone (prep, main, convert) after one forward that fills out and lse; TFLOP/s counts
// 2.5x the forward's FLOPs.
void BM_flash_bwd_kernel(benchmark::State& state) {
  guarded(state, [&] {
    const SweepShape p = sweep_shape(state);
    const int kernel = static_cast<int>(state.range(3));
    if (kernel == 2 && !cuda_kernels::flash_wgmma_available()) {
      state.SkipWithError("no wgmma backward: needs an sm_90a build on a compute capability 9.0 device");
      return;
    }
    SweepTensors t(p);
    t.add_backward(p);
    cuda_kernels::FlashBwdParams bp;
    static_cast<cuda_kernels::FlashParams&>(bp) = sweep_flash_params(p, t);
    cuda_kernels::launch_flash_fwd(bp, nullptr);
    bp.dout = t.dout.data_ptr();
    bp.dq = t.dq.data_ptr();
    bp.dk = t.dk.data_ptr();
    bp.dv = t.dv.data_ptr();
    bp.do_batch_stride = bp.dq_batch_stride = bp.dk_batch_stride = bp.dv_batch_stride = bp.q_batch_stride;
    bp.do_row_stride = bp.dq_row_stride = bp.dk_row_stride = bp.dv_row_stride = bp.q_row_stride;
    bp.do_head_stride = bp.dq_head_stride = bp.dk_head_stride = bp.dv_head_stride = bp.q_head_stride;
    bp.total_q = bp.total_k = p.b * p.s;
    bp.bwd_kernel = kernel;
    const size_t ws_bytes = cuda_kernels::flash_bwd_workspace_bytes(bp);
    const Tensor ws = empty({static_cast<int64_t>((ws_bytes + 3) / 4)}, DType::F32, cuda());
    const double sec = time_loop(state, [&] { cuda_kernels::launch_flash_bwd(bp, ws.data_ptr(), nullptr); });
    report_flops(state, 2.5 * sweep_fwd_flops(p.b, p.s, p.h, p.d, p.causal), sec);
  });
}

void bwd_kernel_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"hd", "causal", "seqlen", "kernel"});
  for (int64_t d : {64, 128})
    for (int64_t causal : {0, 1})
      for (int64_t s : {1024, 4096, 16384})
        for (int64_t kernel : {1, 2, 0}) b->Args({d, causal, s, kernel});
}

void kernel_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"hd", "causal", "seqlen", "kernel"});
  for (int64_t d : {64, 128})
    for (int64_t causal : {0, 1})
      for (int64_t s : {1024, 4096, 16384})
        for (int64_t kernel : {1, 2, 4, 3, 0}) b->Args({d, causal, s, kernel});
}

// args: batch, kv heads, Tk. Causal as the model decodes (bottom-right aligned: the one query row
// sees every cached key).
void BM_attention_decode(benchmark::State& state) {
  guarded(state, [&] {
    NoGradGuard no_grad;
    const int64_t B = state.range(0), Hkv = state.range(1), Tk = state.range(2), Hq = 32, D = 128;
    const Tensor q = randn({B, Hq, 1, D}, 1, DType::BF16, cuda());
    const Tensor k = randn({B, Hkv, Tk, D}, 2, DType::BF16, cuda());
    const Tensor v = randn({B, Hkv, Tk, D}, 3, DType::BF16, cuda());
    AttentionOptions opts;
    opts.causal = true;
    state.SetLabel(path_label(q, k, false));
    Tensor out;
    const double sec = time_loop(state, [&] { out = attention(q, k, v, opts); });
    report_bandwidth(state, static_cast<double>(k.nbytes() + v.nbytes()), sec);
  });
  cuda_empty_cache();  // the next shape gets the multi-GB caches back
}

void decode_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"batch", "kv_heads", "tk"});
  for (int64_t batch : {1, 8})
    for (int64_t hkv : {32, 8})
      for (int64_t tk : {4096, 32768, 131072}) b->Args({batch, hkv, tk});
}

BENCHMARK(BM_attention_fwd)->Apply(sweep_args)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.05);
BENCHMARK(BM_attention_fwd_bwd)->Apply(sweep_args)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.05);
BENCHMARK(BM_flash_fwd_kernel)->Apply(kernel_args)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.05);
BENCHMARK(BM_flash_bwd_kernel)->Apply(bwd_kernel_args)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.05);
BENCHMARK(BM_attention_decode)->Apply(decode_args)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.05);

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) { return lloco::bench::bench_main(argc, argv); }
