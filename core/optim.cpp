// Optimizers, schedules and gradient clipping; see optim.h for the PyTorch / HF semantics matched.
#include "core/optim.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/autograd.h"
#include "core/backend.h"
#include "core/ops.h"

namespace lloco {

namespace {

// Splits "exp_avg.layers.0.w" into ("exp_avg", "layers.0.w") at the first dot.
std::pair<std::string, std::string> split_key(const std::string& key, const char* op) {
  const size_t dot = key.find('.');
  LLOCO_CHECK(dot != std::string::npos && dot > 0 && dot + 1 < key.size(), op,
              "state key '", key, "' is not of the form <kind>.<param name>");
  return {key.substr(0, dot), key.substr(dot + 1)};
}

void check_state_shape(const Tensor& t, const Tensor& param, const std::string& key, const char* op) {
  LLOCO_CHECK(t.defined(), op, "state tensor '", key, "' is undefined");
  LLOCO_CHECK(t.shape() == param.shape(), op, "state tensor '", key, "' has shape ", shape_str(t.shape()),
              " but its parameter has shape ", shape_str(param.shape()));
}

// Per-step counters are stored as 0-d i64 tensors on the host so they serialise with the rest.
Tensor step_tensor(int64_t step) { return from_vector<int64_t>({step}, {}, DType::I64); }

// The gradient of `param` as a contiguous tensor on its device, checked against the parameter.
Tensor checked_grad(const std::string& name, const Tensor& param, const char* op) {
  Tensor g = param.grad();
  if (!g.defined()) return g;
  LLOCO_CHECK(g.shape() == param.shape(), op, "gradient of '", name, "' has shape ", shape_str(g.shape()),
              " but the parameter has shape ", shape_str(param.shape()));
  LLOCO_CHECK(g.device() == param.device(), op, "gradient of '", name, "' is on ", g.device().str(),
              " but the parameter is on ", param.device().str());
  return g.is_contiguous() ? g : g.contiguous();
}

}  // namespace

// ---- Optimizer ----------------------------------------------------------------------------------

Optimizer::Optimizer(NamedTensors params, double lr) : params_(std::move(params)), lr_(lr) {
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    LLOCO_CHECK(p.defined(), "Optimizer", "parameter '", name, "' is undefined");
    LLOCO_CHECK(dtype_is_float(p.dtype()), "Optimizer", "parameter '", name, "' has non-float dtype ",
                dtype_name(p.dtype()));
    for (size_t j = 0; j < i; ++j)
      LLOCO_CHECK(params_[j].first != name, "Optimizer", "duplicate parameter name '", name, "'");
  }
}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

size_t Optimizer::param_index(const std::string& name, const char* op) const {
  for (size_t i = 0; i < params_.size(); ++i)
    if (params_[i].first == name) return i;
  LLOCO_FAIL(op, "state refers to unknown parameter '", name, "'");
}

// ---- AdamW --------------------------------------------------------------------------------------

AdamW::AdamW(NamedTensors params, const AdamWOptions& options)
    : Optimizer(std::move(params), options.lr), opts_(options), slots_(params_.size()) {
  LLOCO_CHECK(opts_.beta1 >= 0 && opts_.beta1 < 1 && opts_.beta2 >= 0 && opts_.beta2 < 1, "AdamW",
              "betas must lie in [0, 1), got (", opts_.beta1, ", ", opts_.beta2, ")");
  LLOCO_CHECK(opts_.eps >= 0 && opts_.weight_decay >= 0, "AdamW", "eps and weight_decay must be >= 0, got ",
              opts_.eps, " and ", opts_.weight_decay);
  for (const auto& [name, p] : params_)
    LLOCO_CHECK(p.is_contiguous(), "AdamW", "parameter '", name, "' ", p.str(),
                " is not contiguous (the fused update writes it as a flat array)");
}

void AdamW::init_slot(size_t i) {
  const Tensor& p = params_[i].second;
  // Half-precision params keep f32 moments: v ~ g^2 underflows and m loses the small updates in bf16.
  const DType mdt = (p.dtype() == DType::BF16 || p.dtype() == DType::F16) ? DType::F32 : p.dtype();
  slots_[i].exp_avg = zeros(p.shape(), mdt, p.device());
  slots_[i].exp_avg_sq = zeros(p.shape(), mdt, p.device());
  slots_[i].step = 0;
}

void AdamW::step() {
  NoGradGuard no_grad;
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    const Tensor g = checked_grad(name, p, "AdamW");
    if (!g.defined()) continue;
    LLOCO_CHECK(p.is_contiguous(), "AdamW", "parameter '", name, "' became non-contiguous: ", p.str());
    Slot& s = slots_[i];
    if (!s.exp_avg.defined()) init_slot(i);
    ++s.step;
    const bool decay = !opts_.decay_filter || opts_.decay_filter(name);
    AdamWParams ap{};
    ap.lr = lr_;
    ap.beta1 = opts_.beta1;
    ap.beta2 = opts_.beta2;
    ap.eps = opts_.eps;
    ap.weight_decay = decay ? opts_.weight_decay : 0.0;
    ap.bias_correction1 = 1.0 - std::pow(opts_.beta1, static_cast<double>(s.step));
    ap.bias_correction2 = 1.0 - std::pow(opts_.beta2, static_cast<double>(s.step));
    const DeviceType dev = p.device().type;
    backend_for(dev).adamw_step(to_ref(p), to_ref(g), to_ref(s.exp_avg), to_ref(s.exp_avg_sq), ap,
                                current_stream(dev));
  }
}

