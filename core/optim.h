// Optimizers (AdamW, SGD), learning-rate schedules and global gradient-norm clipping, with the
// semantics of torch.optim / torch.nn.utils and HF transformers' schedules so training runs can be
// compared against PyTorch step for step. Optimizer state is exposed as named tensors so a training
// loop can checkpoint it (e.g. to safetensors) and resume bit-exactly.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lloco {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

// Everything an optimizer needs to resume: the number of step() calls made and the named state
// tensors ("exp_avg.<param>", "exp_avg_sq.<param>", "step.<param>", "momentum_buffer.<param>").
struct OptimizerState {
  int64_t step = 0;
  NamedTensors tensors;
};

class Optimizer {
 public:
  Optimizer(NamedTensors params, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Updates every parameter that has a gradient; parameters without one are left untouched.
  virtual void step() = 0;
  // Drops the accumulated gradients (the next backward starts from nothing, like set_to_none=True).
  void zero_grad();

  // The state tensors alias the optimizer's live buffers: serialise them (or clone them) before the
  // next step() if a snapshot is wanted.
  virtual OptimizerState state_dict() const = 0;
  // Copies the given values into this optimizer's state (shapes and names must match its params).
  virtual void load_state_dict(const OptimizerState& state) = 0;

  void set_lr(double lr) { lr_ = lr; }
  double lr() const { return lr_; }
  int64_t step_count() const { return step_; }
  const NamedTensors& params() const { return params_; }

 protected:
  // Index of the parameter called `name`; throws naming the key when absent.
  size_t param_index(const std::string& name, const char* op) const;

  NamedTensors params_;
  double lr_;
  int64_t step_ = 0;
};

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
  // When set, only parameters for which it returns true are decayed (HF excludes biases and norms).
  std::function<bool(const std::string&)> decay_filter;
};

// torch.optim.AdamW (decoupled weight decay, bias-corrected moments, per-parameter step counts).
// Moments are kept in f32 for f16/bf16 parameters and in the parameter's dtype otherwise; the update
// runs in the device backend's fused adamw_step kernel. Parameters must be contiguous.
class AdamW final : public Optimizer {
 public:
  AdamW(NamedTensors params, const AdamWOptions& options);
  void step() override;
  OptimizerState state_dict() const override;
  void load_state_dict(const OptimizerState& state) override;
  const AdamWOptions& options() const { return opts_; }

 private:
  struct Slot {
    Tensor exp_avg, exp_avg_sq;  // undefined until the parameter's first update
    int64_t step = 0;
  };
  void init_slot(size_t i);

  AdamWOptions opts_;
  std::vector<Slot> slots_;
};

struct SGDOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double weight_decay = 0.0;  // L2: added to the gradient (torch.optim.SGD semantics)
  bool nesterov = false;
};

// torch.optim.SGD with dampening 0: buf = momentum * buf + g (buf = g on the first step),
// update = nesterov ? g + momentum * buf : buf; p -= lr * update.
class SGD final : public Optimizer {
 public:
  SGD(NamedTensors params, const SGDOptions& options);
  void step() override;
  OptimizerState state_dict() const override;
  void load_state_dict(const OptimizerState& state) override;

 private:
  SGDOptions opts_;
  std::vector<Tensor> momentum_buffers_;  // undefined until first used
};

// ---- learning-rate schedules ----
// multiplier(s) is the factor applied to base_lr for optimizer step s (0-based), i.e. the value HF's
// LambdaLR lambda returns at s; lr(s) = base_lr * multiplier(s).
class LrSchedule {
 public:
  LrSchedule(double base_lr, int64_t warmup_steps, int64_t total_steps);
  virtual ~LrSchedule() = default;
  virtual double multiplier(int64_t step) const = 0;
  double lr(int64_t step) const { return base_lr_ * multiplier(step); }
  double base_lr() const { return base_lr_; }

 protected:
  // s / max(1, warmup) during warmup; < 0 once warmup is over.
  double warmup_factor(int64_t step) const;
  double base_lr_;
  int64_t warmup_, total_;
};

// get_constant_schedule_with_warmup
class ConstantWithWarmup final : public LrSchedule {
 public:
  ConstantWithWarmup(double base_lr, int64_t warmup_steps);
  double multiplier(int64_t step) const override;
};

// get_linear_schedule_with_warmup: linear decay to 0 at total_steps, 0 afterwards.
class LinearWarmupLinear final : public LrSchedule {
 public:
  LinearWarmupLinear(double base_lr, int64_t warmup_steps, int64_t total_steps);
  double multiplier(int64_t step) const override;
};

// get_cosine_schedule_with_warmup (num_cycles 0.5) or, with min_lr_ratio > 0,
// get_cosine_with_min_lr_schedule_with_warmup(min_lr_rate=min_lr_ratio). Like HF, past total_steps
// the cosine keeps going (it rises again), so size total_steps to the run.
class LinearWarmupCosine final : public LrSchedule {
 public:
  LinearWarmupCosine(double base_lr, int64_t warmup_steps, int64_t total_steps, double min_lr_ratio = 0.0,
                     double num_cycles = 0.5);
  double multiplier(int64_t step) const override;

 private:
  double min_ratio_, cycles_;
};

// "constant" | "linear" | "cosine" (the names HF's lr_scheduler_type uses).
std::unique_ptr<LrSchedule> make_schedule(const std::string& kind, double base_lr, int64_t warmup_steps,
                                          int64_t total_steps, double min_lr_ratio = 0.0);

// torch.nn.utils.clip_grad_norm_: total = sqrt(sum over params of sum(grad^2)); every gradient is
// multiplied by c = max_norm / (total + 1e-6) when c < 1 (torch clamps c at 1). Returns the pre-clip
// norm (NaN/inf gradients give a non-finite norm and are left unscaled; callers should skip the step).
double clip_grad_norm(const NamedTensors& params, double max_norm);
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm);

}  // namespace lloco
