// The AutoCompressor training objective (compress/ac_training.h) against the PyTorch + PEFT restatement
// of AutoCompressors' SubstepTrainer in tests/fixtures/gen_compress_train_fixtures.py: loss and
// gradients with the softprompt detached between substeps (and, as a control the fixture must
// distinguish, without the detach); random segment plans; a short training run that lowers the loss
// with the base frozen; save -> AutoCompressor::load; a stopped-and-resumed run ending bit-identical.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "compress/ac_training.h"
#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "lora/peft_io.h"

namespace lloco::compress {
namespace {

namespace fs = std::filesystem;

const std::string kAcDir = std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac";
const std::string kLoraDir = std::string(LLOCO_FIXTURES_DIR) + "/compress/ac_train_lora";
const std::string kExpected = std::string(LLOCO_FIXTURES_DIR) + "/compress/ac_train_expected.safetensors";

std::vector<int64_t> ints(const Tensor& t) { return t.to_vector<int64_t>(); }

struct Grads {
  double loss = 0;
  std::vector<std::pair<std::string, Tensor>> named;  // "embed_summary" and PEFT weight names
};

// The objective and its gradients on the fixture's sequence, plan and PEFT LoRA.
Grads fixture_grads(const AcLossOptions& options) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const SafetensorsFile ex = load_safetensors(kExpected);
  models::LlamaModel model = ac.model();
  auto adapters = std::make_shared<lora::LoraAdapters>(lora::load_peft_adapters(model.config, {kLoraDir}));
  lora::attach(model, adapters, {0});
  Tensor summary = ac.embed_summary().clone();
  summary.requires_grad_(true);
  const std::vector<Tensor*> stacked = adapters->parameters();
  for (Tensor* p : stacked) p->requires_grad_(true);
  const std::vector<int64_t> ids64 = ints(ex.get("ids"));
  const SegmentPlan plan{ints(ex.get("segment_lengths")), ints(ex.get("substep_segments"))};
  const AcLoss l = autocompressor_loss(model, summary, ac.accumulate_summary(),
                                       std::vector<int32_t>(ids64.begin(), ids64.end()), plan, options);
  EXPECT_EQ(l.predicted_tokens, 14);  // 16 tokens, 2 substeps: each substep's first token is not predicted
  l.loss.backward();
  Grads g;
  g.loss = l.loss.item();
  g.named.emplace_back("embed_summary", summary.grad());
  const auto names = adapters->named_weights(0);  // the order of parameters()
  for (size_t i = 0; i < stacked.size(); ++i) g.named.emplace_back(names[i].first, stacked[i]->grad().select(0, 0));
  return g;
}

double relative_diff(const Tensor& got, const Tensor& want) {
  const DiffStats d = compare_tensors(got, want);
  return d.max_abs / std::max(d.max_ref, 1e-30);
}

void expect_matches(const Grads& got, const SafetensorsFile& ex, const std::string& tag) {
  SCOPED_TRACE(tag);
  EXPECT_NEAR(got.loss, ex.get("loss" + tag).item(), 1e-5);
  ASSERT_EQ(got.named.size(), 17u);  // embed_summary + 2 layers x 4 projections x (A, B)
  double worst = 0;
  for (const auto& [name, grad] : got.named) {
    ASSERT_TRUE(grad.defined()) << name << " has no gradient";
    const Tensor want = ex.get("grad" + tag + "." + name);
    ASSERT_EQ(shape_str(grad.shape()), shape_str(want.shape())) << name;
    const double rel = relative_diff(grad, want);
    EXPECT_LE(rel, 1e-4) << name;
    worst = std::max(worst, rel);
  }
  std::printf("%s: loss %.6f, worst gradient max|diff|/max|ref| %.2e\n", tag.empty() ? "detached" : tag.c_str(),
              got.loss, worst);
}

TEST(AcTraining, LossAndGradientsMatchThePyTorchSubstepTrainer) {
  const SafetensorsFile ex = load_safetensors(kExpected);
  const Grads detached = fixture_grads({});
  expect_matches(detached, ex, "");
  // The fixture tells the detach apart: without it the gradients reach substep 1 from substep 2's loss.
  for (const char* name : {"embed_summary", "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"}) {
    const std::string n = name;
    EXPECT_GT(relative_diff(ex.get("grad." + n), ex.get("grad_nodetach." + n)), 1e-2) << n;
  }
  AcLossOptions full;
  full.detach_between_substeps = false;
  expect_matches(fixture_grads(full), ex, "_nodetach");
  // Backpropagating finished substeps early (the memory path train_autocompressor takes) changes nothing.
  AcLossOptions early;
  early.early_backward_scale = 1.0;
  const Grads e = fixture_grads(early);
  EXPECT_NEAR(e.loss, detached.loss, 1e-6);
  for (size_t i = 0; i < e.named.size(); ++i)
    EXPECT_LE(relative_diff(e.named[i].second, detached.named[i].second), 1e-6) << e.named[i].first;
}

TEST(AcTraining, RandomPlansFollowTheRecipe) {
  for (const auto& [n, substeps, k] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {6144, 2, 2}, {6145, 2, 2}, {100, 3, 4}, {10, 2, 2}, {7, 1, 1}, {33, 1, 5}}) {
    SCOPED_TRACE(std::to_string(n) + " tokens, " + std::to_string(substeps) + " x " + std::to_string(k));
    for (uint64_t seed : {0ull, 1ull, 77ull}) {
      const SegmentPlan p = random_segment_plan(n, substeps, k, seed);
      ASSERT_EQ(p.lengths.size(), static_cast<size_t>(substeps * k));
      EXPECT_EQ(p.substep_segments, std::vector<int64_t>(static_cast<size_t>(substeps), k));
      EXPECT_EQ(p.total_tokens(), n);
      for (int64_t len : p.lengths) EXPECT_GE(len, 2);
      int64_t at = 0;
      for (int64_t s = 0; s < substeps; ++s) {  // substep s ends at floor((s + 1) n / substeps)
        for (int64_t c = 0; c < k; ++c) at += p.lengths[static_cast<size_t>(s * k + c)];
        EXPECT_EQ(at, (s + 1) * n / substeps) << "substep " << s;
      }
      EXPECT_EQ(random_segment_plan(n, substeps, k, seed).lengths, p.lengths) << "not deterministic";
    }
  }
  // Breakpoints are random: 6144 tokens over a few seeds give several different first segments.
  std::vector<int64_t> firsts;
  for (uint64_t seed = 0; seed < 8; ++seed) firsts.push_back(random_segment_plan(6144, 2, 2, seed).lengths[0]);
  std::sort(firsts.begin(), firsts.end());
  EXPECT_GE(std::unique(firsts.begin(), firsts.end()) - firsts.begin(), 6);
  EXPECT_THROW(random_segment_plan(9, 2, 2, 0), Error);  // a 4-token substep cannot hold 2 segments + 1 cut
  EXPECT_THROW((SegmentPlan{{3, 5}, {1}}.validate(8)), Error);  // substeps leave segment 1 out
  EXPECT_THROW((SegmentPlan{{3, 5}, {2}}.validate(9)), Error);  // lengths do not cover the sequence
  EXPECT_THROW((SegmentPlan{{1, 5}, {1, 1}}.validate(6)), Error);  // a one-token substep predicts nothing
}

