// The `lloco eval` logic: reading, id checks, scoring with the dataset's metric, and the atomically
// written JSON/Markdown/CSV reports that accumulate one row per dataset.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "eval/readers.h"
#include "eval/error.h"
#include "eval/needle.h"
#include "eval/runner.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

using testing::shared_data;
using testing::slurp;
using testing::TempDir;

// Predictions = the reference itself for every k-th example, a wrong answer otherwise.
std::string oracle_predictions(const DatasetFile& f, size_t every, bool jsonl) {
  nlohmann::json obj = nlohmann::json::object();
  std::string lines;
  for (size_t i = 0; i < f.examples.size(); ++i) {
    const auto& ex = f.examples[i];
    const std::string pred = i % every == 0 ? ex.answers[0] : "zzz qqq";
    obj[ex.id] = pred;
    lines += nlohmann::json{{"id", ex.id}, {"prediction", pred}}.dump() + "\n";
  }
  return jsonl ? lines : obj.dump();
}

TEST(RunEval, QualityAccuracyOnLEval) {
  TempDir dir;
  const DatasetFile f = read_dataset(shared_data("leval/quality.jsonl"));
  EvalRequest req;
  req.dataset = "quality";
  req.data = shared_data("leval/quality.jsonl");
  req.predictions = dir.file("preds.json", oracle_predictions(f, 2, false));
  req.out_dir = dir.path("out");
  const EvalOutcome out = run_eval(req);
  EXPECT_EQ(out.score.n, 202u);
  EXPECT_NEAR(out.score.score, 100.0 * 101 / 202, 1e-9);
  EXPECT_EQ(out.row.metric, "em");
  EXPECT_TRUE(std::filesystem::exists(dir.path("out/results.json")));
  EXPECT_TRUE(std::filesystem::exists(dir.path("out/per_example/quality.jsonl")));
  for (const auto& p : std::filesystem::directory_iterator(dir.path("out")))
    EXPECT_EQ(p.path().string().find(".tmp."), std::string::npos) << "temporary file left behind";
}

TEST(RunEval, QMSumRougeAndAccumulatedTables) {
  TempDir dir;
  const DatasetFile qm = read_dataset(shared_data("qmsum/val.jsonl"));
  EvalRequest req;
  req.dataset = "qmsum";
  req.data = shared_data("qmsum/val.jsonl");
  req.predictions = dir.file("qmsum.jsonl", oracle_predictions(qm, 1, true));
  req.out_dir = dir.path("out");
  const EvalOutcome a = run_eval(req);
  EXPECT_NEAR(a.score.score, 100.0, 1e-9);
  EXPECT_NEAR(a.row.components.at("rouge2"), 100.0, 1e-9);

  // A second dataset into the same directory adds a row; the paper's NarrativeQA number is shown.
  dir.file("nqa/documents.csv",
           "document_id,set,kind,story_url,story_file_size,wiki_url,wiki_title,story_word_count,story_start,story_end\n"
           "d1,valid,movie,u,1,w,T,5,s,e\n");
  dir.file("nqa/qaps.csv",
           "document_id,set,question,answer1,answer2,question_tokenized,answer1_tokenized,answer2_tokenized\n"
           "d1,valid,Who?,The butler,A servant,q,a,b\nd1,valid,Where?,Paris,France,q,a,b\n");
  EvalRequest nqa;
  nqa.dataset = "narrative_qa";
  nqa.data = dir.path("nqa");
  nqa.predictions = dir.file("nqa.json", R"({"d1:0": "the Butler!", "d1:1": "in France"})");
  nqa.out_dir = dir.path("out");
  const EvalOutcome b = run_eval(nqa);
  EXPECT_NEAR(b.score.score, (100.0 + 100.0 * 2 * 0.5 * 1 / 1.5) / 2, 1e-9);

  const auto results = nlohmann::json::parse(slurp(dir.path("out/results.json")));
  ASSERT_EQ(results.at("rows").size(), 2u);
  EXPECT_EQ(results["rows"][0]["dataset"], "qmsum");
  EXPECT_EQ(results["rows"][1]["dataset"], "narrativeqa");
  EXPECT_EQ(results["rows"][1]["paper_lloco"], 28.34);
  EXPECT_TRUE(results["rows"][0]["paper_lloco"].is_null());
  EXPECT_TRUE(results["average"]["paper_lloco"].is_null());
  EXPECT_NEAR(results["average"]["score"].get<double>(), (a.score.score + b.score.score) / 2, 1e-9);
  const std::string md = slurp(dir.path("out/results.md"));
  EXPECT_NE(md.find("| NarrativeQA | f1 | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("28.34"), std::string::npos);
  EXPECT_NE(md.find("| **Average** |"), std::string::npos);
  const std::string csv = slurp(dir.path("out/results.csv"));
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "dataset,metric,n,ours,paper_lloco");
  EXPECT_NE(csv.find("narrativeqa,f1,2,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\naverage,,,"), std::string::npos) << csv;

  // Re-running a dataset replaces its row.
  run_eval(req);
  EXPECT_EQ(nlohmann::json::parse(slurp(dir.path("out/results.json"))).at("rows").size(), 2u);
}

TEST(RunEval, MissingAndExtraIdsAreNamed) {
  TempDir dir;
  EvalRequest req;
  req.dataset = "hotpotqa";
  req.data = shared_data("hotpotqa/hotpot_dev_distractor_v1.first53.json");
  const DatasetFile f = read_dataset(req.data);
  nlohmann::json preds = nlohmann::json::object();
  for (size_t i = 2; i < f.examples.size(); ++i) preds[f.examples[i].id] = "x";
  preds["bogus-id"] = "y";
  req.predictions = dir.file("p.json", preds.dump());
  try {
    run_eval(req);
    ADD_FAILURE() << "expected an id mismatch error";
  } catch (const EvalError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("2 missing ("), std::string::npos) << msg;
    EXPECT_NE(msg.find(f.examples[0].id), std::string::npos) << msg;
    EXPECT_NE(msg.find("1 extra ('bogus-id')"), std::string::npos) << msg;
  }
}

