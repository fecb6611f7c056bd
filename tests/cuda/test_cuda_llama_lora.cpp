// The LLaMA model with PEFT LoRA adapters attached (lora/) on the CUDA backend, against PEFT's own
// outputs (tests/fixtures/lora, gen_lora_fixtures.py): f32 logits, the answer-only loss and every
// LoRA gradient with the base frozen, one adapter-training step (clip + fused AdamW) against PEFT +
// torch AdamW, a batch mixing two adapters and the base model against the CPU, and bf16 weights
// tracking the f32 CPU forward (bound as in test_cuda_llama.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/safetensors.h"
#include "lora/adapter_training.h"
#include "lora/adapters.h"
#include "lora/peft_io.h"
#include "models/checkpoint.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/lora/peft_fixture.h"

using namespace lloco;
using namespace lloco::models;

namespace {

const std::string& kModelDir = lora::testing::kTinyModelDir;
const std::string& kAdapterDir = lora::testing::kTinyAdapterDir;
const std::string& kExpected = lora::testing::kTinyExpected;
using lora::testing::fixture_input;
constexpr double kF32Tol = 1e-4;       // relative to the largest reference value
constexpr double kBf16RelNorm = 2e-2;  // test_cuda_llama.cpp's bf16 bound

using CudaLlamaLora = cuda_test::CudaTest;

DiffStats diff(const Tensor& got, const Tensor& ref) {
  EXPECT_EQ(shape_str(got.shape()), shape_str(ref.shape()));
  return compare_tensors(got.to(cpu()).to(DType::F32), ref.to(cpu()).to(DType::F32));
}

}  // namespace

TEST_F(CudaLlamaLora, F32LogitsLossAndLoraGradientsMatchPeft) {
  LlamaModel m = load_hf_model(kModelDir).to(cuda());
  auto adapters =
      std::make_shared<lora::LoraAdapters>(lora::load_peft_adapters(m.config, {kAdapterDir}, DType::F32, cuda()));
  for (Tensor* p : adapters->parameters()) p->requires_grad_(true);
  lora::attach(m, adapters, {0, 0});
  const SafetensorsFile ex = load_safetensors(kExpected);
  const Tensor logits = m.forward(fixture_input(ex, cuda())).logits;
  const DiffStats d = diff(logits, ex.get("logits"));
  EXPECT_LE(d.max_abs, kF32Tol * d.max_ref);
  const Tensor loss = lora::answer_loss(logits, ex.get("labels").to(cuda()));
  const DiffStats dl = diff(loss, ex.get("loss"));
  EXPECT_LE(dl.max_abs, 1e-5 * dl.max_ref);
  loss.backward();
  const auto named = adapters->named_weights(0);
  const std::vector<Tensor*> params = adapters->parameters();  // a, b per (layer, target): named order
  ASSERT_EQ(named.size(), params.size());
  for (size_t i = 0; i < named.size(); ++i) {
    ASSERT_TRUE(params[i]->grad().defined()) << named[i].first;
    const DiffStats g = diff(params[i]->grad().select(0, 0), ex.get("grad." + named[i].first));
    EXPECT_LE(g.max_abs, kF32Tol * g.max_ref) << named[i].first;
  }
  for (const auto& [name, p] : m.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name << " is frozen";
}

TEST_F(CudaLlamaLora, MixedAdapterBatchMatchesCpu) {
  // Adapter 0: PEFT's, adapter 1: random; rows use [1, -1, 0, 1].
  LlamaModel cpu_model = load_hf_model(kModelDir);
  auto cpu_adapters =
      std::make_shared<lora::LoraAdapters>(lora::testing::fixture_and_random_adapter(cpu_model.config, 40));
  const std::vector<int64_t> assignment{1, -1, 0, 1};
  lora::attach(cpu_model, cpu_adapters, assignment);
  LlamaModel gpu_model = load_hf_model(kModelDir).to(cuda());
  lora::attach(gpu_model, std::make_shared<lora::LoraAdapters>(cpu_adapters->to(cuda())), assignment);
  std::vector<int64_t> ids;
  for (int64_t i = 0; i < 4 * 9; ++i) ids.push_back(3 + (i * 11) % 60);
  ForwardInput in;
  in.input_ids = from_vector<int64_t>(ids, {4, 9}, DType::I64);
  const Tensor want = cpu_model.forward(in).logits;
  in.input_ids = in.input_ids.to(cuda());
  const DiffStats d = diff(gpu_model.forward(in).logits, want);
  EXPECT_LE(d.max_abs, kF32Tol * d.max_ref);
}

TEST_F(CudaLlamaLora, Bf16TracksF32Cpu) {
  LlamaModel ref_model = load_hf_model(kModelDir);
  lora::attach(ref_model, std::make_shared<lora::LoraAdapters>(lora::load_peft_adapters(ref_model.config, {kAdapterDir})),
               {0, 0});
  LlamaModel bf = load_hf_model(kModelDir, {DType::BF16}).to(cuda());
  lora::attach(bf,
               std::make_shared<lora::LoraAdapters>(
                   lora::load_peft_adapters(bf.config, {kAdapterDir}, DType::BF16, cuda())),
               {0, 0});
  const SafetensorsFile ex = load_safetensors(kExpected);
  const Tensor ref = ref_model.forward(fixture_input(ex, lloco::cpu())).logits;
  ForwardInput in = fixture_input(ex, cuda());
  in.prefix_embeddings = in.prefix_embeddings.to(DType::BF16);
  const DiffStats d = diff(bf.forward(in).logits, ref);
  EXPECT_LE(std::sqrt(d.nmse), kBf16RelNorm);
  EXPECT_LE(d.max_abs, 0.05 * d.max_ref);
}

TEST_F(CudaLlamaLora, AdapterTrainingStepMatchesPeftAndTorchAdamW) {
  LlamaModel m = load_hf_model(kModelDir).to(cuda());
  auto adapters =
      std::make_shared<lora::LoraAdapters>(lora::load_peft_adapters(m.config, {kAdapterDir}, DType::F32, cuda()));
  const SafetensorsFile ex = load_safetensors(kExpected);
  const train::TrainResult r =
      lora::train_adapter(m, adapters, lora::testing::fixture_examples(ex), lora::testing::fixture_step_options());
  ASSERT_EQ(r.losses.size(), 1u);
  EXPECT_NEAR(r.losses[0], ex.get("loss").item(), 1e-5);
  for (const auto& [name, w] : adapters->named_weights(0)) {
    const DiffStats d = diff(w, ex.get("after_step." + name));
    EXPECT_LE(d.max_abs, 2e-6) << name;  // each weight moved by ~lr = 1e-2
  }
}
