// Readers on the real files in shared/data (counts from shared/data/README.md) and on small
// synthetic files for the formats that are not available locally.
#include <gtest/gtest.h>

#include <algorithm>

#include <map>
#include <set>

#include "eval/readers.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

using testing::shared_data;
using testing::TempDir;

TEST(RealData, QMSumValidation) {
  const std::string path = shared_data("qmsum/val.jsonl");
  EXPECT_EQ(detect_format(path), Format::kQMSum);
  const DatasetFile f = read_dataset(path);
  EXPECT_EQ(f.documents.size(), 35u);
  EXPECT_EQ(f.examples.size(), 272u);
  std::map<std::string, int> kinds;
  for (const auto& ex : f.examples) {
    ++kinds[ex.meta.at("query_type")];
    EXPECT_EQ(ex.dataset, "qmsum");
    EXPECT_EQ(ex.answers.size(), 1u);
    EXPECT_FALSE(ex.question.empty());
  }
  EXPECT_EQ(kinds["general"], 35);
  EXPECT_EQ(kinds["specific"], 237);
  EXPECT_EQ(f.examples.front().document_text().rfind("Professor E: So . OK .", 0), 0u);
  size_t turns = 0;
  for (const auto& d : f.documents) turns += static_cast<size_t>(std::count(d.text->begin(), d.text->end(), '\n')) + 1;
  EXPECT_GE(turns, 20123u);  // one line per turn (contents may hold extra newlines)
}

TEST(RealData, HotpotQADistractorSlice) {
  const std::string path = shared_data("hotpotqa/hotpot_dev_distractor_v1.first53.json");
  EXPECT_EQ(detect_format(path), Format::kHotpotQA);
  const DatasetFile f = read_dataset(path);
  ASSERT_EQ(f.examples.size(), 53u);
  EXPECT_EQ(f.documents.size(), 53u);
  std::map<std::string, int> types;
  for (const auto& ex : f.examples) {
    ++types[ex.meta.at("type")];
    EXPECT_EQ(ex.meta.at("level"), "hard");
    ASSERT_EQ(ex.answers.size(), 1u);
    EXPECT_EQ(ex.split, "dev");
  }
  EXPECT_EQ(types["bridge"], 39);
  EXPECT_EQ(types["comparison"], 14);
  const std::string& doc = f.examples[0].document_text();
  EXPECT_EQ(doc.rfind("Ed Wood (film)\nEd Wood is a 1994 American biographical period comedy-drama film", 0), 0u);
  EXPECT_NE(doc.find("Johnny Depp as cult filmmaker Ed Wood. The film concerns"), std::string::npos);
  size_t two_paragraphs = 0;
  for (const auto& ex : f.examples) {
    size_t paras = 1, pos = 0;
    while ((pos = ex.document_text().find("\n\n", pos)) != std::string::npos) ++paras, pos += 2;
    if (paras == 2) ++two_paragraphs;
  }
  EXPECT_GE(two_paragraphs, 1u);
}

TEST(RealData, LEvalQuality) {
  const std::string path = shared_data("leval/quality.jsonl");
  EXPECT_EQ(detect_format(path), Format::kLEval);
  const DatasetFile f = read_dataset(path);
  EXPECT_EQ(f.documents.size(), 15u);
  ASSERT_EQ(f.examples.size(), 202u);
  for (const auto& ex : f.examples) {
    EXPECT_EQ(ex.dataset, "quality");
    ASSERT_EQ(ex.options.size(), 4u) << ex.id;
    ASSERT_EQ(ex.answers.size(), 1u);
    const char letter = ex.answers[0][0];
    ASSERT_TRUE(letter >= 'A' && letter <= 'D');
    EXPECT_EQ(ex.answers[0], std::string(1, letter) + ". " + ex.options[static_cast<size_t>(letter - 'A')]);
    EXPECT_EQ(ex.question.find("(A)"), std::string::npos);
  }
  EXPECT_EQ(f.examples[0].question, "Why did the Tr'en leave Korvin's door unlocked and a weapon nearby?");
  EXPECT_EQ(f.examples[0].answers[0].substr(0, 40), "B. Their subconscious knew that Korvin w");
}