TEST(RunEval, HotpotFirstSentenceRule) {
  TempDir dir;
  EvalRequest req;
  req.dataset = "hotpotqa";
  req.data = shared_data("hotpotqa/hotpot_dev_distractor_v1.first53.json");
  const DatasetFile f = read_dataset(req.data);
  nlohmann::json preds = nlohmann::json::object();
  for (const auto& ex : f.examples) preds[ex.id] = ex.answers[0] + ". Some explanation that would lower F1.";
  req.predictions = dir.file("p.json", preds.dump());
  const EvalOutcome out = run_eval(req);
  // Answers containing '.' themselves (e.g. initials) are cut too, exactly as LLoCO does.
  EXPECT_GT(out.score.score, 90.0);
  EXPECT_EQ(out.row.metric, "hotpot_f1");
}

TEST(RunEval, DatasetMismatchAndUnknownDataset) {
  TempDir dir;
  EvalRequest req;
  req.dataset = "qasper";
  req.data = shared_data("leval/quality.jsonl");
  req.predictions = dir.file("p.json", "{}");
  try {
    run_eval(req);
    ADD_FAILURE();
  } catch (const EvalError& e) {
    EXPECT_NE(std::string(e.what()).find("holds no examples of dataset 'qasper' (it holds: quality)"), std::string::npos) << e.what();
  }
  req.dataset = "mystery";
  EXPECT_THROW(run_eval(req), EvalError);
}

TEST(RunEval, LongBenchSubsetMetric) {
  TempDir dir;
  EvalRequest req;
  req.dataset = "longbench";
  req.data = dir.file("samsum.jsonl",
                      R"({"input":"d","context":"c","answers":["Amy will call Bob."],"length":1,"dataset":"samsum","language":"en","all_classes":null,"_id":"s1"})" "\n"
                      R"({"input":"d","context":"c","answers":["They meet at noon."],"length":1,"dataset":"samsum","language":"en","all_classes":null,"_id":"s2"})" "\n");
  req.predictions = dir.file("p.jsonl", "{\"id\":\"s1\",\"prediction\":\"\\nAmy will call Bob.\\nignored line\"}\n"
                                        "{\"id\":\"s2\",\"prediction\":\"\"}\n");
  const EvalOutcome out = run_eval(req);
  EXPECT_EQ(out.row.dataset, "longbench/samsum");
  EXPECT_EQ(out.row.metric, "rouge_l");
  EXPECT_NEAR(out.score.score, 100.0 * (2.0 * (1.0 / (2.0 + 1e-8))) / 2, 1e-6);
}

TEST(RunEval, SkippedLinesAreReported) {
  TempDir dir;
  std::ifstream in(shared_data("qmsum/val.jsonl"));
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  EvalRequest req;
  req.dataset = "qmsum";
  req.data = dir.file("val.jsonl", first + "\n{not json\n" + second + "\n");
  req.read.skip_bad = true;
  const DatasetFile f = read_qmsum(req.data, req.read);
  req.predictions = dir.file("p.json", oracle_predictions(f, 1, false));
  req.out_dir = dir.path("out");
  const EvalOutcome out = run_eval(req);
  EXPECT_EQ(out.skipped, 1u);
  EXPECT_EQ(nlohmann::json::parse(slurp(dir.path("out/results.json")))["rows"][0]["skipped"], 1);
}

TEST(RunEval, NeedleScoresAndWritesTheGrid) {
  TempDir dir;
  // Two lengths x two depths, one case each; the predictions find the needle in three of them.
  std::vector<NeedleCase> cases;
  for (int64_t length : {100, 200})
    for (int64_t depth : {0, 100}) {
      NeedleCase c;
      c.id = std::to_string(length) + "_" + std::to_string(depth);
      c.length = length, c.depth_percent = depth, c.context_tokens = length - 10;
      c.needle = "The magic city is Oslo", c.question = "What is the magic city?", c.answer = "Oslo";
      c.context = "haystack text";
      cases.push_back(c);
    }
  write_needle_jsonl(dir.path("needle.jsonl"), cases);
  EvalRequest req;
  req.dataset = "needle";
  req.data = dir.path("needle.jsonl");
  req.predictions = dir.file("preds.json", R"({"100_0": "It is OSLO.", "100_100": "oslo", "200_0": "Paris",
                                              "200_100": "The magic city is  Oslo"})");
  req.out_dir = dir.path("out");
  const EvalOutcome out = run_eval(req);
  EXPECT_EQ(out.row.metric, "needle_acc");
  EXPECT_NEAR(out.score.score, 75.0, 1e-9);
  const std::string table = slurp(dir.path("out/needle.md"));
  EXPECT_NE(table.find("| 100 | 100.0 | 100.0 |"), std::string::npos) << table;
  EXPECT_NE(table.find("| 200 | 0.0 | 100.0 |"), std::string::npos) << table;
  EXPECT_TRUE(std::filesystem::exists(dir.path("out/needle.svg")));
  EXPECT_TRUE(std::filesystem::exists(dir.path("out/needle.json")));
}

}  // namespace
}  // namespace lloco::eval