// Four sequences of repeated patterns: summaries of earlier segments make later ones predictable.
std::vector<std::vector<int32_t>> repeated_corpus() {
  std::vector<std::vector<int32_t>> out;
  for (int32_t s = 0; s < 4; ++s) {
    std::vector<int32_t> seq;
    for (int32_t i = 0; i < 24; ++i) seq.push_back(3 + (s * 7 + (i % (3 + s)) * 5) % 60);
    out.push_back(seq);
  }
  return out;
}

// The fixture encoder with its head scaled up: the tiny N(0, 0.02) head after a final RMSNorm moves
// logits by < 1, leaving a LoRA on q/k/v/o little room to learn.
AutoCompressor scaled_head_encoder() {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  models::LlamaModel m = ac.model();
  m.lm_head = mul(m.lm_head, 30.0);
  return AutoCompressor(m, ac.embed_summary(), ac.accumulate_summary());
}

double corpus_loss(const AutoCompressor& ac, const std::vector<std::vector<int32_t>>& corpus) {
  NoGradGuard no_grad;
  double total = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const SegmentPlan plan = random_segment_plan(static_cast<int64_t>(corpus[i].size()), 2, 2, 1000 + i);
    total += autocompressor_loss(ac.model(), ac.embed_summary(), ac.accumulate_summary(), corpus[i], plan).loss.item();
  }
  return total / static_cast<double>(corpus.size());
}

AcTrainOptions small_run() {
  AcTrainOptions o;
  o.loop.steps = 30;
  o.loop.grad_accumulation = 2;
  o.loop.quiet = true;
  o.lr = 1e-2;
  o.schedule = "constant";
  o.warmup_steps = 0;
  o.lora.rank = 4;
  return o;
}