OptimizerState AdamW::state_dict() const {
  OptimizerState st;
  st.step = step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Slot& s = slots_[i];
    if (!s.exp_avg.defined()) continue;
    const std::string& name = params_[i].first;
    st.tensors.emplace_back("exp_avg." + name, s.exp_avg);
    st.tensors.emplace_back("exp_avg_sq." + name, s.exp_avg_sq);
    st.tensors.emplace_back("step." + name, step_tensor(s.step));
  }
  return st;
}

void AdamW::load_state_dict(const OptimizerState& state) {
  constexpr const char* op = "AdamW::load_state_dict";
  std::vector<Slot> fresh(params_.size());
  std::vector<int> seen(params_.size(), 0);  // bit 0: exp_avg, 1: exp_avg_sq, 2: step
  for (const auto& [key, t] : state.tensors) {
    const auto [kind, name] = split_key(key, op);
    const size_t i = param_index(name, op);
    const Tensor& p = params_[i].second;
    if (kind == "step") {
      LLOCO_CHECK(t.defined() && t.numel() == 1, op, "'", key, "' must hold one number");
      fresh[i].step = static_cast<int64_t>(t.item());
      seen[i] |= 4;
      continue;
    }
    LLOCO_CHECK(kind == "exp_avg" || kind == "exp_avg_sq", op, "unknown state kind in key '", key, "'");
    check_state_shape(t, p, key, op);
    if (!fresh[i].exp_avg.defined()) {
      const DType mdt = (p.dtype() == DType::BF16 || p.dtype() == DType::F16) ? DType::F32 : p.dtype();
      fresh[i].exp_avg = zeros(p.shape(), mdt, p.device());
      fresh[i].exp_avg_sq = zeros(p.shape(), mdt, p.device());
    }
    copy_(kind == "exp_avg" ? fresh[i].exp_avg : fresh[i].exp_avg_sq, t);
    seen[i] |= kind == "exp_avg" ? 1 : 2;
  }
  for (size_t i = 0; i < params_.size(); ++i)
    LLOCO_CHECK(seen[i] == 0 || seen[i] == 7, op, "parameter '", params_[i].first,
                "' needs all of exp_avg, exp_avg_sq and step in the state (got mask ", seen[i], ")");
  slots_ = std::move(fresh);
  step_ = state.step;
}

// ---- SGD ----------------------------------------------------------------------------------------

SGD::SGD(NamedTensors params, const SGDOptions& options)
    : Optimizer(std::move(params), options.lr), opts_(options), momentum_buffers_(params_.size()) {
  LLOCO_CHECK(opts_.momentum >= 0 && opts_.weight_decay >= 0, "SGD",
              "momentum and weight_decay must be >= 0, got ", opts_.momentum, " and ", opts_.weight_decay);
  LLOCO_CHECK(!opts_.nesterov || opts_.momentum > 0, "SGD", "nesterov needs momentum > 0");
}

void SGD::step() {
  NoGradGuard no_grad;
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& [name, p] = params_[i];
    Tensor d = checked_grad(name, p, "SGD");
    if (!d.defined()) continue;
    if (opts_.weight_decay != 0) d = add(d, mul(p.detach(), opts_.weight_decay));
    if (opts_.momentum != 0) {
      Tensor& buf = momentum_buffers_[i];
      if (!buf.defined()) {
        buf = d.clone();  // own storage: d may alias the gradient
      } else {
        copy_(buf, add(mul(buf, opts_.momentum), d));
      }
      d = opts_.nesterov ? add(d, mul(buf, opts_.momentum)) : buf;
    }
    copy_(p, sub(p.detach(), mul(d, lr_)));
  }
}

OptimizerState SGD::state_dict() const {
  OptimizerState st;
  st.step = step_;
  for (size_t i = 0; i < params_.size(); ++i)
    if (momentum_buffers_[i].defined())
      st.tensors.emplace_back("momentum_buffer." + params_[i].first, momentum_buffers_[i]);
  return st;
}

void SGD::load_state_dict(const OptimizerState& state) {
  constexpr const char* op = "SGD::load_state_dict";
  std::vector<Tensor> fresh(params_.size());
  for (const auto& [key, t] : state.tensors) {
    const auto [kind, name] = split_key(key, op);
    LLOCO_CHECK(kind == "momentum_buffer", op, "unknown state kind in key '", key, "'");
    const size_t i = param_index(name, op);
    const Tensor& p = params_[i].second;
    check_state_shape(t, p, key, op);
    fresh[i] = empty(p.shape(), p.dtype(), p.device());
    copy_(fresh[i], t);
  }
  momentum_buffers_ = std::move(fresh);
  step_ = state.step;
}

