// LLoCO's fine-tuning: one LoRA adapter per document group, trained on the group's QA pairs with the
// compressed context (summary embeddings) in front of each prompt; the base model stays frozen and
// the loss covers the answer tokens only (summary and prompt positions are -100, as in LLoCO's
// collator). Runs on lloco::train::train, so it checkpoints and resumes exactly.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "lora/adapters.h"
#include "models/llama.h"
#include "train/trainer.h"

namespace lloco::lora {

// [prefix ; prompt ; answer] for the decoder.
struct QaExample {
  Tensor prefix;                // [P, D] summary embeddings (undefined or P = 0: no context)
  std::vector<int32_t> prompt;  // prompt token ids (BOS and template included by the caller)
  std::vector<int32_t> answer;  // answer token ids (append EOS so the model learns to stop)
};

// Right-padded batch: input.inputs_embeds [B, S, D] (model dtype and device) and labels [B, S] i64
// (answer ids at their positions, -100 elsewhere, pads included). No attention mask: under causal
// attention no real position sees the pads after it, so the plain causal (flash) path stays in use.
struct QaBatch {
  models::ForwardInput input;
  Tensor labels;
  int64_t answer_tokens = 0;
};
QaBatch make_qa_batch(const models::LlamaModel& model, const std::vector<const QaExample*>& examples);

// Mean cross-entropy of logits [B, S, V] at position t against labels[:, t + 1] over labels != -100
// (transformers' causal-LM loss).
Tensor answer_loss(const Tensor& logits, const Tensor& labels);

struct AdapterTrainOptions {
  train::TrainOptions loop;          // steps, grad_accumulation, max_grad_norm, run_dir, ...
  int64_t batch_size = 1;            // examples per micro-batch
  double lr = 2e-5;                  // LLoCO: 2e-5, cosine, warmup ratio 0.04, no weight decay
  std::string schedule = "cosine";   // "constant" | "linear" | "cosine"
  double warmup_ratio = 0.04;
  double weight_decay = 0.0;
  uint64_t seed = 42;                // example order (a fresh permutation each epoch) and LoRA dropout
};

// Optimizer steps for `epochs` passes over n examples.
// The stacked weights of a single-adapter LoraAdapters, marked requires_grad and named as adapter 0's
// PEFT weights (what an optimizer and a checkpoint see).
NamedTensors trainable_adapter_parameters(LoraAdapters& adapters);

int64_t steps_for_epochs(int64_t n_examples, double epochs, int64_t batch_size, int64_t grad_accumulation);

// Trains the single adapter of `adapters` (num_adapters() == 1) on `examples`, keeping every base
// weight frozen. It attaches the adapter to `model` and leaves it attached, out of training mode, with
// sequence_adapters = {0} (one sequence; re-attach or set the binding for other batch sizes).
train::TrainResult train_adapter(models::LlamaModel& model, const std::shared_ptr<LoraAdapters>& adapters,
                                 const std::vector<QaExample>& examples, const AdapterTrainOptions& options);

}  // namespace lloco::lora
