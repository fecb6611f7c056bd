// End-to-end LLaMA-2-7B-shaped inference on CUDA (issue #4): bf16 random weights created directly
// on the GPU, prefill of a whole context and greedy decoding with the KV cache, batch 1.
//   llama_bench [--json PATH] [--steps N]
// For each context C (4096, then 1024):
//   prefill: one forward over C tokens with logits for every position (as the FLOP count assumes),
//     mean of 3 timed runs after a warm-up; TFLOP/s = (2 * matmul params * C + causal attention
//     2 * layers * C^2 * hidden) / time, next to a same-run 8192^3 cuBLAS GEMM.
//   decode: generate() with a prompt of C - N tokens and N new tokens (greedy, never stopping), so
//     the cache grows to C; ms/token = decode seconds / (N - 1) forwards, host sampling included.
//     Floor = bytes one step must read / same-run device-to-device cudaMemcpy bandwidth: the weights
//     (every parameter but the embedding table, of which one row is read) plus the K and V of the
//     mean cached length.
// Prints a table and writes the numbers as JSON. Exits 0 with a notice when no GPU is present.
#include <cuda_runtime.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/cuda/bench_util.h"
#include "bench/random_tokens.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "cuda/common.h"
#include "cuda/cuda.h"
#include "cuda/stream.h"
#include "models/generate.h"
#include "models/kv_cache.h"
#include "models/llama.h"