TEST(RealData, LEvalScientificQA) {
  const DatasetFile f = read_dataset(shared_data("leval/scientific_qa.jsonl"));
  EXPECT_EQ(f.documents.size(), 23u);
  ASSERT_EQ(f.examples.size(), 184u);
  std::set<std::string> docs;
  for (const auto& ex : f.examples) {
    EXPECT_EQ(ex.dataset, "qasper");
    EXPECT_TRUE(ex.options.empty());
    docs.insert(ex.doc_id);
  }
  EXPECT_EQ(docs.size(), 23u);
  EXPECT_EQ(f.examples[0].question, "How did they obtain the dataset?");
}

TEST(RealData, NarrativeQADocumentsOnly) {
  const std::string dir = shared_data("narrativeqa");
  EXPECT_EQ(detect_format(dir), Format::kNarrativeQA);
  const DatasetFile f = read_dataset(dir);
  ASSERT_EQ(f.documents.size(), 1572u);
  EXPECT_TRUE(f.examples.empty());  // qaps.csv is not available locally
  std::map<std::string, int> sets;
  for (const auto& d : f.documents) {
    ++sets[d.split];
    EXPECT_TRUE(d.declared_words.has_value());
    EXPECT_FALSE(d.text);
  }
  EXPECT_EQ(sets["train"], 1102);
  EXPECT_EQ(sets["valid"], 115);
  EXPECT_EQ(sets["test"], 355);
  ReadOptions valid;
  valid.narrativeqa_set = "valid";
  EXPECT_EQ(read_narrativeqa(dir + "/documents.csv", valid).documents.size(), 115u);
}

TEST(Synthetic, NarrativeQAWithQuestionsSummariesAndStories) {
  TempDir dir;
  dir.file("documents.csv",
           "document_id,set,kind,story_url,story_file_size,wiki_url,wiki_title,story_word_count,story_start,story_end\r\n"
           "d1,valid,gutenberg,http://x/1,10,http://w/1,\"Title, with comma\",5,START,END\r\n"
           "d2,valid,movie,http://x/2,10,http://w/2,Plain,7,\"multi\nline start\",END\r\n"
           "d3,train,movie,http://x/3,10,http://w/3,Other,9,S,E\r\n");
  dir.file("qaps.csv",
           "document_id,set,question,answer1,answer2,question_tokenized,answer1_tokenized,answer2_tokenized\n"
           "d1,valid,\"Who is \"\"Bob\"\"?\",\"A man, called \"\"Bob\"\"\",Bob,who is bob ?,a man,bob\n"
           "d1,valid,Where?,\"In the\nhouse\",Home,where ?,in the house,home\n"
           "d2,valid,When?,Today,Now,when ?,today,now\n"
           "d3,train,Why?,Because,No reason,why ?,because,no reason\n");
  dir.file("third_party/wikipedia/summaries.csv",
           "document_id,set,summary,summary_tokenized\n"
           "d1,valid,\"Summary of one.\",summary of one .\n"
           "d2,valid,Summary two,summary two\n"
           "d3,train,Summary three,summary three\n");
  dir.file("tmp/d1.content", "Once upon a time.");

  DatasetFile f = read_dataset(dir.path());
  ASSERT_EQ(f.documents.size(), 3u);
  ASSERT_EQ(f.examples.size(), 4u);
  EXPECT_EQ(f.documents[0].title, "Title, with comma");
  EXPECT_EQ(f.examples[0].id, "d1:0");
  EXPECT_EQ(f.examples[1].id, "d1:1");
  EXPECT_EQ(f.examples[0].question, "Who is \"Bob\"?");
  EXPECT_EQ(f.examples[0].answers, (std::vector<std::string>{"A man, called \"Bob\"", "Bob"}));
  EXPECT_EQ(f.examples[1].answers[0], "In the\nhouse");
  EXPECT_EQ(f.examples[0].document_text(), "Once upon a time.");  // story text from tmp/
  EXPECT_EQ(f.examples[2].document_text(), "");                   // no story file for d2

  ReadOptions summaries;
  summaries.narrativeqa_use_summaries = true;
  summaries.narrativeqa_set = "valid";
  f = read_narrativeqa(dir.path(), summaries);
  ASSERT_EQ(f.examples.size(), 3u);
  EXPECT_EQ(f.examples[0].document_text(), "Summary of one.");
  EXPECT_EQ(f.examples[2].document_text(), "Summary two");
}

