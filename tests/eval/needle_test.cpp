// Needle in a haystack (eval/needle.h): LLoCO's grid (numpy values), the insertion on hand-made ids,
// case building with a byte tokenizer, the dataset file round trip, the metric, the per-cell grid and
// the report files. Parity with LLoCO's Python on the LLaMA-2 tokenizer is tests/models/test_needle_parity.cpp.
#include "eval/needle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "eval/error.h"
#include "eval/metrics.h"
#include "eval/prompts.h"
#include "eval/readers.h"
#include "eval/report.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

using testing::error_of;
using testing::slurp;
using testing::TempDir;
using Ids = std::vector<int32_t>;

NeedleGridSpec grid(int64_t lo, int64_t hi, int64_t n_lengths, int64_t n_depths, int64_t reserve = 0) {
  NeedleGridSpec g;
  g.min_length = lo, g.max_length = hi, g.lengths = n_lengths, g.depths = n_depths, g.reserve = reserve;
  return g;
}

// One token per byte, '\n' (10) the only break: every boundary is visible in the text.
NeedleTokenizer byte_tokenizer() {
  NeedleTokenizer tok;
  tok.encode = [](const std::string& s) { return Ids(s.begin(), s.end()); };
  tok.decode = [](std::span<const int32_t> ids) {
    std::string s;
    for (int32_t id : ids) s.push_back(static_cast<char>(id));
    return s;
  };
  tok.break_ids = {10};
  return tok;
}

std::string story(size_t min_bytes) {
  std::string s;
  for (int i = 0; s.size() < min_bytes; ++i) s += "Line " + std::to_string(i) + " of a long and quiet story.\n";
  return s;
}

TEST(NeedleGrid, LLoCODefaultsMatchNumpy) {
  // numpy.round(numpy.linspace(1000, 32000, 10)) and (0, 100, 10), from numpy 1.26.4.
  const NeedleGridSpec defaults;
  EXPECT_EQ(needle_lengths(defaults),
            (std::vector<int64_t>{1000, 4444, 7889, 11333, 14778, 18222, 21667, 25111, 28556, 32000}));
  EXPECT_EQ(needle_depths(defaults), (std::vector<int64_t>{0, 11, 22, 33, 44, 56, 67, 78, 89, 100}));
}

TEST(NeedleGrid, RoundsHalfToEvenLikeNumpy) {
  // linspace(0, 100, 9) = 0, 12.5, 25, 37.5, ...: numpy gives 12, 38, 62, 88.
  EXPECT_EQ(needle_depths(grid(1, 1, 1, 9)), (std::vector<int64_t>{0, 12, 25, 38, 50, 62, 75, 88, 100}));
  EXPECT_EQ(needle_lengths(grid(1000, 1001, 5, 1)), (std::vector<int64_t>{1000, 1000, 1000, 1001, 1001}));
  EXPECT_EQ(needle_lengths(grid(200, 3000, 4, 1)), (std::vector<int64_t>{200, 1133, 2067, 3000}));
  EXPECT_EQ(needle_lengths(grid(500, 900, 1, 1)), (std::vector<int64_t>{500}));
  EXPECT_EQ(needle_depths(grid(1, 1, 1, 1)), (std::vector<int64_t>{0}));
}

TEST(NeedleGrid, InvalidGridsNameTheField) {
  EXPECT_NE(error_of([] { needle_lengths(grid(0, 10, 2, 2)); }).find("needle: grid.min_length must be >= 1, got 0"), std::string::npos);
  EXPECT_NE(error_of([] { needle_lengths(grid(100, 50, 2, 2)); }).find("grid.max_length 50 is below grid.min_length 100"), std::string::npos);
  EXPECT_NE(error_of([] { needle_lengths(grid(10, 50, 0, 2)); }).find("grid.lengths must be >= 1, got 0"), std::string::npos);
  EXPECT_NE(error_of([] { needle_depths(grid(10, 50, 2, -1)); }).find("grid.depths must be >= 1, got -1"), std::string::npos);
  EXPECT_NE(error_of([] { needle_depths(grid(100, 500, 2, 2, 100)); }).find("grid.reserve 100 must be below grid.min_length 100"),
            std::string::npos);
}

