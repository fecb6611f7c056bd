// LoRA adapters on a LLaMA model (LLoCO: one adapter per document group, r = 8, alpha = 16 on
// q/k/v/o). The weights of L adapters are stacked per projection, a [L, r, in] and b [L, out, r]
// (PEFT's lora_A / lora_B), so a single batch can mix adapters: attach() routes the model's
// targeted projections through lora_linear with one adapter per sequence.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "models/llama.h"

namespace lloco::lora {

struct LoraConfig {
  int64_t rank = 8;
  double alpha = 16.0;
  bool use_rslora = false;  // PEFT's rank-stabilized scale alpha / sqrt(r) instead of alpha / r
  double dropout = 0.05;    // PEFT's lora_dropout on the LoRA path's input, while training only (LLoCO: 0.05)
  std::vector<models::Proj> targets{models::Proj::Q, models::Proj::K, models::Proj::V, models::Proj::O};

  double scale() const;
  bool targets_proj(models::Proj p) const;
  // Throws naming `source` and the field (rank < 1, alpha <= 0, dropout outside [0, 1), no or
  // repeated targets).
  void validate(const std::string& source = "LoraConfig") const;
};

// HF module name of a projection ("q_proj", ..., "down_proj") and back (throws naming `source`).
const char* proj_module_name(models::Proj p);
models::Proj proj_from_module_name(const std::string& name, const std::string& source);
// {in, out} features of projection p in `model`.
std::pair<int64_t, int64_t> proj_features(const models::LlamaConfig& model, models::Proj p);
// PEFT's saved name of a LoRA weight: base_model.model.model.layers.{layer}.{self_attn|mlp}.{module}.lora_{A|B}.weight
std::string peft_weight_name(int64_t layer, models::Proj p, bool is_b);

class LoraAdapters {
 public:
  // num_adapters adapters of zeros for every (layer, target) of `model`.
  static LoraAdapters zeros(const models::LlamaConfig& model, const LoraConfig& config, int64_t num_adapters,
                            DType dtype = DType::F32, Device device = cpu());

  const LoraConfig& config() const { return config_; }
  int64_t num_adapters() const { return num_adapters_; }
  int64_t num_layers() const { return static_cast<int64_t>(a_.size()); }
  // [L, r, in] / [L, out, r]; undefined for projections that are not targeted.
  const Tensor& a(int64_t layer, models::Proj p) const;
  const Tensor& b(int64_t layer, models::Proj p) const;

  // PEFT's initialization of adapter `adapter`: a ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with
  // a = sqrt(5)), b = 0, so a fresh adapter leaves the model unchanged. Deterministic in seed.
  void init_peft(int64_t adapter, uint64_t seed);
  // Copies one adapter's [r, in] / [out, r] weights in (cast to the stacked dtype). Shapes are checked
  // and errors name `source` and the weight.
  void set(int64_t adapter, int64_t layer, models::Proj p, const Tensor& a, const Tensor& b,
           const std::string& source = "LoraAdapters::set");

  // Adapter `adapter` as (PEFT name, [r, in] or [out, r] view) pairs in layer order.
  std::vector<std::pair<std::string, Tensor>> named_weights(int64_t adapter) const;
  // The stacked tensors (for an optimizer: requires_grad_ on them trains every adapter at once).
  std::vector<Tensor*> parameters();

  LoraAdapters to(Device device) const;

 private:
  LoraConfig config_;
  models::LlamaConfig model_;
  int64_t num_adapters_ = 0;
  // [layer][proj]: stacked weights (undefined when not targeted).
  std::vector<std::vector<Tensor>> a_, b_;
};

// What an attached model reads at every forward: the adapters and the adapter of each sequence in
// the batch (-1 = base model only for that sequence). Change the fields between forwards. While
// `training`, the LoRA path's input goes through dropout(config.dropout) with masks drawn from
// dropout_seed (one Philox range per layer and projection: a recomputed forward draws the same).
struct LoraBinding {
  std::shared_ptr<LoraAdapters> adapters;
  std::vector<int64_t> sequence_adapters;
  bool training = false;
  uint64_t dropout_seed = 0;
};

// Turns the binding's training mode (LoRA dropout) on for a scope and off again on exit, also when
// the training loop throws.
class TrainingScope {
 public:
  explicit TrainingScope(LoraBinding& binding) : binding_(binding) { binding_.training = true; }
  ~TrainingScope() { binding_.training = false; }
  TrainingScope(const TrainingScope&) = delete;
  TrainingScope& operator=(const TrainingScope&) = delete;

 private:
  LoraBinding& binding_;
};

// Installs model.projection_hook: targeted projections of x [B, S, in] become
// lora_linear(x, W, a, b, scale, segments) with rows b*S .. (b+1)*S - 1 using sequence_adapters[b]
// (a batch size other than sequence_adapters.size() is an error naming both). Replaces any hook.
std::shared_ptr<LoraBinding> attach(models::LlamaModel& model, std::shared_ptr<LoraAdapters> adapters,
                                    std::vector<int64_t> sequence_adapters = {0});
void detach(models::LlamaModel& model);

// A copy of `model` with adapter `adapter` folded into the base weights, W + scale * b a (computed
// in f32, stored in W's dtype): the same function without a hook, exportable as a plain HF model.
models::LlamaModel merge(const models::LlamaModel& model, const LoraAdapters& adapters, int64_t adapter);

}  // namespace lloco::lora
