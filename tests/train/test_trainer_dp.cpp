// Data-parallel lloco::train::train: ranks forked on this machine and joined by the socket group
// must reproduce PyTorch's one-process loop (tests/fixtures/gen_train_fixtures.py) step for step,
// stay bit-identical to each other, write run files from rank 0 only, and resume exactly.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "tests/train/fork_ranks.h"
#include "tests/train/regression_fixture.h"
#include "train/trainer.h"

namespace lloco::train {
namespace {

namespace fs = std::filesystem;
using testing::Regression;
using testing::require;
using testing::run_ranks;

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::path(::testing::TempDir()) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Wraps a communicator the trainer shares without owning it (the test's run_ranks owns it).
std::shared_ptr<Communicator> borrowed(Communicator& comm) {
  return std::shared_ptr<Communicator>(&comm, [](Communicator*) {});
}

void write_doubles(const fs::path& path, const std::vector<double>& v) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(v.data()),
                                             static_cast<std::streamsize>(v.size() * sizeof(double)));
}

std::vector<double> read_doubles(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<double> v(bytes.size() / sizeof(double));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(double));
  return v;
}

std::vector<int> all_ok(int world) { return std::vector<int>(static_cast<size_t>(world), 0); }

// Each rank saves its losses followed by its final W into out/rank-R.bin.
void train_rank(int rank, Communicator& comm, const fs::path& out, const std::string& run_dir, int64_t stop_after,
                int64_t checkpoint_every) {
  Regression r;
  // Rank 1 starts from other values: the trainer must broadcast rank 0's before the first step.
  if (rank != 0) copy_(r.W.detach(), full(r.W.shape(), 7.0, r.W.dtype()));
  auto opt = r.optimizer();
  TrainOptions o = r.options(run_dir);
  o.comm = borrowed(comm);
  o.stop_after = stop_after;
  o.checkpoint_every = checkpoint_every;
  const TrainResult res = train(*opt, r.lr_at(), r.loss_fn(), o);
  std::vector<double> v = res.losses;
  for (double w : r.W.to_vector<double>()) v.push_back(w);
  write_doubles(out / ("rank-" + std::to_string(rank) + ".bin"), v);
}

TEST(TrainerDataParallel, TwoRanksMatchPyTorchAndEachOther) {
  const fs::path dir = fresh_dir("lloco_dp_match");
  Regression ref;
  ASSERT_EQ(ref.accum, 2) << "the fixture's accumulation is what the two ranks share";
  const auto codes = run_ranks(2, dir / "group", [&](int rank, Communicator& comm) {
    train_rank(rank, comm, dir, "", -1, 0);
  });
  ASSERT_EQ(codes, all_ok(2));
  const std::vector<double> r0 = read_doubles(dir / "rank-0.bin"), r1 = read_doubles(dir / "rank-1.bin");
  const std::vector<double> want_loss = ref.fx.get("loss").to_vector<double>();
  const std::vector<double> want_w = ref.fx.get("W").select(0, ref.steps - 1).to_vector<double>();
  ASSERT_EQ(r0.size(), want_loss.size() + want_w.size());
  EXPECT_EQ(r0, r1) << "replicas diverged";
  for (size_t s = 0; s < want_loss.size(); ++s) EXPECT_NEAR(r0[s], want_loss[s], 1e-12) << "step " << s;
  for (size_t i = 0; i < want_w.size(); ++i) EXPECT_NEAR(r0[want_loss.size() + i], want_w[i], 1e-12) << "W[" << i << "]";
  fs::remove_all(dir);
}

TEST(TrainerDataParallel, StoppedAndResumedEqualsStraightAndOnlyRankZeroWrites) {
  const fs::path dir = fresh_dir("lloco_dp_resume");
  const fs::path straight = dir / "straight", split = dir / "split";
  ASSERT_EQ(run_ranks(2, dir / "g1", [&](int rank, Communicator& comm) {
              train_rank(rank, comm, straight, straight.string(), -1, 0);
            }),
            all_ok(2));
  ASSERT_EQ(run_ranks(2, dir / "g2", [&](int rank, Communicator& comm) {
              train_rank(rank, comm, split, split.string(), 3, 1);
            }),
            all_ok(2));
  ASSERT_EQ(run_ranks(2, dir / "g3", [&](int rank, Communicator& comm) {
              train_rank(rank, comm, split, split.string(), -1, 1);
            }),
            all_ok(2));
  Regression ref;
  const size_t nw = static_cast<size_t>(ref.W.numel());
  const std::vector<double> a = read_doubles(straight / "rank-0.bin"), b0 = read_doubles(split / "rank-0.bin"),
                            b1 = read_doubles(split / "rank-1.bin");
  ASSERT_GE(a.size(), nw);
  ASSERT_GE(b0.size(), nw);
  const std::vector<double> wa(a.end() - static_cast<long>(nw), a.end()), wb(b0.end() - static_cast<long>(nw), b0.end());
  EXPECT_EQ(wa, wb) << "a resumed two-rank run must end bit-identical to an uninterrupted one";
  EXPECT_EQ(b0, b1);
  // One metrics record per step (rank 0's), not one per rank.
  std::ifstream f(split / "metrics.jsonl");
  int64_t lines = 0;
  for (std::string line; std::getline(f, line);) ++lines;
  EXPECT_EQ(lines, ref.steps);
  fs::remove_all(dir);
}

