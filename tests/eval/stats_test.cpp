// `lloco data stats` logic over the real shared data directory.
#include <gtest/gtest.h>

#include <map>

#include "eval/stats.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

TEST(Stats, LengthStatsInterpolateLikeNumpy) {
  const LengthStats s = length_stats({10, 1, 4, 3, 2});
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.mean, 4.0);
  EXPECT_DOUBLE_EQ(s.p50, 3.0);
  EXPECT_DOUBLE_EQ(s.p95, 4.0 + 0.8 * 6.0);  // numpy.percentile([1,2,3,4,10], 95) = 8.8
  EXPECT_EQ(s.max, 10u);
  EXPECT_EQ(length_stats({}).count, 0u);
}

TEST(Stats, EveryFileInSharedData) {
  std::vector<std::string> unknown;
  const auto stats = directory_stats(LLOCO_SHARED_DATA_DIR, word_length_counter(), &unknown);
  std::map<std::string, FileStats> by_path;
  for (const auto& s : stats) by_path[s.path] = s;
  ASSERT_EQ(by_path.size(), 5u) << stats_table(stats);
  EXPECT_TRUE(unknown.empty());

  const auto& qm = by_path.at("qmsum/val.jsonl");
  EXPECT_EQ(qm.documents, 35u);
  EXPECT_EQ(qm.questions, 272u);
  EXPECT_GT(qm.doc_length.mean, 5000.0);
  EXPECT_LE(qm.doc_length.p50, qm.doc_length.p95);
  EXPECT_LE(qm.doc_length.p95, static_cast<double>(qm.doc_length.max));

  EXPECT_EQ(by_path.at("hotpotqa/hotpot_dev_distractor_v1.first53.json").questions, 53u);
  EXPECT_EQ(by_path.at("leval/quality.jsonl").documents, 15u);
  EXPECT_EQ(by_path.at("leval/quality.jsonl").questions, 202u);
  EXPECT_EQ(by_path.at("leval/scientific_qa.jsonl").documents, 23u);
  EXPECT_EQ(by_path.at("leval/scientific_qa.jsonl").questions, 184u);
  const auto& nqa = by_path.at("narrativeqa");
  EXPECT_EQ(nqa.documents, 1572u);
  EXPECT_EQ(nqa.questions, 0u);
  EXPECT_EQ(nqa.doc_length.count, 1572u);
  EXPECT_NE(nqa.length_source.find("story_word_count"), std::string::npos);

  const auto j = stats_to_json(stats);
  EXPECT_EQ(j["schema"], "lloco.data.stats.v1");
  EXPECT_EQ(j["files"].size(), 5u);
  const std::string table = stats_table(stats);
  EXPECT_NE(table.find("qmsum/val.jsonl"), std::string::npos);
}

TEST(Stats, CounterIsPluggable) {
  const LengthCounter chars = [](const std::string& s) { return s.size(); };
  const FileStats s = file_stats(testing::shared_data("leval/scientific_qa.jsonl"), Format::kAuto, chars, {}, "chars");
  EXPECT_EQ(s.length_unit, "chars");
  const FileStats w = file_stats(testing::shared_data("leval/scientific_qa.jsonl"), Format::kAuto, word_length_counter());
  EXPECT_GT(s.doc_length.mean, 4 * w.doc_length.mean);
}

}  // namespace
}  // namespace lloco::eval
