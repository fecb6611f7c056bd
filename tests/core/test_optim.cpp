// Optimizers, schedules and clipping against torch.optim / HF transformers references
// (tests/fixtures/core/optim.json from tests/fixtures/gen_core_fixtures.py), plus state round trips.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/optim.h"

namespace lloco {
namespace {

using json = nlohmann::json;

json load_optim_fixture() {
  const std::string path = std::string(LLOCO_FIXTURES_DIR) + "/core/optim.json";
  std::ifstream f(path);
  if (!f) throw std::runtime_error("missing fixture " + path + " (run tests/fixtures/gen_core_fixtures.py)");
  return json::parse(f);
}

Tensor tensor_of(const json& j, DType dtype = DType::F32) {
  return from_vector<double>(j.at("data").get<std::vector<double>>(), j.at("shape").get<Shape>(), dtype);
}

// Fresh leaf parameters named names[i] holding values[i].
NamedTensors make_params(const json& names, const json& values, DType dtype = DType::F32) {
  NamedTensors ps;
  for (size_t i = 0; i < names.size(); ++i) {
    Tensor t = tensor_of(values[i], dtype);
    t.requires_grad_(true);
    ps.emplace_back(names[i].get<std::string>(), t);
  }
  return ps;
}

void set_grads(const NamedTensors& ps, const json& grads) {
  for (size_t i = 0; i < ps.size(); ++i) ps[i].second.set_grad(tensor_of(grads[i], ps[i].second.dtype()));
}

// max|ours - ref| <= tol * (1 + max|ref|); prints the error for the log.
void expect_close(const Tensor& ours, const json& ref, double tol, const std::string& what) {
  ASSERT_EQ(ours.shape(), ref.at("shape").get<Shape>()) << what;
  const std::vector<double> got = ours.to_vector<double>(), want = ref.at("data").get<std::vector<double>>();
  double max_abs = 0, max_ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(got[i] - want[i]);
    max_abs = std::isnan(d) ? INFINITY : std::max(max_abs, d);
    max_ref = std::max(max_ref, std::fabs(want[i]));
  }
  std::printf("[optim] %-36s max_abs_err %.3e (max|ref| %.3e)\n", what.c_str(), max_abs, max_ref);
  EXPECT_LE(max_abs, tol * (1 + max_ref)) << what;
}

std::vector<float> values(const Tensor& t) { return t.to_vector<float>(); }

const Tensor& state_tensor(const OptimizerState& st, const std::string& key) {
  for (const auto& [k, t] : st.tensors)
    if (k == key) return t;
  throw std::runtime_error("state has no key " + key);
}

OptimizerState clone_state(const OptimizerState& st) {
  OptimizerState out{st.step, {}};
  for (const auto& [k, t] : st.tensors) out.tensors.emplace_back(k, t.clone());
  return out;
}

AdamWOptions fixture_adamw_options(const json& fx) {
  AdamWOptions o;
  o.lr = fx["lr"].get<double>();
  o.beta1 = fx["beta1"].get<double>();
  o.beta2 = fx["beta2"].get<double>();
  o.eps = fx["eps"].get<double>();
  o.weight_decay = fx["weight_decay"].get<double>();
  const auto no_decay = fx["no_decay"].get<std::vector<std::string>>();
  o.decay_filter = [no_decay](const std::string& n) { return std::find(no_decay.begin(), no_decay.end(), n) == no_decay.end(); };
  return o;
}

// One training-loop iteration of the fixture: grads, clip, lr from the schedule, step.
double adamw_fixture_step(AdamW& opt, const LrSchedule& sched, const json& fx, int64_t s) {
  set_grads(opt.params(), fx["steps"][s]["grads"]);
  const double norm = clip_grad_norm(opt.params(), fx["max_norm"].get<double>());
  opt.set_lr(sched.lr(opt.step_count()));
  opt.step();
  return norm;
}

// ---- schedules ----

// Same double-precision formulas as HF in the same evaluation order; only libm's cos may differ by
// an ulp, hence 1e-12 rather than exact equality.
TEST(OptimSchedules, MatchHuggingFace) {
  const json fx = load_optim_fixture();
  for (const json& c : fx["schedules"]) {
    const std::string kind = c["kind"].get<std::string>();
    const int64_t warmup = c["warmup"].get<int64_t>(), total = c["total"].get<int64_t>();
    const auto sched = make_schedule(kind, 3e-4, warmup, total, c["min_lr_ratio"].get<double>());
    const auto mult = c["multipliers"].get<std::vector<double>>();
    for (size_t s = 0; s < mult.size(); ++s) {
      EXPECT_NEAR(sched->multiplier(static_cast<int64_t>(s)), mult[s], 1e-12)
          << kind << " warmup " << warmup << " total " << total << " step " << s;
      EXPECT_NEAR(sched->lr(static_cast<int64_t>(s)), 3e-4 * mult[s], 1e-16) << kind << " step " << s;
    }
  }
}

TEST(OptimSchedules, KeyPointsAndErrors) {
  const LinearWarmupCosine cos(1.0, 10, 110, 0.1);
  EXPECT_DOUBLE_EQ(cos.multiplier(0), 0.0);
  EXPECT_DOUBLE_EQ(cos.multiplier(5), 0.5);
  EXPECT_DOUBLE_EQ(cos.multiplier(10), 1.0);
  EXPECT_NEAR(cos.multiplier(60), 0.55, 1e-15);  // halfway: 0.5 * (1 - 0.1) + 0.1
  EXPECT_NEAR(cos.multiplier(110), 0.1, 1e-15);  // floor at the end
  const LinearWarmupLinear lin(2.0, 0, 4);
  EXPECT_DOUBLE_EQ(lin.lr(1), 1.5);
  EXPECT_DOUBLE_EQ(lin.lr(9), 0.0);
  EXPECT_DOUBLE_EQ(ConstantWithWarmup(1.0, 4).multiplier(1), 0.25);
  EXPECT_THROW(make_schedule("polynomial", 1.0, 0, 10), Error);
  EXPECT_THROW(LinearWarmupCosine(1.0, 0, 10, 1.5), Error);
}

// ---- clipping ----

// Norms are float32 sums of squares of <= 14 terms (relative error a few ulps, ~3e-7), bound 1e-6.
TEST(OptimClipGradNorm, MatchesTorch) {
  const json fx = load_optim_fixture();
  for (const json& c : fx["clip"]) {
    std::vector<Tensor> ps;
    for (const json& g : c["grads"]) {
      Tensor p = zeros(g["shape"].get<Shape>());
      p.requires_grad_(true);
      p.set_grad(tensor_of(g));
      ps.push_back(p);
    }
    const double ref = c["norm"].get<double>();
    EXPECT_NEAR(clip_grad_norm(ps, c["max_norm"].get<double>()), ref, 1e-6 * ref);
    for (size_t i = 0; i < ps.size(); ++i) expect_close(ps[i].grad(), c["clipped"][i], 1e-6, "clipped grad");
  }
}

TEST(OptimClipGradNorm, SkipsMissingGradsAndLeavesNonFiniteAlone) {
  Tensor a = full({4}, 3.0), b = zeros({2});
  a.requires_grad_(true);
  b.requires_grad_(true);
  a.set_grad(full({4}, 3.0));  // norm 6; b has no gradient
  EXPECT_NEAR(clip_grad_norm(std::vector<Tensor>{a, b}, 2.0), 6.0, 1e-6);
  EXPECT_NEAR(a.grad().to_vector<double>()[0], 3.0 * 2.0 / (6.0 + 1e-6), 1e-7);
  EXPECT_FALSE(b.grad().defined());

  a.set_grad(from_vector({1.0f, std::numeric_limits<float>::quiet_NaN(), 0.f, 0.f}, {4}));
  EXPECT_TRUE(std::isnan(clip_grad_norm(std::vector<Tensor>{a}, 1.0)));
  EXPECT_EQ(a.grad().to_vector<double>()[0], 1.0);
}

// ---- AdamW ----

// Params after each of 5 AdamW steps vs torch (float64). Our float32 params/moments round once per
// step (6e-8 relative) and the update m/(sqrt(v)+eps) is well conditioned (|m|/sqrt(v) <= ~1), so the
// error grows by ~1 ulp a step (observed <= 6e-8); 5e-7 also covers the clip coefficient's rounding.
TEST(OptimAdamW, MatchesTorchWithCosineScheduleAndClipping) {
  const json fx = load_optim_fixture()["adamw"];
  AdamW opt(make_params(fx["names"], fx["init"]), fixture_adamw_options(fx));
  const LinearWarmupCosine sched(fx["lr"].get<double>(), fx["warmup"].get<int64_t>(), fx["total"].get<int64_t>());
  for (int64_t s = 0; s < static_cast<int64_t>(fx["steps"].size()); ++s) {
    const json& ref = fx["steps"][s];
    EXPECT_NEAR(sched.lr(s), ref["lr"].get<double>(), 1e-15) << "step " << s;
    const double norm = adamw_fixture_step(opt, sched, fx, s);
    EXPECT_NEAR(norm, ref["pre_clip_norm"].get<double>(), 1e-6 * ref["pre_clip_norm"].get<double>()) << s;
    for (size_t i = 0; i < opt.params().size(); ++i)
      expect_close(opt.params()[i].second, ref["params"][i], 5e-7,
                   "adamw step " + std::to_string(s) + " " + opt.params()[i].first);
  }
  // Moments: 5 float32 lerps of clipped float32 gradients, a few ulps of max|g| (observed <= 6e-9).
  const OptimizerState st = opt.state_dict();
  EXPECT_EQ(st.step, 5);
  for (const auto& [name, p] : opt.params()) {
    expect_close(state_tensor(st, "exp_avg." + name), fx["final_state"][name]["exp_avg"], 5e-7, "exp_avg " + name);
    expect_close(state_tensor(st, "exp_avg_sq." + name), fx["final_state"][name]["exp_avg_sq"], 5e-7,
                 "exp_avg_sq " + name);
    EXPECT_EQ(state_tensor(st, "step." + name).item(), 5.0);
  }
}

// Resuming from a state_dict must reproduce the uninterrupted run bit for bit.
TEST(OptimAdamW, StateDictRoundTripIsBitExact) {
  const json fx = load_optim_fixture()["adamw"];
  const LinearWarmupCosine sched(fx["lr"].get<double>(), fx["warmup"].get<int64_t>(), fx["total"].get<int64_t>());
  AdamW run(make_params(fx["names"], fx["init"]), fixture_adamw_options(fx));
  for (int64_t s = 0; s < 3; ++s) adamw_fixture_step(run, sched, fx, s);
  const OptimizerState saved = clone_state(run.state_dict());
  NamedTensors saved_params;
  for (const auto& [n, p] : run.params()) {
    Tensor c = p.detach().clone();
    c.requires_grad_(true);
    saved_params.emplace_back(n, c);
  }
  for (int64_t s = 3; s < 5; ++s) adamw_fixture_step(run, sched, fx, s);

  AdamW resumed(saved_params, fixture_adamw_options(fx));
  resumed.load_state_dict(saved);
  EXPECT_EQ(resumed.step_count(), 3);
  for (int64_t s = 3; s < 5; ++s) adamw_fixture_step(resumed, sched, fx, s);
  for (size_t i = 0; i < run.params().size(); ++i)
    EXPECT_EQ(values(run.params()[i].second), values(resumed.params()[i].second)) << run.params()[i].first;
}

// bf16 params keep f32 moments. Each of the 5 steps rounds the params to bf16 (half-ulp 2^-9
// relative), so they track the f32 reference within ~5 * 2e-3 * |p|.
TEST(OptimAdamW, Bf16ParamsUseF32Moments) {
  const json fx = load_optim_fixture()["adamw"];
  AdamW opt(make_params(fx["names"], fx["init"], DType::BF16), fixture_adamw_options(fx));
  const LinearWarmupCosine sched(fx["lr"].get<double>(), fx["warmup"].get<int64_t>(), fx["total"].get<int64_t>());
  for (int64_t s = 0; s < 5; ++s) adamw_fixture_step(opt, sched, fx, s);
  const OptimizerState st = opt.state_dict();
  for (const auto& [name, p] : opt.params()) {
    EXPECT_EQ(p.dtype(), DType::BF16);
    EXPECT_EQ(state_tensor(st, "exp_avg." + name).dtype(), DType::F32);
    EXPECT_EQ(state_tensor(st, "exp_avg_sq." + name).dtype(), DType::F32);
  }
  for (size_t i = 0; i < opt.params().size(); ++i)
    expect_close(opt.params()[i].second, fx["steps"][4]["params"][i], 1e-2, "bf16 adamw " + opt.params()[i].first);
}

// Like torch, each parameter counts its own updates: one without a gradient is skipped entirely.
TEST(OptimAdamW, PerParameterStepsAndZeroGrad) {
  Tensor a = ones({3}), b = ones({2});
  a.requires_grad_(true);
  b.requires_grad_(true);
  AdamWOptions o;
  o.lr = 0.1;
  AdamW opt({{"a", a}, {"b", b}}, o);
  a.set_grad(ones({3}));
  opt.step();
  EXPECT_EQ(values(b), std::vector<float>({1.f, 1.f}));
  b.set_grad(ones({2}));
  opt.step();
  const OptimizerState st = opt.state_dict();
  EXPECT_EQ(st.step, 2);
  EXPECT_EQ(state_tensor(st, "step.a").item(), 2.0);
  EXPECT_EQ(state_tensor(st, "step.b").item(), 1.0);
  // First step of b: m/bc1 = g, v/bc2 = g^2, so the update is lr * g/(|g| + eps) plus decay lr*wd*p.
  EXPECT_NEAR(values(b)[0], 1.0 * (1 - 0.1 * 1e-2) - 0.1 / (1 + 1e-8), 1e-6);

  opt.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  const std::vector<float> before = values(a);
  opt.step();
  EXPECT_EQ(values(a), before);
}

TEST(OptimAdamW, RejectsBadParamsAndState) {
  Tensor m = ones({2, 3});
  m.requires_grad_(true);
  Tensor t = m.detach().transpose(0, 1);
  t.requires_grad_(true);
  EXPECT_THROW(AdamW({{"t", t}}, AdamWOptions{}), Error);  // non-contiguous
  EXPECT_THROW(AdamW({{"m", m}, {"m", m}}, AdamWOptions{}), Error);  // duplicate name

  AdamW opt({{"m", m}}, AdamWOptions{});
  OptimizerState bad{1, {{"exp_avg.nope", zeros({2, 3})}}};
  EXPECT_THROW(opt.load_state_dict(bad), Error);
  bad.tensors = {{"exp_avg.m", zeros({3, 2})}, {"exp_avg_sq.m", zeros({2, 3})}, {"step.m", scalar(1)}};
  EXPECT_THROW(opt.load_state_dict(bad), Error);  // shape mismatch
  bad.tensors = {{"exp_avg.m", zeros({2, 3})}};
  EXPECT_THROW(opt.load_state_dict(bad), Error);  // incomplete
  m.set_grad(ones({3}).reshape({1, 3}).expand({2, 3}));  // a non-contiguous gradient is accepted
  opt.step();
  EXPECT_LT(values(m)[0], 1.f);
}

// ---- SGD ----

// Three float32 steps of p -= lr * (momentum buffer): a few ulps (observed <= 7e-8), bound 3e-7.
TEST(OptimSGD, MatchesTorch) {
  const json fx = load_optim_fixture()["sgd"];
  for (const json& c : fx["configs"]) {
    SGDOptions o;
    o.lr = c["lr"].get<double>();
    o.momentum = c["momentum"].get<double>();
    o.weight_decay = c["weight_decay"].get<double>();
    o.nesterov = c["nesterov"].get<bool>();
    SGD opt(make_params(fx["names"], fx["init"]), o);
    for (size_t s = 0; s < fx["grads"].size(); ++s) {
      set_grads(opt.params(), fx["grads"][s]);
      opt.step();
      for (size_t i = 0; i < opt.params().size(); ++i)
        expect_close(opt.params()[i].second, c["params_after"][s][i], 3e-7,
                     std::string(o.nesterov ? "sgd nesterov" : "sgd") + " step " + std::to_string(s));
    }
  }
}

TEST(OptimSGD, StateDictRoundTripIsBitExact) {
  const json fx = load_optim_fixture()["sgd"];
  SGDOptions o;
  o.lr = 0.1;
  o.momentum = 0.9;
  SGD run(make_params(fx["names"], fx["init"]), o);
  for (size_t s = 0; s < 2; ++s) {
    set_grads(run.params(), fx["grads"][s]);
    run.step();
  }
  const OptimizerState saved = clone_state(run.state_dict());
  ASSERT_EQ(saved.tensors.size(), 2u);
  NamedTensors saved_params;
  for (const auto& [n, p] : run.params()) {
    Tensor c = p.detach().clone();
    c.requires_grad_(true);
    saved_params.emplace_back(n, c);
  }
  set_grads(run.params(), fx["grads"][2]);
  run.step();

  SGD resumed(saved_params, o);
  resumed.load_state_dict(saved);
  set_grads(resumed.params(), fx["grads"][2]);
  resumed.step();
  EXPECT_EQ(resumed.step_count(), 3);
  for (size_t i = 0; i < run.params().size(); ++i)
    EXPECT_EQ(values(run.params()[i].second), values(resumed.params()[i].second));
}

}  // namespace
}  // namespace lloco