// Haystack 100..149 with breaks (7) at 9 and 19; needle {1, 2, 3}; length 30 - reserve 5 = 25, so
// 22 haystack tokens are kept.
class InsertNeedle : public ::testing::Test {
 protected:
  InsertNeedle() {
    for (int32_t i = 0; i < 50; ++i) hay.push_back(100 + i);
    hay[9] = hay[19] = 7;
  }
  Ids insert(int64_t depth) const { return insert_needle(hay, needle, 30, depth, 5, breaks); }
  Ids expected(size_t at) const {
    Ids out(hay.begin(), hay.begin() + static_cast<long>(at));
    out.insert(out.end(), needle.begin(), needle.end());
    out.insert(out.end(), hay.begin() + static_cast<long>(at), hay.begin() + 22);
    return out;
  }
  Ids hay, needle = {1, 2, 3}, breaks = {7, 8};
};

TEST_F(InsertNeedle, DepthZeroPutsTheNeedleFirst) { EXPECT_EQ(insert(0), expected(0)); }

TEST_F(InsertNeedle, DepthHundredAppends) {
  EXPECT_EQ(insert(100), expected(22));
  EXPECT_EQ(insert(100).size(), 25u);  // length - reserve
}

TEST_F(InsertNeedle, WalksBackToTheTokenAfterABreak) {
  EXPECT_EQ(insert(50), expected(10));  // int(22 * 0.5) = 11 -> hay[9] is a break -> 10
  EXPECT_EQ(insert(95), expected(20));  // int(22 * 0.95) = 20, hay[19] is a break already
  EXPECT_EQ(insert(40), expected(0));   // int(22 * 0.4) = 8: no break before it -> the start
}

TEST_F(InsertNeedle, TruncationTracksLengthAndReserve) {
  for (int64_t reserve : {0, 5, 20}) {
    const Ids out = insert_needle(hay, needle, 30, 100, reserve, breaks);
    ASSERT_EQ(out.size(), static_cast<size_t>(30 - reserve));
    EXPECT_TRUE(std::equal(hay.begin(), hay.begin() + (27 - reserve), out.begin()));
  }
}

TEST(InsertNeedlePosition, UsesPythonFloatTruncation) {
  // 100 * (29 / 100) = 28.999999999999996 in double; int() gives 28, as LLoCO's Python does.
  const Ids hay(200, 7), needle = {1, 2, 3}, breaks = {7};
  const Ids out = insert_needle(hay, needle, 103, 29, 0, breaks);
  ASSERT_EQ(out.size(), 103u);
  EXPECT_EQ(std::search(out.begin(), out.end(), needle.begin(), needle.end()) - out.begin(), 28);
}

