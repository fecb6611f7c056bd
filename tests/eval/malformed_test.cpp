// Malformed inputs: errors name the file, the line and the field; the skip option counts what it
// skips and keeps the rest.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "eval/error.h"
#include "eval/predictions.h"
#include "eval/readers.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

using testing::error_of;
using testing::TempDir;

// The first n lines of the real QMSum file, with the last one cut in half.
std::string truncated_qmsum(size_t n) {
  std::ifstream in(testing::shared_data("qmsum/val.jsonl"));
  std::string line, out;
  for (size_t i = 0; i < n && std::getline(in, line); ++i) out += (i + 1 < n ? line + "\n" : line.substr(0, line.size() / 2));
  return out;
}

TEST(Malformed, TruncatedJsonlLineNamesFileAndLine) {
  TempDir dir;
  const auto p = dir.file("val.jsonl", truncated_qmsum(3));
  const std::string err = error_of([&] { read_qmsum(p); });
  EXPECT_NE(err.find(p + ":3: invalid JSON"), std::string::npos) << err;

  ReadOptions skip;
  skip.skip_bad = true;
  const DatasetFile f = read_qmsum(p, skip);
  EXPECT_EQ(f.skipped, 1u);
  EXPECT_EQ(f.documents.size(), 2u);
  ASSERT_EQ(f.skip_reasons.size(), 1u);
  EXPECT_NE(f.skip_reasons[0].find(":3:"), std::string::npos);
}

TEST(Malformed, SchemaErrorsNameTheField) {
  TempDir dir;
  const auto p = dir.file("quality.jsonl",
                          R"({"instructions":["Q?\n (A) a\n (B) b"],"outputs":["(B) b"],"input":"doc","source":"quality_raw"})" "\n"
                          R"({"instructions":["Q?\n (A) a\n (B) b"],"outputs":["(C) c"],"input":"doc","source":"quality_raw"})" "\n"
                          R"({"instructions":["Q?"],"outputs":["x"],"source":"quality_raw"})" "\n"
                          R"({"instructions":["Q?"],"outputs":[1],"input":"doc","source":"scientific_qa"})" "\n");
  std::string err = error_of([&] { read_leval(p); });
  EXPECT_NE(err.find(p + ":2: outputs[0]"), std::string::npos) << err;
  EXPECT_NE(err.find("(C) c"), std::string::npos) << err;
  ReadOptions skip;
  skip.skip_bad = true;
  const DatasetFile f = read_leval(p, skip);
  EXPECT_EQ(f.skipped, 3u);
  EXPECT_EQ(f.examples.size(), 1u);
  EXPECT_NE(f.skip_reasons[1].find(":3:"), std::string::npos);
  EXPECT_NE(f.skip_reasons[2].find("field 'outputs[0]': expected string, got number"), std::string::npos) << f.skip_reasons[2];
}

TEST(Malformed, QualityGoldLabelOutOfRange) {
  TempDir dir;
  const auto p = dir.file("q.jsonl",
                          R"({"article_id":"a","article":"t","questions":[{"question":"q","question_unique_id":"a_1","options":["1","2","3","4"],"gold_label":7}]})"
                          "\n");
  const std::string err = error_of([&] { read_quality(p); });
  EXPECT_NE(err.find(p + ":1: questions[0].gold_label: 7 outside 1..4"), std::string::npos) << err;
}

TEST(Malformed, TruncatedHotpotArrayNamesLine) {
  TempDir dir;
  const auto p = dir.file("hotpot.json", "[{\"_id\":\"a\",\"question\":\"q\",\"answer\":\"x\",\"context\":[]},\n{\"_id\":\"b\",\"quest");
  const std::string err = error_of([&] { read_hotpotqa(p); });
  EXPECT_NE(err.find(p + ":2: invalid JSON"), std::string::npos) << err;
}

TEST(Malformed, HotpotRecordSchemaErrorCanBeSkipped) {
  TempDir dir;
  const auto p = dir.file("hotpot.json",
                          R"([{"_id":"a","question":"q","answer":"x","context":[["T",["s"]]]},{"_id":"b","answer":"y","context":[]}])");
  const std::string err = error_of([&] { read_hotpotqa(p); });
  EXPECT_NE(err.find("record 1: missing field 'question'"), std::string::npos) << err;
  ReadOptions skip;
  skip.skip_bad = true;
  const DatasetFile f = read_hotpotqa(p, skip);
  EXPECT_EQ(f.examples.size(), 1u);
  EXPECT_EQ(f.skipped, 1u);
}

TEST(Malformed, BadCsvQuoteInNarrativeQA) {
  TempDir dir;
  dir.file("documents.csv",
           "document_id,set,kind,story_url,story_file_size,wiki_url,wiki_title,story_word_count,story_start,story_end\n"
           "d1,valid,movie,u,1,w,T,5,s,e\n"
           "d2,valid,movie,u,1,w,Bad \"title,5,s,e\n"
           "d3,valid,movie,u,1,w,T3,notanumber,s,e\n"
           "d4,valid,movie,u,1,w,T4,8,s,e\n");
  const std::string err = error_of([&] { read_narrativeqa(dir.path()); });
  EXPECT_NE(err.find(dir.path("documents.csv") + ":3:"), std::string::npos) << err;
  ReadOptions skip;
  skip.skip_bad = true;
  const DatasetFile f = read_narrativeqa(dir.path(), skip);
  EXPECT_EQ(f.documents.size(), 2u);
  EXPECT_EQ(f.skipped, 2u);
  EXPECT_NE(f.skip_reasons[1].find(":4: field 'story_word_count'"), std::string::npos) << f.skip_reasons[1];
}

TEST(Malformed, NarrativeQAQuestionForUnknownDocument) {
  TempDir dir;
  dir.file("documents.csv",
           "document_id,set,kind,story_url,story_file_size,wiki_url,wiki_title,story_word_count,story_start,story_end\n"
           "d1,valid,movie,u,1,w,T,5,s,e\n");
  dir.file("qaps.csv",
           "document_id,set,question,answer1,answer2,question_tokenized,answer1_tokenized,answer2_tokenized\n"
           "zz,valid,q,a,b,q,a,b\n");
  const std::string err = error_of([&] { read_narrativeqa(dir.path()); });
  EXPECT_NE(err.find("qaps.csv:2: document_id 'zz' is not in documents.csv"), std::string::npos) << err;
}

TEST(Malformed, PredictionsFiles) {
  TempDir dir;
  const auto jl = dir.file("p.jsonl", "{\"id\":\"a\",\"prediction\":\"x\"}\n{\"id\":\"b\",\"prediction\":\"y\"\n");
  std::string err = error_of([&] { read_predictions(jl); });
  EXPECT_NE(err.find(jl + ":2: invalid JSON"), std::string::npos) << err;
  const auto dup = dir.file("d.jsonl", "{\"id\":\"a\",\"prediction\":\"x\"}\n{\"id\":\"a\",\"prediction\":\"y\"}\n");
  err = error_of([&] { read_predictions(dup); });
  EXPECT_NE(err.find(dup + ":2: duplicate id 'a' (first on line 1)"), std::string::npos) << err;
  const auto obj = dir.file("o.json", "{\"a\": \"x\", \"b\": 3}");
  err = error_of([&] { read_predictions(obj); });
  EXPECT_NE(err.find("prediction for id 'b': expected string, got number"), std::string::npos) << err;
  EXPECT_EQ(read_predictions(dir.file("ok.json", "{\"a\": \"x\", \"b\": \"\"}")).by_id.size(), 2u);
}

}  // namespace
}  // namespace lloco::eval