TEST(Synthetic, QualityV1Jsonl) {
  TempDir dir;
  const std::string q1 =
      R"({"question":"Q1?","question_unique_id":"a1_1","options":["o1","o2","o3","o4"],"gold_label":3,"difficult":1})";
  const std::string q2 = R"({"question":"Q2?","question_unique_id":"a1_2","options":["p1","p2","p3","p4"],"gold_label":1})";
  const std::string q3 = R"({"question":"Q3?","question_unique_id":"a1_3","options":["r1","r2","r3","r4"]})";
  const std::string path = dir.file(
      "QuALITY.v1.0.1.htmlstripped.dev",
      R"({"article_id":"a1","set_unique_id":"a1_w1","title":"T","article":"The article.","questions":[)" + q1 + "," + q2 +
          "]}\n" + R"({"article_id":"a1","set_unique_id":"a1_w2","title":"T","article":"The article.","questions":[)" + q3 +
          "]}\n");
  EXPECT_EQ(detect_format(path), Format::kQuality);
  const DatasetFile f = read_dataset(path);
  ASSERT_EQ(f.documents.size(), 1u);  // two writers, one article
  ASSERT_EQ(f.examples.size(), 3u);
  EXPECT_EQ(f.examples[0].answers, std::vector<std::string>{"C. o3"});
  EXPECT_EQ(f.examples[0].meta.at("difficult"), "1");
  EXPECT_EQ(f.examples[1].answers, std::vector<std::string>{"A. p1"});
  EXPECT_TRUE(f.examples[2].answers.empty());  // no gold label (test split)
  EXPECT_EQ(f.examples[0].split, "dev");
  EXPECT_EQ(f.examples[2].document.get(), f.examples[0].document.get());
}

TEST(Synthetic, QasperV03Json) {
  TempDir dir;
  const std::string path = dir.file("qasper-dev-v0.3.json", R"({
  "1909.0001": {"title": "A Paper", "abstract": "We study X.",
    "full_text": [{"section_name": "Introduction", "paragraphs": ["Para one.", "", "Para two."]},
                  {"section_name": null, "paragraphs": ["Orphan paragraph."]}],
    "qas": [{"question": "What is X?", "question_id": "q1", "answers": [
        {"answer": {"unanswerable": false, "extractive_spans": ["span a", "span b"], "yes_no": null, "free_form_answer": ""}},
        {"answer": {"unanswerable": false, "extractive_spans": [], "yes_no": null, "free_form_answer": "free text"}},
        {"answer": {"unanswerable": true, "extractive_spans": [], "yes_no": null, "free_form_answer": ""}},
        {"answer": {"unanswerable": false, "extractive_spans": [], "yes_no": false, "free_form_answer": ""}}]},
      {"question": "Is it good?", "question_id": "q2", "answers": [
        {"answer": {"unanswerable": false, "extractive_spans": [], "yes_no": true, "free_form_answer": ""}}]}]},
  "1909.0002": {"title": "Second", "abstract": "", "full_text": [], "qas": []}
})");
  EXPECT_EQ(detect_format(path), Format::kQasper);
  const DatasetFile f = read_dataset(path);
  ASSERT_EQ(f.documents.size(), 2u);
  ASSERT_EQ(f.examples.size(), 2u);
  EXPECT_EQ(f.examples[0].answers, (std::vector<std::string>{"span a, span b", "free text", "Unanswerable", "No"}));
  EXPECT_EQ(f.examples[1].answers, std::vector<std::string>{"Yes"});
  EXPECT_EQ(f.examples[0].document_text(),
            "A Paper\n\nAbstract\nWe study X.\n\nIntroduction\nPara one.\nPara two.\n\nOrphan paragraph.");
  EXPECT_EQ(f.examples[0].split, "dev");
}

TEST(Synthetic, ScrollsJsonlGroupsRepeatedIds) {
  TempDir dir;
  const std::string path = dir.file("qasper_validation.jsonl",
                                    R"({"id":"p1_q1","pid":"p1_q1_0","input":"What is X?\r\nLine one\n\nLine three","output":"x"})" "\n"
                                    R"({"id":"p1_q1","pid":"p1_q1_1","input":"What is X?\r\nLine one\n\nLine three","output":"ex"})" "\n"
                                    R"({"id":"p1_q2","pid":"p1_q2_0","input":"Why?\nLine one\n\nLine three","output":null})" "\n");
  EXPECT_EQ(detect_format(path), Format::kScrolls);
  const DatasetFile f = read_dataset(path);
  ASSERT_EQ(f.examples.size(), 2u);
  EXPECT_EQ(f.examples[0].dataset, "qasper");
  EXPECT_EQ(f.examples[0].question, "What is X?");
  EXPECT_EQ(f.examples[0].document_text(), "Line one\n\nLine three");
  EXPECT_EQ(f.examples[0].answers, (std::vector<std::string>{"x", "ex"}));
  EXPECT_EQ(f.examples[0].doc_id, "p1");
  EXPECT_TRUE(f.examples[1].answers.empty());
  EXPECT_EQ(f.examples[0].meta.at("row"), "0");  // the first of its two rows
  EXPECT_EQ(f.examples[1].meta.at("row"), "2");
  EXPECT_EQ(f.documents.size(), 1u);  // both questions share p1's text
  EXPECT_EQ(f.examples[0].split, "validation");
}