TEST(AcTraining, TrainingLowersTheLossAndSavesALoadableEncoder) {
  const AutoCompressor base = scaled_head_encoder();
  const std::vector<std::vector<int32_t>> corpus = repeated_corpus();
  std::vector<Tensor> frozen;
  for (const auto& [name, p] : base.model().named_parameters()) frozen.push_back(p.clone());
  const Tensor summary_before = base.embed_summary().clone();
  const double before = corpus_loss(base, corpus);
  const AcTrainResult r = train_autocompressor(base, corpus, small_run());
  ASSERT_EQ(r.train.losses.size(), 30u);
  const double after = corpus_loss(r.encoder, corpus);
  std::printf("fixed-plan corpus loss %.3f -> %.3f (train losses %.3f -> %.3f)\n", before, after, r.train.losses.front(),
              r.train.losses.back());
  EXPECT_LT(after, 0.7 * before);
  size_t i = 0;
  for (const auto& [name, p] : base.model().named_parameters()) {
    EXPECT_EQ(compare_tensors(p, frozen[i++]).max_abs, 0.0) << name << ": the base changed";
    EXPECT_FALSE(p.requires_grad()) << name;
  }
  EXPECT_EQ(compare_tensors(base.embed_summary(), summary_before).max_abs, 0.0);
  EXPECT_GT(compare_tensors(r.encoder.embed_summary(), summary_before).max_abs, 1e-3) << "embed_summary did not train";
  EXPECT_GT(compare_tensors(r.encoder.model().layers[0].q_proj, base.model().layers[0].q_proj).max_abs, 1e-4) << "no LoRA merged into q_proj";
  EXPECT_FALSE(r.encoder.model().projection_hook) << "the released encoder is LoRA-merged";

  const fs::path dir = fs::path(::testing::TempDir()) / "lloco_ac_trained";
  fs::remove_all(dir);
  save_autocompressor(r.encoder, dir.string());
  const AutoCompressor loaded = AutoCompressor::load(dir.string());
  EXPECT_EQ(loaded.summary_length(), 4);
  EXPECT_TRUE(loaded.accumulate_summary());
  CompressOptions co;
  co.segment_length = 5;
  EXPECT_EQ(compare_tensors(loaded.compress(corpus[1], co), r.encoder.compress(corpus[1], co)).max_abs, 0.0);
  fs::remove_all(dir);
}

TEST(AcTraining, ResumedRunWithDropoutIsBitIdentical) {
  const AutoCompressor base = scaled_head_encoder();
  const std::vector<std::vector<int32_t>> corpus = repeated_corpus();
  auto run = [&](const fs::path& dir, int64_t stop_after, double dropout = 0.05) {
    AcTrainOptions o = small_run();
    o.loop.steps = 6;
    o.loop.checkpoint_every = 2;
    o.loop.stop_after = stop_after;
    o.loop.run_dir = dir.string();
    o.lora.dropout = dropout;  // the recipe's 0.05: masks must replay exactly after a resume
    return train_autocompressor(base, corpus, o).encoder;
  };
  auto max_diff = [](const AutoCompressor& a, const AutoCompressor& b) {
    double d = compare_tensors(a.embed_summary(), b.embed_summary()).max_abs;
    const auto pa = a.model().named_parameters(), pb = b.model().named_parameters();
    for (size_t i = 0; i < pa.size(); ++i) d = std::max(d, compare_tensors(pa[i].second, pb[i].second).max_abs);
    return d;
  };
  const fs::path a = fs::path(::testing::TempDir()) / "lloco_ac_resume_a";
  const fs::path b = fs::path(::testing::TempDir()) / "lloco_ac_resume_b";
  const fs::path c = fs::path(::testing::TempDir()) / "lloco_ac_resume_c";
  for (const fs::path& d : {a, b, c}) fs::remove_all(d);
  const AutoCompressor straight = run(a, -1);
  run(b, 4);
  EXPECT_EQ(max_diff(straight, run(b, -1)), 0.0);
  EXPECT_GT(max_diff(straight, run(c, -1, 0.0)), 1e-5) << "the LoRA dropout had no effect";
  for (const fs::path& d : {a, b, c}) fs::remove_all(d);
}

TEST(AcTraining, RejectsSequencesTooShortForThePlan) {
  const AutoCompressor base = AutoCompressor::load(kAcDir);
  try {
    train_autocompressor(base, {std::vector<int32_t>(20, 5), std::vector<int32_t>(9, 5)}, small_run());
    ADD_FAILURE() << "trained";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const char* needle : {"train_autocompressor", "sequence 1", "9 tokens", ">= 10"})
      EXPECT_NE(msg.find(needle), std::string::npos) << "lacks '" << needle << "': " << msg;
  }
}

}  // namespace
}  // namespace lloco::compress
