// eval::build_needle_cases on the LLaMA-2 SentencePiece tokenizer against LLoCO's needle construction
// re-run in Python with transformers (tests/fixtures/gen_needle_fixtures.py): the same haystack, grid,
// break ids and city draws must give identical token ids and decoded text for every case.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "eval/needle.h"
#include "models/tokenizer.h"

namespace {

using lloco::eval::NeedleCase;
using lloco::eval::NeedleSpec;
using lloco::eval::NeedleTokenizer;
using lloco::models::SentencePieceTokenizer;
using Ids = std::vector<int32_t>;

const std::string kShared = LLOCO_SHARED_DATA_DIR;

const nlohmann::json& fixture() {
  static const nlohmann::json j = [] {
    std::ifstream in(std::string(LLOCO_FIXTURES_DIR) + "/eval/needle_cases.json");
    if (!in) throw std::runtime_error("missing tests/fixtures/eval/needle_cases.json (run tests/fixtures/gen_needle_fixtures.py)");
    return nlohmann::json::parse(in);
  }();
  return j;
}

const SentencePieceTokenizer& sp() {
  static const SentencePieceTokenizer tok(kShared + "/models/llama2-tokenizer/tokenizer.model");
  return tok;
}

NeedleTokenizer needle_tokenizer() {
  NeedleTokenizer tok;
  tok.encode = [](const std::string& text) { return sp().encode(text, false, false); };
  tok.decode = [](std::span<const int32_t> ids) { return sp().decode(ids); };
  tok.break_ids = sp().encode("\n", true, false);  // LLoCO: tokenizer.encode('\n'), BOS included
  return tok;
}

// The fixture's haystack: record `record` (0-based, blank lines skipped) of a shared JSONL file.
std::string haystack() {
  const auto& h = fixture().at("haystack");
  std::ifstream in(kShared + "/" + h.at("file").get<std::string>());
  if (!in) throw std::runtime_error("cannot open the haystack file " + h.at("file").get<std::string>());
  std::string line;
  for (int64_t i = 0; std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (i++ == h.at("record").get<int64_t>()) return nlohmann::json::parse(line).at(h.at("field").get<std::string>());
  }
  throw std::runtime_error("haystack record not found");
}

NeedleSpec spec_of(const nlohmann::json& s) {
  NeedleSpec spec;
  const auto& g = s.at("grid");
  spec.grid.min_length = g.at("min_length"), spec.grid.max_length = g.at("max_length");
  spec.grid.lengths = g.at("lengths"), spec.grid.depths = g.at("depths"), spec.grid.reserve = g.at("reserve");
  spec.iterations = s.at("iterations");
  spec.seed = s.at("seed");
  spec.cities = s.at("cities").get<std::vector<std::string>>();
  if (spec.cities.empty()) spec.needle = s.at("needle"), spec.question = s.at("question"), spec.answer = s.at("answer");
  return spec;
}

TEST(NeedleParity, BreakIdsAndHaystackTokens) {
  EXPECT_EQ(needle_tokenizer().break_ids, fixture().at("break_ids").get<Ids>());
  EXPECT_EQ(static_cast<int64_t>(sp().encode(haystack(), false, false).size()),
            fixture().at("haystack").at("tokens").get<int64_t>());
}

TEST(NeedleParity, CityListMatchesLLoCO) {
  size_t random_specs = 0;
  for (const auto& s : fixture().at("specs")) {
    if (s.at("cities").empty()) continue;
    EXPECT_EQ(s.at("cities").get<std::vector<std::string>>(), lloco::eval::needle_test_cities());
    ++random_specs;
  }
  EXPECT_EQ(random_specs, 1u);
}

TEST(NeedleParity, EveryCaseMatchesTheReference) {
  const std::string hay = haystack();
  const NeedleTokenizer tok = needle_tokenizer();
  const Ids hay_ids = sp().encode(hay, false, false);
  size_t compared = 0;
  for (const auto& s : fixture().at("specs")) {
    const NeedleSpec spec = spec_of(s);
    const std::vector<NeedleCase> cases = lloco::eval::build_needle_cases(hay, spec, tok);
    const auto& want = s.at("cases");
    ASSERT_EQ(cases.size(), want.size()) << s.at("name");
    for (size_t i = 0; i < cases.size(); ++i) {
      const NeedleCase& c = cases[i];
      const auto& w = want[i];
      SCOPED_TRACE(s.at("name").get<std::string>() + " case " + w.at("id").get<std::string>());
      EXPECT_EQ(c.id, w.at("id").get<std::string>());
      EXPECT_EQ(c.length, w.at("length").get<int64_t>());
      EXPECT_EQ(c.depth_percent, w.at("depth_percent").get<int64_t>());
      EXPECT_EQ(c.iteration, w.at("iteration").get<int64_t>());
      EXPECT_EQ(c.needle, w.at("needle").get<std::string>());
      EXPECT_EQ(c.answer, w.at("answer").get<std::string>());
      const Ids want_ids = w.at("ids").get<Ids>();
      EXPECT_EQ(c.context_tokens, static_cast<int64_t>(want_ids.size()));
      // build_needle_cases keeps only the text; the ids are what its insertion produced from the same
      // haystack and needle tokens, so re-derive them with insert_needle for the exact comparison.
      const Ids ids = lloco::eval::insert_needle(hay_ids, sp().encode(c.needle, false, false),
                                                 c.length, c.depth_percent, spec.grid.reserve, tok.break_ids);
      EXPECT_EQ(ids, want_ids);
      EXPECT_EQ(c.context, w.at("text").get<std::string>());
      ++compared;
    }
  }
  EXPECT_EQ(compared, 32u);
}

}  // namespace
