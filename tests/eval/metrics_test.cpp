// Metric parity with the Python reference implementations (tests/fixtures/gen_eval_fixtures.py):
// SQuAD/LongBench normalisation and F1/EM, LLoCO's QuALITY and HotpotQA rules, rouge-score
// (with and without the Porter stemmer), SCROLLS aggregation and LongBench's `rouge` ROUGE-L.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "eval/metrics.h"
#include "eval/porter.h"
#include "eval/rouge.h"
#include "eval/scoring.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

using testing::parity_fixture;
constexpr double kTol = 1e-6;

std::vector<std::string> refs_of(const nlohmann::json& c) { return c.at("refs").get<std::vector<std::string>>(); }

std::string label(size_t i, const nlohmann::json& c) {
  return "case " + std::to_string(i) + " pred=" + c.at("pred").dump().substr(0, 120);
}

TEST(MetricParity, FixtureIsLargeAndVaried) {
  const auto& f = parity_fixture();
  EXPECT_GE(f.at("cases").size(), 300u);
  EXPECT_GE(f.at("stems").size(), 300u);
}

TEST(MetricParity, NormalizedAnswerF1AndExactMatch) {
  const auto& cases = parity_fixture().at("cases");
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const std::string pred = c.at("pred");
    const auto refs = refs_of(c);
    EXPECT_EQ(normalize_answer(pred), c.at("normalized").get<std::string>()) << label(i, c);
    EXPECT_NEAR(max_token_f1(pred, refs), c.at("f1").get<double>(), kTol) << label(i, c);
    EXPECT_NEAR(max_exact_match(pred, refs), c.at("em").get<double>(), kTol) << label(i, c);
    EXPECT_NEAR(hotpot_f1(pred, refs.at(0)), c.at("hotpot_f1").get<double>(), kTol) << label(i, c);
  }
}

TEST(MetricParity, QualityFirstLetter) {
  const auto& cases = parity_fixture().at("cases");
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const char gold = c.at("gold_letter").get<std::string>()[0];
    EXPECT_EQ(quality_correct(c.at("pred").get<std::string>(), gold, true), c.at("quality_strip").get<bool>()) << label(i, c);
    EXPECT_EQ(quality_correct(c.at("pred").get<std::string>(), gold, false), c.at("quality_raw").get<bool>()) << label(i, c);
  }
  for (const auto& q : parity_fixture().at("quality")) {
    const std::string pred = q.at("pred");
    const char gold = q.at("gold").get<std::string>()[0];
    EXPECT_EQ(quality_correct(pred, gold, true), q.at("strip").get<bool>()) << q.dump();
    EXPECT_EQ(quality_correct(pred, gold, false), q.at("raw").get<bool>()) << q.dump();
  }
}

TEST(MetricParity, RougeScoreTokenizer) {
  const auto& cases = parity_fixture().at("cases");
  size_t checked = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    if (!c.contains("rouge_tokens")) continue;
    EXPECT_EQ(rouge_tokenize(c.at("pred").get<std::string>()), c.at("rouge_tokens").get<std::vector<std::string>>()) << label(i, c);
    ++checked;
  }
  EXPECT_GT(checked, 250u);
}

TEST(MetricParity, ScrollsRougeMaxOverReferences) {
  const auto& cases = parity_fixture().at("cases");
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const std::string pred = c.at("pred");
    for (bool stem : {false, true}) {
      const auto& want = c.at(stem ? "rouge_stem" : "rouge");
      const ScrollsRouge got = scrolls_rouge(pred, refs_of(c), stem);
      EXPECT_NEAR(got.rouge1, want.at("rouge1").get<double>(), kTol) << label(i, c) << " stem=" << stem;
      EXPECT_NEAR(got.rouge2, want.at("rouge2").get<double>(), kTol) << label(i, c) << " stem=" << stem;
      EXPECT_NEAR(got.rougeL, want.at("rougeL").get<double>(), kTol) << label(i, c) << " stem=" << stem;
    }
  }
}

TEST(MetricParity, LongBenchRougeL) {
  const auto& cases = parity_fixture().at("cases");
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    double best = 0;
    for (const auto& r : refs_of(c)) best = std::max(best, longbench_rouge_l(c.at("pred").get<std::string>(), r));
    EXPECT_NEAR(best, c.at("longbench_rouge_l").get<double>(), kTol) << label(i, c);
  }
}

TEST(MetricParity, PorterStemmerMatchesNltk) {
  for (const auto& [word, stem] : parity_fixture().at("stems").items())
    EXPECT_EQ(porter_stem(word), stem.get<std::string>()) << word;
}

TEST(MetricParity, ScrollsCorpusGeometricMean) {
  const auto& f = parity_fixture();
  std::vector<Example> examples;
  Predictions preds;
  const auto& cases = f.at("cases");
  for (size_t i = 0; i < cases.size(); ++i) {
    Example ex;
    ex.id = "c" + std::to_string(i);
    ex.answers = refs_of(cases[i]);
    preds.by_id[ex.id] = cases[i].at("pred").get<std::string>();
    examples.push_back(std::move(ex));
  }
  const auto& want = f.at("scrolls_corpus");
  ASSERT_EQ(examples.size(), want.at("n").get<size_t>());
  const DatasetScore s = score_dataset("qmsum", examples, preds, Metric::kRouge);
  EXPECT_NEAR(s.components.at("rouge1"), want.at("rouge1").get<double>(), kTol);
  EXPECT_NEAR(s.components.at("rouge2"), want.at("rouge2").get<double>(), kTol);
  EXPECT_NEAR(s.components.at("rougeL"), want.at("rougeL").get<double>(), kTol);
  EXPECT_NEAR(s.score, want.at("geometric_mean").get<double>(), kTol);
}

TEST(Metrics, HandChecked) {
  EXPECT_EQ(normalize_answer("The  Cat, sat!"), "cat sat");
  EXPECT_DOUBLE_EQ(token_f1("", ""), 0.0);  // SQuAD: no shared token -> 0, even for two empties
  EXPECT_DOUBLE_EQ(exact_match("", "the"), 1.0);
  EXPECT_DOUBLE_EQ(hotpot_f1("Tim Burton. Johnny Depp", "Tim Burton"), 1.0);
  EXPECT_TRUE(quality_correct(" B. Paris", 'B'));
  EXPECT_FALSE(quality_correct(" B. Paris", 'B', false));
  EXPECT_FALSE(quality_correct("", 'A'));
  EXPECT_NEAR(rouge_geometric_mean(0.5, 0.25, 0.5), 0.39685026299204984, 1e-12);
  EXPECT_EQ(longbench_first_line("\n\nfirst\nsecond"), "first");
}

}  // namespace
}  // namespace lloco::eval