TEST(InsertNeedlePosition, InvalidArgumentsNameBothValues) {
  const Ids hay(50, 7), needle = {1, 2}, breaks = {7};
  EXPECT_NE(error_of([&] { insert_needle(hay, needle, 60, 50, 0, breaks); }).find("haystack has 50 tokens, fewer than length 60"),
            std::string::npos);
  EXPECT_NE(error_of([&] { insert_needle(hay, needle, 40, 101, 0, breaks); }).find("depth_percent must be in [0, 100], got 101"),
            std::string::npos);
  EXPECT_NE(error_of([&] { insert_needle(hay, needle, 40, -1, 0, breaks); }).find("got -1"), std::string::npos);
  EXPECT_NE(error_of([&] { insert_needle(hay, needle, 0, 50, 0, breaks); }).find("length must be >= 1, got 0"), std::string::npos);
  EXPECT_NE(error_of([&] { insert_needle(hay, needle, 40, 50, 38, breaks); })
                .find("length 40 - reserve 38 leaves 2 tokens, not more than the needle's 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { insert_needle(hay, {}, 40, 50, 0, breaks); }).find("the needle has no tokens"), std::string::npos);
}

TEST(NeedleCities, LLoCOListsWithRepeats) {
  const auto& test = needle_test_cities();
  const auto& train = needle_train_cities();
  ASSERT_EQ(test.size(), 51u);
  ASSERT_EQ(train.size(), 49u);
  EXPECT_EQ(test.front(), "Doha");
  EXPECT_EQ(test.back(), "Jakarta");
  EXPECT_EQ(train.front(), "Chicago");
  EXPECT_EQ(train.back(), "Helsinki");
  EXPECT_EQ(std::count(test.begin(), test.end(), "Chicago"), 2);
  EXPECT_EQ(std::count(train.begin(), train.end(), "Ho Chi Minh City"), 2);
  EXPECT_EQ(std::set<std::string>(test.begin(), test.end()).size(), 44u);
  EXPECT_EQ(std::set<std::string>(train.begin(), train.end()).size(), 39u);
}

TEST(BuildNeedleCases, FixedNeedleGridOrderAndIds) {
  NeedleSpec spec;
  spec.grid = grid(200, 600, 3, 4, 30);
  const auto cases = build_needle_cases(story(700), spec, byte_tokenizer());
  ASSERT_EQ(cases.size(), 12u);
  const std::vector<int64_t> lengths = {200, 400, 600}, depths = {0, 33, 67, 100};
  for (size_t i = 0; i < cases.size(); ++i) {
    const NeedleCase& c = cases[i];
    EXPECT_EQ(c.length, lengths[i / 4]);
    EXPECT_EQ(c.depth_percent, depths[i % 4]);
    EXPECT_EQ(c.iteration, 0);
    EXPECT_EQ(c.id, std::to_string(c.length) + "_" + std::to_string(c.depth_percent));
    EXPECT_EQ(c.context_tokens, c.length - 30);
    EXPECT_EQ(static_cast<int64_t>(c.context.size()), c.context_tokens);
    EXPECT_EQ(c.answer, "Coco Chanel");
    const size_t at = c.context.find(spec.needle);
    ASSERT_NE(at, std::string::npos) << c.id;
    if (c.depth_percent == 100) {
      EXPECT_EQ(at + spec.needle.size(), c.context.size()) << c.id;  // appended, wherever the text stops
    } else {
      EXPECT_TRUE(at == 0 || c.context[at - 1] == '\n') << c.id;  // placed after a newline
    }
  }
  EXPECT_EQ(cases[0].context.find(spec.needle), 0u);
  EXPECT_GT(cases[6].context.find(spec.needle), 0u);  // 400 tokens at depth 67
}

TEST(BuildNeedleCases, RandomNeedleIsDeterministicPerSeed) {
  NeedleSpec spec;
  spec.grid = grid(200, 400, 2, 3, 30);
  spec.cities = needle_test_cities();
  spec.iterations = 4;
  spec.seed = 7;
  const auto a = build_needle_cases(story(500), spec, byte_tokenizer());
  const auto b = build_needle_cases(story(500), spec, byte_tokenizer());
  spec.seed = 8;
  const auto c = build_needle_cases(story(500), spec, byte_tokenizer());
  ASSERT_EQ(a.size(), 24u);
  std::set<std::string> ids, drawn;
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].id, std::to_string(a[i].length) + "_" + std::to_string(a[i].depth_percent) + "_" +
                           std::to_string(a[i].iteration));
    EXPECT_EQ(a[i].iteration, static_cast<int64_t>(i % 4));
    EXPECT_EQ(a[i].needle, "The magic city is " + a[i].answer);
    EXPECT_EQ(a[i].question, "What is the magic city?");
    EXPECT_NE(std::find(spec.cities.begin(), spec.cities.end(), a[i].answer), spec.cities.end());
    EXPECT_NE(a[i].context.find(a[i].needle), std::string::npos);
    EXPECT_EQ(a[i].answer, b[i].answer);
    EXPECT_EQ(a[i].context, b[i].context);
    differ += a[i].answer != c[i].answer;
    ids.insert(a[i].id);
    drawn.insert(a[i].answer);
  }
  EXPECT_EQ(ids.size(), a.size());
  EXPECT_GT(drawn.size(), 8u);  // 24 draws over 44 names
  EXPECT_GT(differ, 12u);       // another seed, another stream
}

