// The trainer's PyTorch regression fixture (tests/fixtures/gen_train_fixtures.py): a linear model
// trained with gradient accumulation, clipping, warmup + cosine and AdamW; micro-batch m of step s
// is (X[s, m], Y[s, m]).
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "core/ops.h"
#include "core/optim.h"
#include "core/safetensors.h"
#include "train/trainer.h"

namespace lloco::train::testing {

inline const std::string kFixture = std::string(LLOCO_FIXTURES_DIR) + "/train/regression.safetensors";

struct Regression {
  SafetensorsFile fx = load_safetensors(kFixture);
  int64_t steps = std::stoll(fx.metadata().at("steps"));
  int64_t accum = std::stoll(fx.metadata().at("accum"));
  double max_norm = std::stod(fx.metadata().at("max_norm"));
  double base_lr = std::stod(fx.metadata().at("base_lr"));
  int64_t warmup = std::stoll(fx.metadata().at("warmup"));
  Tensor W = fx.get("W0").clone().requires_grad_(true);
  LinearWarmupCosine schedule{base_lr, warmup, steps};

  LossFn loss_fn() {
    return [this](int64_t s, int64_t m) {
      const Tensor x = fx.get("X").select(0, s).select(0, m), y = fx.get("Y").select(0, s).select(0, m);
      const Tensor d = sub(matmul(x, W.transpose(0, 1)), y);
      return MicroBatchLoss{mean(mul(d, d)), 5};
    };
  }
  TrainOptions options(const std::string& dir = "") const {
    TrainOptions o;
    o.steps = steps;
    o.grad_accumulation = accum;
    o.max_grad_norm = max_norm;
    o.log_every = 1;
    o.run_dir = dir;
    o.quiet = true;
    return o;
  }
  std::unique_ptr<AdamW> optimizer() {
    AdamWOptions a;
    a.lr = base_lr;
    a.weight_decay = 0.01;
    return std::make_unique<AdamW>(NamedTensors{{"W", W}}, a);
  }
  std::function<double(int64_t)> lr_at() {
    return [this](int64_t s) { return schedule.lr(s); };
  }
};

}  // namespace lloco::train::testing
