// The LLaMA model on the CUDA backend: the HF-parity fixtures of tests/models/test_llama.cpp
// (tiny GQA model, transformers outputs) in f32 and bf16, greedy generation against transformers,
// cached decoding against a full forward, and a head-dim-128 model whose attention runs on the
// flash kernels (prefill and decode) checked against the f32 CPU forward.
//
// bf16 tolerance: bf16 keeps 8 significant bits, so each rounding of a weight or activation has a
// relative error of at most 2^-9 (~2e-3, ~1.1e-3 rms). A 2-layer forward rounds every weight once
// and every activation ~15 times in sequence (norms, projections, RoPE, attention, SwiGLU,
// residuals); independent rounding errors add in quadrature to a relative norm error of about
// 1.1e-3 * sqrt(30) ~ 6e-3 on the logits. The CPU bf16 path measures 5.4e-3 / 4.9e-3 on the two
// fixture inputs and 7.2e-3 on the head-dim-128 model below. The bound, 2e-2, leaves ~3x for
// another summation order, while a single wrong mask element is far above it (hiding the first of
// 640 keys moves the head-dim-128 model's f32 logits by 0.19). The max-abs check repeats the CPU
// bf16 test's bound (0.05 * max |logit|).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "models/generate.h"
#include "models/kv_cache.h"
#include "models/llama.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/models/hf_fixture.h"

using namespace lloco;
using namespace lloco::models;
using namespace lloco::models::testing;

namespace {

constexpr double kF32Tol = 1e-4;       // the CPU parity bound of test_llama.cpp
constexpr double kBf16RelNorm = 2e-2;  // see the file comment

using CudaLlama = cuda_test::CudaTest;

DiffStats diff(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(shape_str(got.shape()), shape_str(ref.shape()));
  return compare_tensors(got.to(cpu()).to(DType::F32), ref.to(cpu()).to(DType::F32));
}

// The fixture's two inputs: ids alone, or the LLoCO case (prefix embeddings before the ids).
ForwardInput fixture_input(const SafetensorsFile& ex, bool prefix, Device dev) {
  ForwardInput in;
  in.input_ids = ex.get("ids").to(dev);
  if (prefix) in.prefix_embeddings = ex.get("prefix").to(dev);
  in.output_hidden = true;
  return in;
}

}  // namespace

TEST_F(CudaLlama, F32LogitsAndHiddenMatchTransformers) {
  const LlamaModel m = load_hf_model(kTinyModelDir).to(cuda());
  const SafetensorsFile ex = load_safetensors(kExpectedOutputs);
  const ForwardOutput a = m.forward(fixture_input(ex, false, cuda()));
  ASSERT_TRUE(a.logits.device() == cuda()) << a.logits.device().str();
  const double dl = diff(a.logits, ex.get("logits_ids")).max_abs, dh = diff(a.hidden, ex.get("hidden_ids")).max_abs;
  EXPECT_LT(dl, kF32Tol);
  EXPECT_LT(dh, kF32Tol);
  const ForwardOutput b = m.forward(fixture_input(ex, true, cuda()));
  const double pl = diff(b.logits, ex.get("logits_embeds")).max_abs;
  const double ph = diff(b.hidden, ex.get("hidden_embeds")).max_abs;
  EXPECT_LT(pl, kF32Tol);
  EXPECT_LT(ph, kF32Tol);
  std::printf("cuda f32 parity: ids max|dlogits| %.3g |dhidden| %.3g; prefix+ids %.3g / %.3g\n", dl, dh, pl, ph);
}

TEST_F(CudaLlama, Bf16LogitsTrackF32Cpu) {
  const SafetensorsFile ex = load_safetensors(kExpectedOutputs);
  const LlamaModel f32_cpu = load_hf_model(kTinyModelDir);
  const LlamaModel bf_cpu = load_hf_model(kTinyModelDir, {DType::BF16});
  const LlamaModel bf_gpu = bf_cpu.to(cuda());
  for (const bool prefix : {false, true}) {
    const Tensor ref = f32_cpu.forward(fixture_input(ex, prefix, lloco::cpu())).logits;
    const Tensor got = bf_gpu.forward(fixture_input(ex, prefix, cuda())).logits;
    EXPECT_EQ(got.dtype(), DType::BF16);
    const DiffStats d = diff(got, ref);
    // The CPU bf16 forward's error, printed for comparison (same roundings, other summation order).
    const DiffStats c = diff(bf_cpu.forward(fixture_input(ex, prefix, lloco::cpu())).logits, ref);
    EXPECT_LT(std::sqrt(d.nmse), kBf16RelNorm) << "prefix " << prefix;
    EXPECT_LT(d.max_abs, 0.05 * d.max_ref) << "prefix " << prefix << " max_ref " << d.max_ref;
    std::printf("bf16 vs f32 (prefix %d): cuda rel-norm %.3g max|d| %.3g; cpu bf16 rel-norm %.3g (max|ref| %.3g)\n",
                prefix, std::sqrt(d.nmse), d.max_abs, std::sqrt(c.nmse), d.max_ref);
  }
}

