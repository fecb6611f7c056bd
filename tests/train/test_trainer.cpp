// lloco::train::train against a PyTorch loop with the same semantics (gradient accumulation, global
// norm clipping, HF cosine schedule with warmup, AdamW; tests/fixtures/gen_train_fixtures.py), and
// its checkpoints: a run stopped and resumed ends bit-identical to one that never stopped, metrics
// included; bad checkpoints fail naming the file and the tensor; a non-finite step is skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "core/optim.h"
#include "core/safetensors.h"
#include "tests/train/regression_fixture.h"
#include "train/trainer.h"

namespace lloco::train {
namespace {

namespace fs = std::filesystem;

using testing::Regression;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(::testing::TempDir()) / name;
  fs::remove_all(d);
  return d;
}

TEST(Trainer, MatchesPyTorchStepForStep) {
  Regression r;
  auto opt = r.optimizer();
  const TrainResult res = train(*opt, r.lr_at(), r.loss_fn(), r.options());
  EXPECT_EQ(res.first_step, 0);
  EXPECT_EQ(res.steps_done, r.steps);
  EXPECT_EQ(res.skipped_steps, 0);
  const std::vector<double> want_loss = r.fx.get("loss").to_vector<double>();
  ASSERT_EQ(res.losses.size(), want_loss.size());
  for (size_t s = 0; s < want_loss.size(); ++s) EXPECT_NEAR(res.losses[s], want_loss[s], 1e-12) << "step " << s;
  const std::vector<double> lr = r.fx.get("lr").to_vector<double>();
  for (int64_t s = 0; s < r.steps; ++s) EXPECT_NEAR(r.schedule.lr(s), lr[s], 1e-15) << "step " << s;
  const std::vector<double> got = r.W.to_vector<double>(), want = r.fx.get("W").select(0, r.steps - 1).to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "W[" << i << "]";
}

TEST(Trainer, StoppedAndResumedRunIsBitIdentical) {
  const fs::path straight = fresh_dir("lloco_train_straight"), split = fresh_dir("lloco_train_split");
  Regression a;
  auto oa = a.optimizer();
  train(*oa, a.lr_at(), a.loss_fn(), a.options(straight.string()));

  // The second run stops after 4 steps (checkpoint every 2), then a fresh process state resumes it.
  {
    Regression b;
    auto ob = b.optimizer();
    TrainOptions o = b.options(split.string());
    o.checkpoint_every = 2;
    o.stop_after = 4;
    const TrainResult first = train(*ob, b.lr_at(), b.loss_fn(), o);
    EXPECT_EQ(first.steps_done, 4);
  }
  // A crash after step 5's metrics but before its checkpoint: the resumed run redoes step 5.
  std::ofstream(split / "metrics.jsonl", std::ios::app) << "{\"step\": 5, \"loss\": 1}\n{\"step\": 6, \"lo";
  Regression c;
  auto oc = c.optimizer();
  const TrainResult second = train(*oc, c.lr_at(), c.loss_fn(), c.options(split.string()));
  EXPECT_EQ(second.first_step, 4);
  EXPECT_EQ(second.steps_done, c.steps);
  const std::vector<double> wa = a.W.to_vector<double>(), wc = c.W.to_vector<double>();
  ASSERT_EQ(wa.size(), wc.size());
  for (size_t i = 0; i < wa.size(); ++i) EXPECT_EQ(wa[i], wc[i]) << "W[" << i << "]";
  const OptimizerState sa = oa->state_dict(), sc = oc->state_dict();
  EXPECT_EQ(sa.step, sc.step);
  ASSERT_EQ(sa.tensors.size(), sc.tensors.size());
  for (size_t i = 0; i < sa.tensors.size(); ++i)
    EXPECT_EQ(sa.tensors[i].second.to_vector<double>(), sc.tensors[i].second.to_vector<double>())
        << sa.tensors[i].first;
  // Metrics: one record per step, in order, with the losses of the uninterrupted run (tokens/s differ).
  auto losses = [](const fs::path& dir) {
    std::vector<std::string> out;
    std::ifstream f(dir / "metrics.jsonl");
    for (std::string line; std::getline(f, line);) out.push_back(line.substr(0, line.find(",\"lr\"")));
    return out;
  };
  EXPECT_EQ(losses(split), losses(straight));
  EXPECT_EQ(losses(split).size(), static_cast<size_t>(c.steps));
  fs::remove_all(straight);
  fs::remove_all(split);
}

TEST(Trainer, BadCheckpointsFailNamingFileAndTensor) {
  const fs::path dir = fresh_dir("lloco_train_bad");
  fs::create_directories(dir);
  Regression r;
  auto opt = r.optimizer();
  const std::string path = (dir / "checkpoint.safetensors").string();
  auto expect_error = [&](const std::vector<std::string>& needles) {
    try {
      load_checkpoint(path, *opt);
      ADD_FAILURE() << "loaded";
    } catch (const Error& e) {
      for (const std::string& n : needles)
        EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "lacks '" << n << "': " << e.what();
    }
  };
  save_safetensors(path, {{"param/V", zeros({3, 4}, DType::F64)}}, {{"format", "lloco-train-1"}, {"step", "2"},
                                                                    {"optimizer_step", "2"}});
  expect_error({path, "param/W"});
  save_safetensors(path, {{"param/W", zeros({4, 3}, DType::F64)}}, {{"format", "lloco-train-1"}, {"step", "2"},
                                                                    {"optimizer_step", "2"}});
  expect_error({path, "param/W", "[4, 3]", "[3, 4]"});
  save_safetensors(path, {{"param/W", zeros({3, 4}, DType::F64)}}, {{"format", "other"}});
  expect_error({path, "format"});
  save_safetensors(path, {{"param/W", zeros({3, 4}, DType::F64)}}, {{"format", "lloco-train-1"}, {"step", "x2"},
                                                                    {"optimizer_step", "2"}});
  expect_error({path, "'step'", "x2"});
  fs::remove_all(dir);
}

TEST(Trainer, NonFiniteGradientSkipsTheStep) {
  Regression r;
  auto opt = r.optimizer();
  const std::vector<double> before = r.W.to_vector<double>();
  TrainOptions o = r.options();
  o.steps = 1;
  o.grad_accumulation = 1;
  const TrainResult res = train(*opt, r.lr_at(), [&](int64_t, int64_t) {
    return MicroBatchLoss{mul(sum(r.W), std::numeric_limits<double>::infinity()), 1};
  }, o);
  EXPECT_EQ(res.skipped_steps, 1);
  EXPECT_EQ(r.W.to_vector<double>(), before);
}

}  // namespace
}  // namespace lloco::train