TEST(BuildNeedleCases, RejectsBadSpecs) {
  NeedleSpec spec;
  spec.grid = grid(200, 600, 2, 2, 30);
  const NeedleTokenizer tok = byte_tokenizer();
  EXPECT_NE(error_of([&] { build_needle_cases(story(300), spec, tok); }).find("fewer than grid.max_length 600"), std::string::npos);
  NeedleSpec bad = spec;
  bad.iterations = 0;
  EXPECT_NE(error_of([&] { build_needle_cases(story(700), bad, tok); }).find("iterations must be >= 1, got 0"), std::string::npos);
  bad = spec;
  bad.grid.reserve = 190;  // 200 - 190 leaves 10 tokens for a 75-byte needle
  EXPECT_NE(error_of([&] { build_needle_cases(story(700), bad, tok); }).find("no haystack left"), std::string::npos);
  bad = spec;
  bad.cities = {"Oslo", ""};
  EXPECT_NE(error_of([&] { build_needle_cases(story(700), bad, tok); }).find("cities[1] is empty"), std::string::npos);
  NeedleTokenizer no_breaks = tok;
  no_breaks.break_ids.clear();
  EXPECT_NE(error_of([&] { build_needle_cases(story(700), spec, no_breaks); }).find("break_ids is empty"), std::string::npos);
}

// Four cases (lengths 200/400 x depths 0/100) written, read back, and scored.
class NeedleFile : public ::testing::Test {
 protected:
  NeedleFile() {
    NeedleSpec spec;
    spec.grid = grid(200, 400, 2, 2, 30);
    spec.iterations = 2;
    cases = build_needle_cases(story(500), spec, byte_tokenizer());
    path = dir.path("needle_cases.jsonl");
    write_needle_jsonl(path, cases);
  }
  DatasetScore score(const DatasetFile& f, const std::set<std::string>& right) const {
    Predictions preds;
    for (const auto& ex : f.examples) preds.by_id[ex.id] = right.count(ex.id) ? "It was COCO\n  chanel." : "Dior";
    return score_dataset("needle", f.examples, preds, default_metric("needle"));
  }
  TempDir dir;
  std::vector<NeedleCase> cases;
  std::string path;
};

TEST_F(NeedleFile, RoundTripThroughAutoDetect) {
  EXPECT_EQ(detect_format(path), Format::kNeedle);
  EXPECT_EQ(parse_format("needle"), Format::kNeedle);
  EXPECT_EQ(format_name(Format::kNeedle), "needle");
  const DatasetFile f = read_dataset(path);
  EXPECT_EQ(f.format, "needle");
  ASSERT_EQ(f.examples.size(), cases.size());
  ASSERT_EQ(f.documents.size(), cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Example& ex = f.examples[i];
    EXPECT_EQ(ex.id, cases[i].id);
    EXPECT_EQ(ex.doc_id, cases[i].id);
    EXPECT_EQ(ex.dataset, "needle");
    EXPECT_EQ(ex.question, cases[i].question);
    EXPECT_EQ(ex.answers, std::vector<std::string>{"Coco Chanel"});
    EXPECT_EQ(ex.document_text(), cases[i].context);
    EXPECT_EQ(ex.meta.at("length"), std::to_string(cases[i].length));
    EXPECT_EQ(ex.meta.at("depth_percent"), std::to_string(cases[i].depth_percent));
    EXPECT_EQ(ex.meta.at("iteration"), std::to_string(cases[i].iteration));
    EXPECT_EQ(ex.meta.at("context_tokens"), std::to_string(cases[i].context_tokens));
    EXPECT_EQ(ex.meta.at("needle"), cases[i].needle);
  }
  EXPECT_EQ(f.examples[1].id, "200_0_1");  // a fixed needle drawn twice keeps the iteration in its id
}