TEST_F(CudaLlama, F32GreedyGenerationMatchesTransformers) {
  expect_greedy_matches_transformers(load_hf_model(kTinyModelDir).to(cuda()));
}

TEST_F(CudaLlama, F32LeftPaddedBatchGenerationMatchesTransformers) {
  expect_left_padded_batch_matches_transformers(load_hf_model(kTinyModelDir).to(cuda()));
}

namespace {

// Prefill of `prefill` tokens, then one cached step per remaining token; returns the logits of
// every position [1, T, V] (on the model's device).
Tensor cached_logits(const LlamaModel& m, const Tensor& ids, int64_t prefill) {
  NoGradGuard no_grad;
  const int64_t T = ids.size(1);
  KVCache cache(m.config.num_layers);
  ForwardInput first;
  first.input_ids = ids.narrow(1, 0, prefill);
  std::vector<Tensor> parts = {m.forward(first, &cache).logits};
  for (int64_t t = prefill; t < T; ++t) {
    ForwardInput step;
    step.input_ids = ids.narrow(1, t, 1);
    parts.push_back(m.forward(step, &cache).logits);
  }
  EXPECT_EQ(cache.length(), T);
  return concat(parts, 1);
}

Tensor random_ids(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = 3 + static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab - 3));
  return from_vector<int64_t>(v, {1, n}, DType::I64);
}

}  // namespace

TEST_F(CudaLlama, F32CachedDecodeEqualsFullForward) {
  const LlamaModel m = load_hf_model(kTinyModelDir).to(cuda());
  const Tensor ids = random_ids(24, m.config.vocab_size, 5).to(cuda());
  NoGradGuard no_grad;
  ForwardInput full;
  full.input_ids = ids;
  const Tensor ref = m.forward(full).logits;
  const DiffStats d = diff(cached_logits(m, ids, 5), ref);
  // f32 sums in other orders (cuBLAS picks other GEMM kernels for 1 row than for 24; one query row
  // against the cache vs a causal block): 1e-5 of the logit scale, ~80 f32 ulps.
  EXPECT_LT(d.max_abs, 1e-5 * d.max_ref) << "max_ref " << d.max_ref;
}

// Head dim 128 with GQA 2 (the shapes the tensor-core kernels take): bf16 on the GPU, one forward
// over 640 positions (flash prefill), and a prefill of 560 (not a tile multiple) followed by 80
// cached steps against 561..640 keys (>= 512: the split-KV decode kernel), both against the f32
// CPU forward of the same weights.
TEST_F(CudaLlama, Bf16HeadDim128PrefillAndDecodeTrackF32Cpu) {
  LlamaConfig c;
  c.vocab_size = 96;
  c.hidden_size = 256;
  c.intermediate_size = 512;
  c.num_layers = 2;
  c.num_heads = 2;
  c.num_kv_heads = 1;
  c.max_position_embeddings = 1024;
  const LlamaModel f32_cpu = LlamaModel::random(c, 11);
  const LlamaModel bf_gpu = f32_cpu.to(DType::BF16).to(cuda());
  const Tensor ids = random_ids(640, c.vocab_size, 6);
  NoGradGuard no_grad;
  ForwardInput full;
  full.input_ids = ids;
  const Tensor ref = f32_cpu.forward(full).logits;
  full.input_ids = ids.to(cuda());
  const DiffStats whole = diff(bf_gpu.forward(full).logits, ref);
  const DiffStats cached = diff(cached_logits(bf_gpu, ids.to(cuda()), 560), ref);
  EXPECT_LT(std::sqrt(whole.nmse), kBf16RelNorm);
  EXPECT_LT(std::sqrt(cached.nmse), kBf16RelNorm);
  std::printf("hd128 bf16 vs f32 cpu: full forward rel-norm %.3g, prefill + decode rel-norm %.3g\n",
              std::sqrt(whole.nmse), std::sqrt(cached.nmse));
}
