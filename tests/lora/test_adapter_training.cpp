// LLoCO fine-tuning of one adapter (lora/adapter_training.h): the batch layout and answer-only labels
// of the PEFT fixture, one optimizer step equal to PEFT + torch AdamW (clipped), right padding that
// leaves every sequence's logits unchanged, the same step with every layer checkpointed, a loss that falls on a small synthetic group with the
// base frozen, and a stopped-and-resumed run (with LoRA dropout on) ending bit-identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/safetensors.h"
#include "lora/adapter_training.h"
#include "lora/peft_io.h"
#include "models/checkpoint.h"
#include "tests/lora/peft_fixture.h"

namespace lloco::lora {
namespace {

namespace fs = std::filesystem;

const std::string& kModelDir = testing::kTinyModelDir;
const std::string& kAdapterDir = testing::kTinyAdapterDir;
const std::string& kExpected = testing::kTinyExpected;
using testing::fixture_examples;

double max_abs_diff(const Tensor& a, const Tensor& b) { return compare_tensors(a, b).max_abs; }

TEST(AdapterTraining, BatchLayoutAndLossMatchTheFixture) {
  const models::LlamaModel model = models::load_hf_model(kModelDir);
  const SafetensorsFile ex = load_safetensors(kExpected);
  const std::vector<QaExample> examples = fixture_examples(ex);
  const QaBatch b = make_qa_batch(model, {&examples[0], &examples[1]});
  EXPECT_EQ(b.labels.to_vector<int64_t>(), ex.get("labels").to_vector<int64_t>());
  EXPECT_EQ(b.answer_tokens, 7);
  models::LlamaModel hooked = model;
  attach(hooked, std::make_shared<LoraAdapters>(load_peft_adapters(model.config, {kAdapterDir})), {0, 0});
  const Tensor loss = answer_loss(hooked.forward(b.input).logits, b.labels);
  EXPECT_NEAR(loss.item(), ex.get("loss").item(), 1e-5);
}

TEST(AdapterTraining, OneStepMatchesPeftAndTorchAdamW) {
  models::LlamaModel model = models::load_hf_model(kModelDir);
  const SafetensorsFile ex = load_safetensors(kExpected);
  auto adapters = std::make_shared<LoraAdapters>(load_peft_adapters(model.config, {kAdapterDir}));
  const train::TrainResult r = train_adapter(model, adapters, fixture_examples(ex), testing::fixture_step_options());
  ASSERT_EQ(r.losses.size(), 1u);
  EXPECT_NEAR(r.losses[0], ex.get("loss").item(), 1e-5);
  for (const auto& [name, w] : adapters->named_weights(0)) {
    const Tensor want = ex.get("after_step." + name);
    EXPECT_LE(max_abs_diff(w, want), 2e-6) << name;  // an Adam step moves each weight by ~lr = 1e-2
    EXPECT_GT(max_abs_diff(w, load_safetensors(kAdapterDir + "/adapter_model.safetensors").get(name)), 1e-3)
        << name << " did not move";
  }
}

// Every layer recomputed in backward: the frozen base gives no block input a gradient, so the LoRA
// weights the hook reads must still reach the optimizer, with PEFT's step.
TEST(AdapterTraining, GradientCheckpointingGivesPeftsStep) {
  models::LlamaModel model = models::load_hf_model(kModelDir);
  model.gradient_checkpointing = true;
  const SafetensorsFile ex = load_safetensors(kExpected);
  auto adapters = std::make_shared<LoraAdapters>(load_peft_adapters(model.config, {kAdapterDir}));
  const train::TrainResult r = train_adapter(model, adapters, fixture_examples(ex), testing::fixture_step_options());
  ASSERT_EQ(r.losses.size(), 1u);
  EXPECT_NEAR(r.losses[0], ex.get("loss").item(), 1e-5);
  for (const auto& [name, w] : adapters->named_weights(0))
    EXPECT_LE(max_abs_diff(w, ex.get("after_step." + name)), 2e-6) << name;
}

TEST(AdapterTraining, RightPaddingLeavesEachSequenceUnchanged) {
  models::LlamaModel model = models::load_hf_model(kModelDir);
  attach(model, std::make_shared<LoraAdapters>(load_peft_adapters(model.config, {kAdapterDir})), {0, 0});
  const SafetensorsFile ex = load_safetensors(kExpected);
  std::vector<QaExample> examples = fixture_examples(ex);
  examples[1].prefix = Tensor();  // 6 positions against row 0's 9
  const QaBatch both = make_qa_batch(model, {&examples[0], &examples[1]});
  EXPECT_FALSE(both.input.attention_mask.defined()) << "causal attention never looks at the right padding";
  const Tensor logits = model.forward(both.input).logits;
  attach(model, std::make_shared<LoraAdapters>(load_peft_adapters(model.config, {kAdapterDir})), {0});
  for (int64_t r = 0; r < 2; ++r) {
    const QaBatch one = make_qa_batch(model, {&examples[r]});
    const Tensor alone = model.forward(one.input).logits;
    const int64_t L = alone.size(1);
    EXPECT_LE(max_abs_diff(logits.narrow(0, r, 1).narrow(1, 0, L), alone), 1e-5) << "row " << r;
  }
}

// A synthetic group: 8 questions whose 2-token answers (+ EOS) are a fixed function of the prompt,
// each behind its own random 4-vector "compressed context".
std::vector<QaExample> synthetic_group() {
  std::vector<QaExample> out;
  for (int32_t i = 0; i < 8; ++i) {
    QaExample e;
    e.prefix = mul(randn({4, 32}, 500 + static_cast<uint64_t>(i)), 0.5);
    e.prompt = {1, 10 + i, 20 + (i % 3)};
    e.answer = {40 + (i * 3) % 20, 30 + i, 2};
    out.push_back(e);
  }
  return out;
}

TEST(AdapterTraining, AnswerLossFallsAndTheBaseStaysFrozen) {
  models::LlamaModel model = models::load_hf_model(kModelDir);
  // The fixture's N(0, 0.02) head after a final RMSNorm can move logits by < 1 in all: scaled up,
  // there is room for an adapter to learn the answers.
  model.lm_head = mul(model.lm_head, 30.0);
  const std::vector<Tensor> base_before = [&] {
    std::vector<Tensor> v;
    for (const auto& [name, p] : model.named_parameters()) v.push_back(p.clone());
    return v;
  }();
  LoraConfig cfg;
  auto adapters = std::make_shared<LoraAdapters>(LoraAdapters::zeros(model.config, cfg, 1));
  adapters->init_peft(0, 3);
  const std::vector<QaExample> group = synthetic_group();
  AdapterTrainOptions o;
  o.loop.steps = 80;
  o.loop.quiet = true;
  o.batch_size = 4;
  o.lr = 2e-2;
  const train::TrainResult r = train_adapter(model, adapters, group, o);
  ASSERT_EQ(r.losses.size(), 80u);
  const double first = r.losses.front(), last = (r.losses[77] + r.losses[78] + r.losses[79]) / 3;
  EXPECT_LT(last, 0.5 * first) << "answer loss " << first << " -> " << last;
  std::printf("answer loss %.3f -> %.3f over %zu steps\n", first, last, r.losses.size());
  size_t i = 0;
  for (const auto& [name, p] : model.named_parameters()) {
    EXPECT_EQ(max_abs_diff(p, base_before[i++]), 0.0) << name << " changed";
    EXPECT_FALSE(p.grad().defined()) << name;
  }
  // The trained adapter, saved as PEFT and loaded into a fresh model, gives the same logits.
  const fs::path dir = fs::path(::testing::TempDir()) / "lloco_trained_adapter";
  fs::remove_all(dir);
  save_peft_adapter(*adapters, 0, dir.string());
  models::LlamaModel fresh = models::load_hf_model(kModelDir);
  fresh.lm_head = mul(fresh.lm_head, 30.0);
  attach(fresh, std::make_shared<LoraAdapters>(load_peft_adapters(fresh.config, {dir.string()})), {0});
  attach(model, adapters, {0});
  const QaBatch b = make_qa_batch(model, {&group[0]});
  EXPECT_EQ(max_abs_diff(model.forward(b.input).logits, fresh.forward(b.input).logits), 0.0);
  fs::remove_all(dir);
}

TEST(AdapterTraining, ResumedRunWithDropoutIsBitIdentical) {
  const std::vector<QaExample> group = synthetic_group();
  auto run = [&](const fs::path& dir, int64_t stop_after, double dropout = 0.05) {
    models::LlamaModel model = models::load_hf_model(kModelDir);
    LoraConfig cfg;
    cfg.dropout = dropout;  // LLoCO's 0.05: masks must replay exactly after a resume
    auto adapters = std::make_shared<LoraAdapters>(LoraAdapters::zeros(model.config, cfg, 1));
    adapters->init_peft(0, 9);
    AdapterTrainOptions o;
    o.loop.steps = 6;
    o.loop.grad_accumulation = 2;
    o.loop.checkpoint_every = 2;
    o.loop.stop_after = stop_after;
    o.loop.run_dir = dir.string();
    o.loop.quiet = true;
    o.batch_size = 3;  // 6 examples per step over 8: epochs cross inside steps
    o.lr = 1e-2;
    train_adapter(model, adapters, group, o);
    return adapters;
  };
  const fs::path a = fs::path(::testing::TempDir()) / "lloco_lora_resume_a";
  const fs::path b = fs::path(::testing::TempDir()) / "lloco_lora_resume_b";
  fs::remove_all(a);
  fs::remove_all(b);
  const auto straight = run(a, -1);
  run(b, 4);
  const auto resumed = run(b, -1);
  const auto wa = straight->named_weights(0), wb = resumed->named_weights(0);
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_EQ(max_abs_diff(wa[i].second, wb[i].second), 0.0) << wa[i].first;
  // The dropout is really on: without it the same run ends elsewhere.
  const fs::path c = fs::path(::testing::TempDir()) / "lloco_lora_resume_c";
  fs::remove_all(c);
  const auto wc = run(c, -1, 0.0)->named_weights(0);
  double moved = 0;
  for (size_t i = 0; i < wa.size(); ++i) moved = std::max(moved, max_abs_diff(wa[i].second, wc[i].second));
  EXPECT_GT(moved, 1e-4);
  fs::remove_all(c);
  fs::remove_all(a);
  fs::remove_all(b);
}

}  // namespace
}  // namespace lloco::lora
