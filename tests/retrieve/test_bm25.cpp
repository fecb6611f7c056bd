// BM25 against the reference packages (tests/fixtures/gen_retrieve_fixtures.py: bm25s "lucene" and
// rank_bm25's BM25Okapi) on the same tokens, the tokenizer against the generator's regex, ranking
// rules, and the serving-side context retriever over a compressed store (prefix = the hits' summary
// vectors best first, adapter = the majority group's).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compress/store.h"
#include "core/error.h"
#include "core/ops.h"
#include "retrieve/bm25.h"
#include "retrieve/context.h"

namespace lloco::retrieve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

json fixture() {
  std::ifstream f(std::string(LLOCO_FIXTURES_DIR) + "/retrieve/bm25.json");
  return json::parse(f);
}

void expect_scores(const Bm25Options& o, const json& want_all) {
  const json fx = fixture();
  Bm25Index index(o);
  for (const json& t : fx["tokens"]) index.add(t.get<std::vector<std::string>>());
  for (size_t q = 0; q < fx["query_tokens"].size(); ++q) {
    const std::vector<double> got = index.scores(fx["query_tokens"][q].get<std::vector<std::string>>());
    const std::vector<double> want = want_all[q].get<std::vector<double>>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t d = 0; d < want.size(); ++d)
      EXPECT_NEAR(got[d], want[d], 1e-6 * std::max(1.0, std::abs(want[d])))
          << "query '" << fx["queries"][q].get<std::string>() << "' passage " << d;
  }
}

TEST(Bm25, LuceneScoresMatchBm25s) {
  const json fx = fixture();
  Bm25Options o;
  o.k1 = fx["lucene"]["k1"];
  o.b = fx["lucene"]["b"];
  expect_scores(o, fx["lucene"]["scores"]);
}

TEST(Bm25, OkapiScoresMatchRankBm25) {
  const json fx = fixture();
  Bm25Options o = Bm25Options::okapi();
  o.k1 = fx["okapi"]["k1"];
  o.b = fx["okapi"]["b"];
  o.epsilon = fx["okapi"]["epsilon"];
  expect_scores(o, fx["okapi"]["scores"]);
}

TEST(Bm25, TokenizerMatchesTheGeneratorsRegex) {
  const json fx = fixture();
  for (size_t i = 0; i < fx["texts"].size(); ++i)
    EXPECT_EQ(bm25_tokenize(fx["texts"][i].get<std::string>()), fx["tokens"][i].get<std::vector<std::string>>())
        << fx["texts"][i];
  EXPECT_TRUE(bm25_tokenize("  ,;!  ").empty());
}

TEST(Bm25, SearchRanksBestFirstAndDropsZeroScores) {
  Bm25Index index;
  index.add({"apple", "pie"});
  index.add({"apple", "tart"});  // ties with passage 0 on "apple": the lower index ranks first
  index.add({"banana"});
  const std::vector<Hit> hits = index.search({"apple"}, 5);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].passage, 0);
  EXPECT_EQ(hits[1].passage, 1);
  EXPECT_EQ(index.search({"pie", "apple"}, 1).at(0).passage, 0);
  EXPECT_EQ(index.search({"tart"}, 1).at(0).passage, 1);
  EXPECT_TRUE(index.search({"cherry"}, 3).empty());
  EXPECT_TRUE(index.search({"apple"}, 0).empty());
  EXPECT_THROW(Bm25Index(Bm25Options{Bm25Variant::Lucene, 0.9, 1.5, 0.25}), Error);
}