TEST_F(NeedleFile, GridAveragesIterationsAndReportsEmptyCells) {
  DatasetFile f = read_dataset(path);
  // 200_0: both right; 200_100 and 400_100: one of two; 400_0: none. Then 400_100 is dropped: NaN.
  const DatasetScore s = score(f, {"200_0_0", "200_0_1", "200_100_1", "400_100_0"});
  NeedleGrid g = needle_grid(f, s);
  EXPECT_EQ(g.lengths, (std::vector<int64_t>{200, 400}));
  EXPECT_EQ(g.depths, (std::vector<int64_t>{0, 100}));
  EXPECT_DOUBLE_EQ(g.success[0][0], 100.0);
  EXPECT_DOUBLE_EQ(g.success[0][1], 50.0);
  EXPECT_DOUBLE_EQ(g.success[1][0], 0.0);
  EXPECT_DOUBLE_EQ(g.success[1][1], 50.0);
  EXPECT_EQ(g.count[1][1], 2);
  EXPECT_DOUBLE_EQ(g.overall, 100.0 * 4 / 8);

  f.examples.erase(f.examples.end() - 2, f.examples.end());
  const DatasetScore partial = score(f, {"200_0_0", "200_0_1", "200_100_1"});
  g = needle_grid(f, partial);
  EXPECT_TRUE(std::isnan(g.success[1][1]));
  EXPECT_EQ(g.count[1][1], 0);
  EXPECT_DOUBLE_EQ(g.overall, 100.0 * 3 / 6);

  DatasetScore missing = partial;
  missing.per_example.pop_back();
  EXPECT_NE(error_of([&] { needle_grid(f, missing); }).find("example '400_0_1' has no score"), std::string::npos);
}

TEST_F(NeedleFile, ReportFilesAreWellFormed) {
  DatasetFile f = read_dataset(path);
  f.examples.pop_back();  // one cell with a single example, none empty
  f.examples.erase(f.examples.begin() + 2, f.examples.begin() + 4);  // 200_100 empty -> NaN
  const NeedleGrid g = needle_grid(f, score(f, {"200_0_0"}));
  const auto paths = write_needle_report(dir.path("report"), "LLoCO <fixed> & needle", g);
  ASSERT_EQ(paths.size(), 3u);
  const nlohmann::json j = nlohmann::json::parse(slurp(paths[0]));
  EXPECT_EQ(j.at("lengths"), nlohmann::json({200, 400}));
  EXPECT_EQ(j.at("depths"), nlohmann::json({0, 100}));
  EXPECT_DOUBLE_EQ(j.at("success")[0][0].get<double>(), 50.0);
  EXPECT_TRUE(j.at("success")[0][1].is_null());
  EXPECT_EQ(j.at("count"), nlohmann::json({{2, 0}, {2, 1}}));
  EXPECT_DOUBLE_EQ(j.at("overall").get<double>(), 20.0);

  const std::string md = slurp(paths[1]);
  EXPECT_NE(md.find("| length \\ depth | 0 | 100 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 200 | 50.0 | - |"), std::string::npos) << md;
  EXPECT_NE(md.find("Overall: 20.00"), std::string::npos) << md;

  const std::string svg = slurp(paths[2]);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  size_t cells = 0;
  for (size_t p = svg.find("<rect class=\"cell\""); p != std::string::npos; p = svg.find("<rect class=\"cell\"", p + 1)) ++cells;
  EXPECT_EQ(cells, 4u);
  EXPECT_NE(svg.find("LLoCO &lt;fixed&gt; &amp; needle"), std::string::npos);
  EXPECT_NE(svg.find("#bdbdbd"), std::string::npos);  // the empty cell
  EXPECT_NE(svg.find("#d73027"), std::string::npos);  // 0%: red
  EXPECT_NE(svg.find("context length (tokens)"), std::string::npos);
  EXPECT_NE(svg.find("needle depth (%)"), std::string::npos);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '<'), std::count(svg.begin(), svg.end(), '>'));
}

TEST(NeedleMetric, AnswerAnywhereCaseAndSpaceInsensitive) {
  EXPECT_TRUE(needle_found("Her favourite was COCO   Chanel.", {"Coco Chanel"}));
  EXPECT_TRUE(needle_found("coco\n\tchanel", {"  Coco Chanel "}));
  EXPECT_TRUE(needle_found("The magic city is Kuala Lumpur", {"Oslo", "kuala lumpur"}));
  EXPECT_FALSE(needle_found("Coco", {"Coco Chanel"}));
  EXPECT_FALSE(needle_found("CocoChanel", {"Coco Chanel"}));
  EXPECT_FALSE(needle_found("anything", {""}));  // an empty reference matches nothing
  EXPECT_FALSE(needle_found("anything", {}));
  EXPECT_TRUE(needle_found("SÃO PAULO / são paulo", {"são paulo"}));  // non-ASCII bytes compare as they are
  EXPECT_FALSE(needle_found("SÃO PAULO", {"são paulo"}));
}