namespace lloco::bench {
namespace {

using models::LlamaConfig;
using models::LlamaModel;

struct Result {
  int64_t context = 0;
  double prefill_ms = 0, prefill_tflop = 0;
  int64_t decode_steps = 0;
  double decode_ms = 0, floor_weights_ms = 0, floor_kv_ms = 0;
};

struct Sizes {
  double matmul_params = 0;   // every matrix multiplied per token: layers + lm_head
  double weight_bytes = 0;    // read per decode step (all parameters but the embedding table)
  double kv_bytes_per_token = 0;
};

Sizes sizes_of(const LlamaModel& m) {
  Sizes s;
  for (const auto& [name, t] : m.named_parameters()) {
    if (name == "model.embed_tokens.weight") continue;
    s.weight_bytes += static_cast<double>(t.nbytes());
    if (t.dim() == 2) s.matmul_params += static_cast<double>(t.numel());
  }
  const LlamaConfig& c = m.config;
  s.kv_bytes_per_token = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim() * dtype_size(c.dtype);
  return s;
}

double prefill_ms(const LlamaModel& m, const std::vector<int32_t>& prompt) {
  NoGradGuard no_grad;
  const int64_t n = static_cast<int64_t>(prompt.size());
  models::ForwardInput in;
  in.input_ids = from_vector<int32_t>(prompt, {1, n}, DType::I64, cuda());
  auto run = [&] {
    models::KVCache cache(m.config.num_layers);
    cache.reserve(n);
    return m.forward(in, &cache).logits;
  };
  run();  // warm-up: allocator blocks, GEMM plans
  CUDA_CHECK(cudaDeviceSynchronize());
  const int reps = 3;
  CudaEvent start(true), stop(true);
  start.record(nullptr);
  for (int i = 0; i < reps; ++i) run();
  stop.record(nullptr);
  stop.synchronize();
  return stop.elapsed_ms_since(start) / reps;
}

Result run_context(const LlamaModel& m, const Sizes& sz, int64_t context, int64_t steps) {
  const LlamaConfig& c = m.config;
  Result r;
  r.context = context;
  r.prefill_ms = prefill_ms(m, random_tokens(context, c.vocab_size, 1));
  r.prefill_tflop = (2.0 * sz.matmul_params * context +
                     2.0 * c.num_layers * static_cast<double>(context) * context * c.hidden_size) / 1e12;
  cuda_empty_cache();

  models::GenerateOptions opts;
  opts.eos_ids = {-1};  // never stop early
  opts.max_new_tokens = 4;
  // Warm-up of the decode path with more than 512 cached keys, so the split-KV kernel is loaded too.
  models::generate(m, {random_tokens(600, c.vocab_size, 2)}, opts);
  opts.max_new_tokens = steps;
  const models::GenerateResult g = models::generate(m, {random_tokens(context - steps, c.vocab_size, 3)}, opts);
  r.decode_steps = steps;
  r.decode_ms = 1e3 * g.decode_seconds / static_cast<double>(steps - 1);
  const double mean_cached = static_cast<double>(context - steps) + steps / 2.0;
  const double bw = memcpy_gbps() * 1e9;
  r.floor_weights_ms = 1e3 * sz.weight_bytes / bw;
  r.floor_kv_ms = 1e3 * (sz.weight_bytes + sz.kv_bytes_per_token * mean_cached) / bw;
  cuda_empty_cache();
  return r;
}

int run(const std::string& json_path, int64_t steps) {
  if (!cuda_backend_init()) {
    std::printf("no CUDA device: %d devices visible; llama_bench skipped\n", cuda_device_count());
    return 0;
  }
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const LlamaConfig config = LlamaConfig::llama2_7b();
  const LlamaModel m = LlamaModel::random(config, 7, DType::BF16, cuda());
  const Sizes sz = sizes_of(m);
  const double copy_gbps = memcpy_gbps(), gemm_tflops = square_gemm_tflops();
  std::printf("llama_bench: LLaMA-2-7B shape, bf16 random weights, batch 1, %s\n", prop.name);
  std::printf("parameters %.3f B, weight bytes read per decode step %.2f GB, KV %.3f MB/token\n",
              static_cast<double>(m.num_parameters()) / 1e9, sz.weight_bytes / 1e9, sz.kv_bytes_per_token / 1e6);
  std::printf("same-run baselines: device copy %.0f GB/s, 8192^3 cuBLAS bf16 GEMM %.1f TFLOP/s\n\n", copy_gbps,
              gemm_tflops);

  std::vector<Result> results;
  for (int64_t context : {4096, 1024}) results.push_back(run_context(m, sz, context, steps));

  std::printf("%8s %11s %10s %8s %6s | %6s %10s %11s %14s %6s\n", "context", "prefill ms", "tokens/s", "TFLOP/s",
              "frac", "steps", "ms/token", "floor (W)", "floor (W+KV)", "frac");
  for (const Result& r : results) {
    const double tflops = r.prefill_tflop / (r.prefill_ms * 1e-3);
    std::printf("%8lld %11.1f %10.0f %8.1f %6.2f | %6lld %10.2f %11.2f %14.2f %6.2f\n",
                static_cast<long long>(r.context), r.prefill_ms, r.context / (r.prefill_ms * 1e-3), tflops,
                tflops / gemm_tflops, static_cast<long long>(r.decode_steps), r.decode_ms, r.floor_weights_ms,
                r.floor_kv_ms, r.floor_kv_ms / r.decode_ms);
  }
  std::printf("frac: prefill TFLOP/s / square GEMM; decode floor (W+KV) / measured ms per token\n");

  if (!json_path.empty()) {
    FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) {
      std::fprintf(stderr, "llama_bench: cannot write %s: %s\n", json_path.c_str(), std::strerror(errno));
      return 1;
    }
    std::fprintf(f, "{\n  \"device\": \"%s\",\n  \"parameters\": %lld,\n  \"weight_bytes\": %.0f,\n", prop.name,
                 static_cast<long long>(m.num_parameters()), sz.weight_bytes);
    std::fprintf(f, "  \"kv_bytes_per_token\": %.0f,\n  \"memcpy_GB/s\": %.1f,\n  \"square_TFLOP/s\": %.1f,\n",
                 sz.kv_bytes_per_token, copy_gbps, gemm_tflops);
    std::fprintf(f, "  \"runs\": [\n");
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::fprintf(f,
                   "    {\"context\": %lld, \"prefill_ms\": %.3f, \"prefill_tokens_per_s\": %.1f, "
                   "\"prefill_TFLOP\": %.3f, \"prefill_TFLOP/s\": %.2f, \"decode_steps\": %lld, "
                   "\"decode_ms_per_token\": %.3f, \"floor_weights_ms\": %.3f, \"floor_weights_kv_ms\": %.3f}%s\n",
                   static_cast<long long>(r.context), r.prefill_ms, r.context / (r.prefill_ms * 1e-3),
                   r.prefill_tflop, r.prefill_tflop / (r.prefill_ms * 1e-3), static_cast<long long>(r.decode_steps),
                   r.decode_ms, r.floor_weights_ms, r.floor_kv_ms, i + 1 < results.size() ? "," : "");
    }
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  return 0;
}

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) {
  std::string json;
  int64_t steps = 64;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) json = argv[++i];
    else if (a == "--steps" && i + 1 < argc) steps = std::stoll(argv[++i]);
    else {
      std::fprintf(stderr, "usage: %s [--json PATH] [--steps N (>= 2)]\n", argv[0]);
      return 2;
    }
  }
  if (steps < 2) {
    std::fprintf(stderr, "llama_bench: --steps must be >= 2, got %lld\n", static_cast<long long>(steps));
    return 2;
  }
  try {
    return lloco::bench::run(json, steps);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_bench failed: %s\n", e.what());
    return 1;
  }
}