TEST(TrainerDataParallel, ParameterOnlyOneRankTouchesStaysInStep) {
  // `extra` enters the loss of odd micro-batches only, so rank 0 never gets a gradient for it. The
  // ranks must still agree, and match one process running both micro-batches.
  auto run = [](Communicator* comm) {
    Regression r;
    Tensor extra = full({3}, 0.5, r.W.dtype()).requires_grad_(true);
    AdamWOptions ao;
    ao.lr = 0.05;
    AdamW opt(NamedTensors{{"W", r.W}, {"extra", extra}}, ao);
    const LossFn base = r.loss_fn();
    const LossFn loss = [&](int64_t s, int64_t m) {
      MicroBatchLoss l = base(s, m);
      if (m % 2 == 1) l.loss = add(l.loss, sum(mul(extra, extra)));
      return l;
    };
    TrainOptions o = r.options();
    if (comm) o.comm = borrowed(*comm);
    train(opt, r.lr_at(), loss, o);
    std::vector<double> v = r.W.to_vector<double>();
    for (double x : extra.to_vector<double>()) v.push_back(x);
    return v;
  };
  const std::vector<double> single = run(nullptr);
  const fs::path dir = fresh_dir("lloco_dp_partial");
  ASSERT_EQ(run_ranks(2, dir / "g", [&](int rank, Communicator& comm) {
              write_doubles(dir / ("rank-" + std::to_string(rank) + ".bin"), run(&comm));
            }),
            all_ok(2));
  const std::vector<double> r0 = read_doubles(dir / "rank-0.bin"), r1 = read_doubles(dir / "rank-1.bin");
  EXPECT_EQ(r0, r1);
  ASSERT_EQ(r0.size(), single.size());
  for (size_t i = 0; i < single.size(); ++i) EXPECT_NEAR(r0[i], single[i], 1e-12) << "value " << i;
  EXPECT_NE(single.back(), 0.5) << "the extra parameter must have trained";
  fs::remove_all(dir);
}

TEST(TrainerDataParallel, RejectsAccumulationNotDividedByRanksAndUnsharedRunDirs) {
  const fs::path dir = fresh_dir("lloco_dp_errors");
  const auto codes = run_ranks(3, dir / "g", [&](int, Communicator& comm) {
    Regression r;
    auto opt = r.optimizer();
    TrainOptions o = r.options();
    o.comm = borrowed(comm);
    try {
      train(*opt, r.lr_at(), r.loss_fn(), o);
    } catch (const Error& e) {
      const std::string msg = e.what();
      require(msg.find("grad_accumulation 2") != std::string::npos && msg.find("world size 3") != std::string::npos,
              "message names both values: " + msg);
      return;
    }
    require(false, "3 ranks with grad_accumulation 2 must be rejected");
  });
  EXPECT_EQ(codes, all_ok(3));

  // Rank 1 sees a checkpoint at step 3 in its own directory, rank 0 none: a clear error on both.
  {
    Regression r;
    auto opt = r.optimizer();
    TrainOptions o = r.options((dir / "own1").string());
    o.stop_after = 3;
    o.checkpoint_every = 1;
    train(*opt, r.lr_at(), r.loss_fn(), o);
  }
  const auto mismatch = run_ranks(2, dir / "g-mismatch", [&](int rank, Communicator& comm) {
    const std::string run_dir = (dir / (rank == 1 ? "own1" : "own0")).string();
    try {
      train_rank(rank, comm, dir, run_dir, -1, 0);
    } catch (const Error& e) {
      const std::string msg = e.what();
      require(msg.find("rank 1 resumes at step 3, rank 0 at step 0") != std::string::npos, "message: " + msg);
      return;
    }
    require(false, "ranks resuming at different steps must be rejected");
  });
  EXPECT_EQ(mismatch, all_ok(2));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lloco::train
