// Training the AutoCompressor context encoder (princeton-nlp/AutoCompressors' SubstepTrainer, the
// recipe of AutoCompressor-Llama-2-7b-6k): a training sequence is cut into substeps of random-length
// segments; each segment is encoded as in AutoCompressor::compress ([softprompt ; tokens ; summary
// tokens], positions 0 .. L-1) but with autograd on, the segment positions are scored with the LM
// head, and the softprompt is detached between substeps so backpropagation through the summary
// vectors spans at most one substep. Trainable: embed_summary (full) and a LoRA on the LLaMA (base
// frozen), merged into the weights at the end as in the released model.
//
// Loss convention (read from AutoCompressors' auto_compressor_llama.py forward and
// substep_trainer.py): each substep is one model call whose loss is the shifted causal-LM
// cross-entropy over its segments' logits concatenated in order, so a segment's first token is
// predicted from the previous segment's last position, while a substep's first token is not
// predicted (it starts a new call). AutoCompressors backpropagates every substep loss unscaled and
// logs their mean; here the objective is the mean over all predicted tokens, which equals that mean
// for equal-length substeps, so gradients are 1/substeps of theirs (Adam is indifferent to the scale;
// clipping at max_grad_norm sees the smaller norm).
//
// Links lora (attach/merge) and train (the loop) besides models and core.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "compress/autocompressor.h"
#include "lora/adapters.h"
#include "train/trainer.h"

namespace lloco::compress {

// How a training sequence is segmented: segment lengths in order, grouped into substeps
// (substep_segments[i] consecutive segments form substep i).
struct SegmentPlan {
  std::vector<int64_t> lengths;
  std::vector<int64_t> substep_segments;

  int64_t total_tokens() const;
  // Throws naming `source` unless the lengths are >= 1, sum to n_tokens and the substeps cover them.
  void validate(int64_t n_tokens, const std::string& source = "SegmentPlan") const;
};

// AutoCompressors' randomize_substeps: n_tokens cut into `substeps` substeps at floor(i * n / substeps),
// each split into segments_per_substep segments at distinct uniformly random breakpoints (every
// segment >= 2 tokens). Deterministic in seed on every platform.
SegmentPlan random_segment_plan(int64_t n_tokens, int64_t substeps, int64_t segments_per_substep, uint64_t seed);

struct AcLossOptions {
  bool detach_between_substeps = true;  // false: full backpropagation through every summary vector
  // > 0 (detaching only): each substep but the last is backpropagated as soon as its loss exists,
  // scaled by this factor (the one the caller will backpropagate the returned loss with), and its
  // graph is freed; the returned loss keeps the whole objective's value but a graph over the last
  // substep only. The memory saving substeps exist for (AutoCompressors issue #23).
  double early_backward_scale = 0.0;
  // Called before each segment's forward (e.g. to give LoRA dropout a fresh seed per segment).
  std::function<void(int64_t segment)> before_segment;
};

struct AcLoss {
  Tensor loss;                   // 0-d f32 mean cross-entropy over the predicted tokens
  int64_t predicted_tokens = 0;  // n_tokens - substeps
};

// The training objective of one sequence under `plan`, with autograd on: gradients reach
// embed_summary [summary_length, D] (cast to the model's dtype inside, differentiably) and whatever
// the model's projection hook (a training LoRA) makes trainable.
AcLoss autocompressor_loss(const models::LlamaModel& model, const Tensor& embed_summary, bool accumulate_summary,
                           const std::vector<int32_t>& ids, const SegmentPlan& plan, const AcLossOptions& options = {});

// The recipe's LoRA: r 16, alpha 16, dropout 0.05 on q/k/v/o.
lora::LoraConfig autocompressor_lora_config();

struct AcTrainOptions {
  train::TrainOptions loop;  // steps, grad_accumulation (recipe: 32 sequences a step), clipping, run_dir, ...
  lora::LoraConfig lora = autocompressor_lora_config();
  int64_t substeps = 2;              // recipe: 6144-token sequences, 2 substeps x 2 segments
  int64_t segments_per_substep = 2;
  double lr = 8e-4;                  // recipe: 8e-4, 5000 warmup steps, HF's default linear decay
  std::string schedule = "linear";   // "constant" | "linear" | "cosine"
  int64_t warmup_steps = 5000;       // as HF: not capped at loop.steps
  double weight_decay = 0.0;
  uint64_t seed = 42;                // sequence order, segment plans, LoRA init and dropout
};

struct AcTrainResult {
  AutoCompressor encoder;  // the LoRA merged into the LLaMA weights, the trained summary table
  train::TrainResult train;
};

// Trains `base` on token sequences (one sequence per micro-batch, taken in a fresh permutation each
// epoch). Every loss of step s, micro-batch m depends on (s, m) only, so runs resume exactly.
AcTrainResult train_autocompressor(const AutoCompressor& base, const std::vector<std::vector<int32_t>>& sequences,
                                   const AcTrainOptions& options);

// Writes an AutoCompressor HF directory that AutoCompressor::load reads: config.json (the LLaMA
// config plus summary_length and accumulate_summary) and model.safetensors (the LLaMA weights plus
// embed_summary.weight), each atomically.
void save_autocompressor(const AutoCompressor& encoder, const std::string& dir);

}  // namespace lloco::compress