TEST(ContextRetriever, PrefixIsTheHitsSummariesAndTheMajorityGroupPicksTheAdapter) {
  const compress::AutoCompressor ac =
      compress::AutoCompressor::load(std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac");
  const fs::path dir = fs::path(::testing::TempDir()) / "lloco_retrieve_store";
  fs::remove_all(dir);
  const std::vector<Passage> passages{
      {"m1", "the meeting discussed the remote control budget", "qmsum"},
      {"m2", "the remote control needs a rubber case", "qmsum"},
      {"b1", "lily found a needle in the haystack", "stories"},
      {"b2", "the magic city is hidden in the book", "stories"},
  };
  std::vector<compress::TokenizedDoc> docs;
  for (size_t i = 0; i < passages.size(); ++i)
    docs.push_back({passages[i].id, std::vector<int32_t>(6 + i, 5 + i), passages[i].group, passages[i].text});
  compress::CorpusOptions co;
  co.compress.segment_length = 5;
  co.quiet = true;
  const compress::StoreManifest m = compress::compress_corpus(ac, docs, dir.string(), co);

  const ContextRetriever r(dir.string(), passages);
  const std::map<std::string, int64_t> adapters{{"qmsum", 0}, {"stories", 1}};
  const RetrievedContext c = r.retrieve("remote control budget", 3, adapters);
  ASSERT_EQ(c.ids.size(), 2u);  // "b1"/"b2" share no term with the question
  EXPECT_EQ(c.ids[0], "m1");
  EXPECT_EQ(c.ids[1], "m2");
  EXPECT_GT(c.scores[0], c.scores[1]);
  EXPECT_EQ(c.group, "qmsum");
  EXPECT_EQ(c.adapter, 0);
  const Tensor want = concat({compress::load_summary(dir.string(), m, "m1"), compress::load_summary(dir.string(), m, "m2")}, 0);
  EXPECT_EQ(c.prefix.to_vector<float>(), want.to_vector<float>());

  // Mixed hits: two "stories" passages outvote one "qmsum"; a group without an adapter gives -1.
  const RetrievedContext mixed = r.retrieve("the magic needle budget", 3, {{"qmsum", 0}});
  EXPECT_EQ(mixed.group, "stories");
  EXPECT_EQ(mixed.adapter, -1);
  const RetrievedContext none = r.retrieve("zebra", 3, adapters);
  EXPECT_TRUE(none.ids.empty());
  EXPECT_FALSE(none.prefix.defined());

  EXPECT_THROW(ContextRetriever(dir.string(), {{"missing", "text", "g"}}), Error);
  fs::remove_all(dir);
}

// The store's own texts and groups: restricting to a group or to documents finds the best admissible
// chunks (not a filtered top-k), a vector budget skips hits that do not fit, and named documents come
// back whole, in span order.
TEST(ContextRetriever, FromTheStoreWithFiltersBudgetsAndNamedDocuments) {
  const compress::AutoCompressor ac =
      compress::AutoCompressor::load(std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac");
  const fs::path dir = fs::path(::testing::TempDir()) / "lloco_retrieve_from_store";
  fs::remove_all(dir);
  compress::CorpusOptions co;
  co.compress.segment_length = 5;
  co.chunk_tokens = 5;
  co.quiet = true;
  const std::vector<std::string> words{"budget", "remote", "control", "needle", "magic", "city", "book"};
  co.decode = [&](const std::vector<int32_t>& ids) {
    std::string t;
    for (int32_t id : ids) t += words[static_cast<size_t>(id) % words.size()] + " ";
    return t;
  };
  // meeting -> "budget remote control needle magic" | "city book budget remote control";
  // story -> "needle magic needle magic city" | "needle magic book budget remote" | "needle magic".
  std::vector<compress::TokenizedDoc> docs(2);
  docs[0].id = "meeting";
  docs[0].group = "qmsum";
  for (int32_t i = 0; i < 10; ++i) docs[0].ids.push_back(i);
  docs[1].id = "story";
  docs[1].group = "stories";
  docs[1].ids = {3, 4, 3, 4, 5, 3, 4, 6, 0, 1, 3, 4};
  const compress::StoreManifest m = compress::compress_corpus(ac, docs, dir.string(), co);
  ASSERT_EQ(m.chunks.size(), 5u);
  const ContextRetriever r = ContextRetriever::from_store(dir.string());

  RetrieveOptions o;
  o.k = 2;
  const RetrievedContext any = r.retrieve("needle magic", o);
  ASSERT_EQ(any.ids.size(), 2u);
  EXPECT_EQ(any.ids, (std::vector<std::string>{"story#0", "story#2"}));  // twice each; both in 2 tokens
  EXPECT_EQ(any.group, "stories");
  o.group = "qmsum";
  const RetrievedContext in_group = r.retrieve("needle magic", o);
  EXPECT_EQ(in_group.ids, std::vector<std::string>{"meeting#0"});
  EXPECT_EQ(in_group.group, "qmsum");
  o.group.clear();
  o.docs = {"meeting"};
  EXPECT_EQ(r.retrieve("budget control", o).ids, (std::vector<std::string>{"meeting#0", "meeting#1"}));

  // A budget of 5 vectors: the tiny encoder gives 4 per full chunk, so only the best hit fits.
  o.docs.clear();
  o.max_vectors = m.chunk("meeting#0").vectors + 1;
  const RetrievedContext budget = r.retrieve("budget control", o);
  EXPECT_EQ(budget.ids, std::vector<std::string>{"meeting#0"});
  EXPECT_EQ(budget.skipped, std::vector<std::string>{"meeting#1"});
  EXPECT_EQ(budget.prefix.size(0), m.chunk("meeting#0").vectors);

  const RetrievedContext named = r.documents({"story", "meeting"});
  EXPECT_EQ(named.ids, (std::vector<std::string>{"story#0", "story#1", "story#2", "meeting#0", "meeting#1"}));
  EXPECT_EQ(named.group, "stories");
  std::vector<Tensor> parts;
  for (const std::string& id : named.ids) parts.push_back(compress::load_summary(dir.string(), m, id));
  EXPECT_EQ(named.prefix.to_vector<float>(), concat(parts, 0).to_vector<float>());
  EXPECT_THROW(r.documents({"nothing"}), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lloco::retrieve