// ---- schedules ----------------------------------------------------------------------------------

LrSchedule::LrSchedule(double base_lr, int64_t warmup_steps, int64_t total_steps)
    : base_lr_(base_lr), warmup_(warmup_steps), total_(total_steps) {
  LLOCO_CHECK(warmup_steps >= 0, "LrSchedule", "warmup_steps must be >= 0, got ", warmup_steps);
}

double LrSchedule::warmup_factor(int64_t step) const {
  if (step < warmup_) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup_));
  return -1.0;
}

ConstantWithWarmup::ConstantWithWarmup(double base_lr, int64_t warmup_steps)
    : LrSchedule(base_lr, warmup_steps, warmup_steps) {}

double ConstantWithWarmup::multiplier(int64_t step) const {
  const double w = warmup_factor(step);
  return w >= 0 ? w : 1.0;
}

LinearWarmupLinear::LinearWarmupLinear(double base_lr, int64_t warmup_steps, int64_t total_steps)
    : LrSchedule(base_lr, warmup_steps, total_steps) {}

double LinearWarmupLinear::multiplier(int64_t step) const {
  const double w = warmup_factor(step);
  if (w >= 0) return w;
  return std::max(0.0, static_cast<double>(total_ - step) /
                           static_cast<double>(std::max<int64_t>(1, total_ - warmup_)));
}

LinearWarmupCosine::LinearWarmupCosine(double base_lr, int64_t warmup_steps, int64_t total_steps,
                                       double min_lr_ratio, double num_cycles)
    : LrSchedule(base_lr, warmup_steps, total_steps), min_ratio_(min_lr_ratio), cycles_(num_cycles) {
  LLOCO_CHECK(min_lr_ratio >= 0 && min_lr_ratio <= 1, "LinearWarmupCosine", "min_lr_ratio must lie in [0, 1], got ",
              min_lr_ratio);
}

double LinearWarmupCosine::multiplier(int64_t step) const {
  const double w = warmup_factor(step);
  if (w >= 0) return w;
  const double progress =
      static_cast<double>(step - warmup_) / static_cast<double>(std::max<int64_t>(1, total_ - warmup_));
  // Same evaluation order as HF so the doubles agree to the last bit (up to libm's cos).
  double factor = 0.5 * (1.0 + std::cos(std::numbers::pi * cycles_ * 2.0 * progress));
  if (min_ratio_ > 0) factor = factor * (1 - min_ratio_) + min_ratio_;
  return std::max(0.0, factor);
}

std::unique_ptr<LrSchedule> make_schedule(const std::string& kind, double base_lr, int64_t warmup_steps,
                                          int64_t total_steps, double min_lr_ratio) {
  if (kind == "constant" || kind == "constant_with_warmup")
    return std::make_unique<ConstantWithWarmup>(base_lr, warmup_steps);
  if (kind == "linear") return std::make_unique<LinearWarmupLinear>(base_lr, warmup_steps, total_steps);
  if (kind == "cosine" || kind == "cosine_with_min_lr")
    return std::make_unique<LinearWarmupCosine>(base_lr, warmup_steps, total_steps, min_lr_ratio);
  LLOCO_FAIL("make_schedule", "unknown schedule '", kind, "' (expected constant, linear or cosine)");
}

// ---- clipping -----------------------------------------------------------------------------------

double clip_grad_norm(const std::vector<Tensor>& params, double max_norm) {
  NoGradGuard no_grad;
  // One running sum per device so each device syncs once.
  std::vector<std::pair<Device, Tensor>> partial;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    const DType acc = g.dtype() == DType::F64 ? DType::F64 : DType::F32;
    Tensor sq = sum(square(g.dtype() == acc ? g : cast(g, acc)));
    auto it = std::find_if(partial.begin(), partial.end(), [&](const auto& e) { return e.first == g.device(); });
    if (it == partial.end()) {
      partial.emplace_back(g.device(), sq);
    } else {
      it->second = add(it->second, sq.dtype() == it->second.dtype() ? sq : cast(sq, it->second.dtype()));
    }
  }
  double total_sq = 0;
  for (const auto& [dev, t] : partial) total_sq += t.item();
  const double norm = std::sqrt(total_sq);
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) {
    for (const Tensor& p : params) {
      const Tensor g = p.grad();
      if (g.defined()) p.set_grad(mul(g, coef));
    }
  }
  return norm;
}

double clip_grad_norm(const NamedTensors& params, double max_norm) {
  std::vector<Tensor> ts;
  ts.reserve(params.size());
  for (const auto& [name, p] : params) ts.push_back(p);
  return clip_grad_norm(ts, max_norm);
}

}  // namespace lloco