// HF exports keep SCROLLS as <dataset>/<split>.jsonl: the folder names the dataset; blank lines are
// not rows.
TEST(Synthetic, ScrollsDatasetFromFolderAndRowsSkipBlankLines) {
  TempDir dir;
  const std::string path = dir.file("narrative_qa/validation.jsonl",
                                    R"({"id":"a","pid":"a_0","input":"Who?\nStory","output":"x"})" "\n\n"
                                    R"({"id":"b","pid":"b_0","input":"Why?\nStory","output":"y"})" "\n");
  const DatasetFile f = read_dataset(path, Format::kScrolls);
  ASSERT_EQ(f.examples.size(), 2u);
  EXPECT_EQ(f.examples[0].dataset, "narrativeqa");
  EXPECT_EQ(f.examples[1].meta.at("row"), "1");
  const std::string unnamed = dir.file("other/validation.jsonl", R"({"id":"a","input":"Q\nD","output":"x"})" "\n");
  try {
    read_dataset(unnamed, Format::kScrolls);
    ADD_FAILURE() << "a SCROLLS file whose name and folder name no dataset was read";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot tell the dataset from the file or folder name"), std::string::npos) << e.what();
  }
}

TEST(Synthetic, LongBenchJsonl) {
  TempDir dir;
  const std::string path = dir.file(
      "hotpotqa.jsonl",
      R"({"input":"Who?","context":"Passage 1:\nText","answers":["Alice","Al"],"length":3,"dataset":"hotpotqa","language":"en","all_classes":null,"_id":"lb1"})"
      "\n");
  EXPECT_EQ(detect_format(path), Format::kLongBench);
  const DatasetFile f = read_dataset(path);
  ASSERT_EQ(f.examples.size(), 1u);
  EXPECT_EQ(f.examples[0].dataset, "longbench/hotpotqa");
  EXPECT_EQ(f.examples[0].answers, (std::vector<std::string>{"Alice", "Al"}));
  EXPECT_EQ(f.examples[0].meta.at("length"), "3");
  EXPECT_EQ(f.examples[0].document_text(), "Passage 1:\nText");
}

TEST(Synthetic, HotpotFullwikiHuggingFaceLayout) {
  TempDir dir;
  const std::string path = dir.file(
      "hotpot_fullwiki_validation.json",
      R"([{"id":"h1","question":"Q?","answer":"A","type":"bridge","level":"easy",
           "context":{"title":["T1","T2"],"sentences":[["S1."," S2."],["U1."]]}}])");
  const DatasetFile f = read_dataset(path);
  ASSERT_EQ(f.examples.size(), 1u);
  EXPECT_EQ(f.examples[0].document_text(), "T1\nS1. S2.\n\nT2\nU1.");
  EXPECT_EQ(f.examples[0].split, "validation");
}

TEST(Readers, ChoiceInstructionParsing) {
  std::string q;
  std::vector<std::string> opts;
  ASSERT_TRUE(split_choice_instruction("What (A) is it?\n\n (A) one \n (B) two\n(C) three (D) inline\n (D) four ", &q, &opts));
  EXPECT_EQ(q, "What (A) is it?");
  EXPECT_EQ(opts, (std::vector<std::string>{"one", "two", "three (D) inline", "four"}));
  EXPECT_FALSE(split_choice_instruction("No options here", &q, &opts));
}

TEST(Readers, FormatNamesAndAliases) {
  EXPECT_EQ(parse_format("LongBench"), Format::kLongBench);
  EXPECT_THROW(parse_format("parquet"), std::runtime_error);
  EXPECT_EQ(canonical_dataset("narrative_qa"), "narrativeqa");
  EXPECT_EQ(canonical_dataset("scientific_qa"), "qasper");
  EXPECT_EQ(canonical_dataset("HotpotQA"), "hotpotqa");
}

}  // namespace
}  // namespace lloco::eval
