// LLaMA-2-7B-shaped inference on the CPU backend: random weights (bf16 by default) drawn on the host,
// one prefill pass over a prompt and greedy decoding with the KV cache, batch 1. The decode floor is
// the bytes one step must read (every parameter but the embedding table, plus the cached K and V)
// over the host's read bandwidth measured in the same run (bench/cpu_bandwidth.h).
//   llama_cpu_bench [--layers N] [--context C] [--steps S] [--dtype bf16|f16|f32] [--json PATH]
// --layers keeps the 7B layer shapes with fewer layers (32 = the whole model, 13.5 GB in bf16).
// Prints progress and a table; --json writes the numbers atomically.
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "bench/cpu_bandwidth.h"
#include "bench/random_tokens.h"
#include "core/atomic_file.h"
#include "core/autograd.h"
#include "core/ops.h"
#include "models/generate.h"
#include "models/kv_cache.h"
#include "models/llama.h"

namespace lloco::bench {
namespace {

using models::LlamaConfig;
using models::LlamaModel;

struct Options {
  int64_t layers = 32, context = 512, steps = 16;
  DType dtype = DType::BF16;
  std::string json;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const Options& o) {
  LlamaConfig config = LlamaConfig::llama2_7b();
  config.num_layers = o.layers;
  std::printf("llama_cpu_bench: LLaMA-2-7B layer shapes, %lld layers, %s random weights, batch 1, %d threads\n",
              static_cast<long long>(o.layers), dtype_name(o.dtype), omp_get_max_threads());
  const double read_gbps = cpu_read_gbps();
  std::printf("same-run baseline: host read bandwidth %.1f GB/s (2 GB buffer)\n", read_gbps);
  std::fflush(stdout);

  auto t0 = std::chrono::steady_clock::now();
  const LlamaModel m = LlamaModel::random(config, 7, o.dtype, cpu());
  double weight_bytes = 0, matmul_params = 0;
  for (const auto& [name, t] : m.named_parameters()) {
    if (name == "model.embed_tokens.weight") continue;  // one row read per token
    weight_bytes += static_cast<double>(t.nbytes());
    if (t.dim() == 2) matmul_params += static_cast<double>(t.numel());
  }
  const double kv_bytes_per_token =
      2.0 * config.num_layers * config.num_kv_heads * config.head_dim() * static_cast<double>(dtype_size(o.dtype));
  std::printf("weights drawn in %.1f s: %.3f B parameters, %.2f GB read per decode step\n", seconds_since(t0),
              static_cast<double>(m.num_parameters()) / 1e9, weight_bytes / 1e9);
  std::fflush(stdout);

  // generate() from a prompt of C - S tokens with S new tokens, so the cache grows to C.
  const int64_t prompt_len = o.context - o.steps;
  models::GenerateOptions gen;
  gen.eos_ids = {-1};  // never stop early
  gen.max_new_tokens = o.steps;
  int64_t done = 0;
  const auto decode_t0 = std::chrono::steady_clock::now();
  const models::GenerateResult g =
      models::generate(m, {random_tokens(prompt_len, config.vocab_size, 3)}, gen, nullptr, [&](int64_t, int32_t) {
        const double s = seconds_since(decode_t0);
        ++done;
        std::printf("\rtoken %lld/%lld (%s), %.2f s elapsed", static_cast<long long>(done),
                    static_cast<long long>(o.steps), done == 1 ? "prefill" : "decode", s);
        std::fflush(stdout);
      });
  std::printf("\n");
  // generate() prefills the prompt in one forward pass (logits of the last position), then decodes.
  const double prefill_s = g.prefill_seconds;
  const double prefill_flop = 2.0 * matmul_params * prompt_len +
                              2.0 * config.num_layers * static_cast<double>(prompt_len) * prompt_len * config.hidden_size;
  const double decode_ms = 1e3 * g.decode_seconds / static_cast<double>(o.steps - 1);
  const double mean_cached = static_cast<double>(prompt_len) + o.steps / 2.0;
  const double floor_w_ms = 1e3 * weight_bytes / (read_gbps * 1e9);
  const double floor_ms = 1e3 * (weight_bytes + kv_bytes_per_token * mean_cached) / (read_gbps * 1e9);

  std::printf("\n%7s %7s %11s %10s %10s | %6s %10s %10s %13s %6s\n", "layers", "prompt", "prefill s", "tokens/s",
              "GFLOP/s", "steps", "ms/token", "floor (W)", "floor (W+KV)", "frac");
  std::printf("%7lld %7lld %11.2f %10.1f %10.1f | %6lld %10.1f %10.1f %13.1f %6.2f\n",
              static_cast<long long>(o.layers), static_cast<long long>(prompt_len), prefill_s, prompt_len / prefill_s,
              prefill_flop / prefill_s / 1e9, static_cast<long long>(o.steps), decode_ms, floor_w_ms, floor_ms,
              floor_ms / decode_ms);
  std::printf("frac: decode floor (W+KV at the same-run read bandwidth) / measured ms per token\n");

  if (!o.json.empty()) {
    std::ostringstream js;
    js << "{\n  \"model\": \"llama2-7b shape\", \"layers\": " << o.layers << ", \"dtype\": \"" << dtype_name(o.dtype)
       << "\", \"threads\": " << omp_get_max_threads() << ",\n  \"parameters\": " << m.num_parameters()
       << ", \"weight_bytes\": " << weight_bytes << ", \"kv_bytes_per_token\": " << kv_bytes_per_token
       << ",\n  \"read_GB/s\": " << read_gbps << ",\n  \"prefill_tokens\": " << prompt_len
       << ", \"prefill_s\": " << prefill_s << ", \"prefill_GFLOP/s\": " << prefill_flop / prefill_s / 1e9
       << ",\n  \"decode_steps\": " << o.steps << ", \"decode_ms_per_token\": " << decode_ms
       << ", \"floor_weights_ms\": " << floor_w_ms << ", \"floor_weights_kv_ms\": " << floor_ms << "\n}\n";
    AtomicFile f(o.json);
    f.write(js.str());
    f.commit();
  }
  return 0;
}

}  // namespace
}  // namespace lloco::bench

int main(int argc, char** argv) {
  lloco::bench::Options o;
  auto usage = [&] {
    std::fprintf(stderr, "usage: %s [--layers N] [--context C] [--steps S (>= 2)] [--dtype bf16|f16|f32] [--json PATH]\n",
                 argv[0]);
    return 2;
  };
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (i + 1 >= argc) return usage();
      const std::string v = argv[++i];
      if (a == "--layers") o.layers = std::stoll(v);
      else if (a == "--context") o.context = std::stoll(v);
      else if (a == "--steps") o.steps = std::stoll(v);
      else if (a == "--json") o.json = v;
      else if (a == "--dtype" && v == "bf16") o.dtype = lloco::DType::BF16;
      else if (a == "--dtype" && v == "f16") o.dtype = lloco::DType::F16;
      else if (a == "--dtype" && v == "f32") o.dtype = lloco::DType::F32;
      else return usage();
    }
    if (o.steps < 2 || o.layers < 1 || o.context <= o.steps) {
      std::fprintf(stderr, "llama_cpu_bench: need --steps >= 2 (got %lld), --layers >= 1 (got %lld), --context > steps (got %lld)\n",
                   static_cast<long long>(o.steps), static_cast<long long>(o.layers), static_cast<long long>(o.context));
      return 2;
    }
    return lloco::bench::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama_cpu_bench failed: %s\n", e.what());
    return 1;
  }
}