TEST(NeedleMetric, WiredIntoScoringPromptsAndReports) {
  EXPECT_EQ(metric_name(Metric::kNeedle), "needle_acc");
  EXPECT_EQ(parse_metric("needle_acc"), Metric::kNeedle);
  EXPECT_EQ(default_metric("needle"), Metric::kNeedle);
  EXPECT_EQ(prompt_kind_for("needle"), PromptKind::kNarrativeQA);
  EXPECT_EQ(display_name("needle"), "Needle");
  Example ex;
  ex.id = "a", ex.answers = {"Coco Chanel"}, ex.dataset = "needle";
  Example ex2 = ex;
  ex2.id = "b";
  Predictions preds;
  preds.by_id = {{"a", " coco chanel"}, {"b", "Chanel"}};
  const DatasetScore s = score_dataset("needle", {ex, ex2}, preds, Metric::kNeedle);
  EXPECT_DOUBLE_EQ(s.per_example[0].score, 100.0);
  EXPECT_DOUBLE_EQ(s.per_example[1].score, 0.0);
  EXPECT_DOUBLE_EQ(s.score, 50.0);
}

TEST(NeedleReader, MalformedLinesNameFileLineAndField) {
  TempDir dir;
  const std::string good =
      R"({"_id":"1000_0","length":1000,"depth_percent":0,"iteration":0,"context_tokens":820,"needle":"N.","question":"Q?","answers":["A"],"context":"N. text"})";
  const auto p = dir.file("needle.jsonl",
                          good + "\n" +
                              R"({"_id":"1000_11","length":"1000","depth_percent":11,"iteration":0,"context_tokens":820,"needle":"N.","question":"Q?","answers":["A"],"context":"x"})" "\n" +
                              R"({"_id":"1000_22","length":1000,"depth_percent":140,"iteration":0,"context_tokens":820,"needle":"N.","question":"Q?","answers":["A"],"context":"x"})" "\n" +
                              R"({"_id":"1000_33","length":1000,"depth_percent":33,"iteration":0,"context_tokens":820,"needle":"N.","question":"Q?","answers":["A"]})" "\n" +
                              good + "\n" + R"({"_id":"1000_44","length":)" "\n");
  EXPECT_EQ(detect_format(p), Format::kNeedle);
  std::string err = error_of([&] { read_needle(p); });
  EXPECT_NE(err.find(p + ":2: field 'length': expected integer, got string"), std::string::npos) << err;
  ReadOptions skip;
  skip.skip_bad = true;
  const DatasetFile f = read_needle(p, skip);
  EXPECT_EQ(f.examples.size(), 1u);
  EXPECT_EQ(f.skipped, 5u);
  ASSERT_EQ(f.skip_reasons.size(), 5u);
  EXPECT_NE(f.skip_reasons[1].find(":3: field 'depth_percent': expected 0..100, got 140"), std::string::npos) << f.skip_reasons[1];
  EXPECT_NE(f.skip_reasons[2].find(":4: "), std::string::npos) << f.skip_reasons[2];
  EXPECT_NE(f.skip_reasons[2].find("context"), std::string::npos) << f.skip_reasons[2];
  EXPECT_NE(f.skip_reasons[3].find(":5: field '_id': '1000_0' repeats line 1"), std::string::npos) << f.skip_reasons[3];
  EXPECT_NE(f.skip_reasons[4].find(":6: invalid JSON"), std::string::npos) << f.skip_reasons[4];
}

TEST(NeedleReader, LongBenchStillDetected) {
  TempDir dir;
  const auto p = dir.file("lb.jsonl", R"({"input":"Q","context":"C","answers":["A"],"_id":"x","length":1})" "\n");
  EXPECT_EQ(detect_format(p), Format::kLongBench);
}

}  // namespace
}  // namespace lloco::eval
