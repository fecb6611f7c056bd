// The PEFT fixtures of tests/fixtures/lora (gen_lora_fixtures.py) for the tiny LLaMA of
// tests/fixtures/llama: their paths, the fixture batch as QA examples, and the options of the single
// optimizer step the fixture records. Shared by tests/lora (CPU) and tests/cuda (CUDA, simt).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/safetensors.h"
#include "lora/adapter_training.h"
#include "lora/peft_io.h"
#include "models/llama.h"

namespace lloco::lora::testing {

inline const std::string kTinyModelDir = std::string(LLOCO_FIXTURES_DIR) + "/llama/tiny";
inline const std::string kTinyAdapterDir = std::string(LLOCO_FIXTURES_DIR) + "/lora/tiny_llama_adapter";
inline const std::string kTinyExpected = std::string(LLOCO_FIXTURES_DIR) + "/lora/tiny_llama_expected.safetensors";

// [prefix ; ids] on `device`: the LLoCO-style input every PEFT output of the fixture was computed on.
inline models::ForwardInput fixture_input(const SafetensorsFile& ex, Device device = cpu()) {
  models::ForwardInput in;
  in.prefix_embeddings = ex.get("prefix").to(device);
  in.input_ids = ex.get("ids").to(device);
  return in;
}

// The same batch as QA examples: row 0 = 3 prompt + 3 answer tokens, row 1 = 2 + 4, each after its
// 3-vector prefix (the fixture's labels).
inline std::vector<QaExample> fixture_examples(const SafetensorsFile& ex) {
  const Tensor prefix = ex.get("prefix"), ids = ex.get("ids");
  auto ids_of = [&](int64_t row, int64_t from, int64_t to) {
    const std::vector<int64_t> v = ids.select(0, row).to_vector<int64_t>();
    return std::vector<int32_t>(v.begin() + from, v.begin() + to);
  };
  return {QaExample{prefix.select(0, 0), ids_of(0, 0, 3), ids_of(0, 3, 6)},
          QaExample{prefix.select(0, 1), ids_of(1, 0, 2), ids_of(1, 2, 6)}};
}

// The fixture's "after_step." weights: one torch AdamW step (lr 1e-2, no decay) after clipping to 0.5.
inline AdapterTrainOptions fixture_step_options() {
  AdapterTrainOptions o;
  o.loop.steps = 1;
  o.loop.max_grad_norm = 0.5;
  o.loop.quiet = true;
  o.batch_size = 2;
  o.lr = 1e-2;
  o.schedule = "constant";
  o.warmup_ratio = 0;
  return o;
}

// Two stacked adapters for `model`: 0 = the fixture's PEFT adapter, 1 = random N(0, 0.2^2) weights
// drawn from `seed` (a second document group).
inline LoraAdapters fixture_and_random_adapter(const models::LlamaConfig& model, uint64_t seed) {
  const LoraAdapters peft = load_peft_adapters(model, {kTinyAdapterDir});
  LoraAdapters two = LoraAdapters::zeros(model, peft.config(), 2);
  for (int64_t l = 0; l < model.num_layers; ++l)
    for (models::Proj p : peft.config().targets) {
      two.set(0, l, p, peft.a(l, p).select(0, 0), peft.b(l, p).select(0, 0));
      two.set(1, l, p, mul(randn({peft.config().rank, peft.a(l, p).size(2)}, seed), 0.2),
              mul(randn({peft.b(l, p).size(1), peft.config().rank}, seed + 1), 0.2));
      seed += 2;
    }
  return two;
}

}  // namespace lloco::lora::testing
