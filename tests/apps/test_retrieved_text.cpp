// RetrievalChunks, the retrieved-text baseline's chunk -> rank -> select, on the LLaMA-2 tokenizer and a
// crafted meeting: routine filler paragraphs, an early chunk that only mentions the zeppelin and a
// late one that answers the question, so ranking, budget and ordering mistakes change the text.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "apps/pipeline.h"
#include "models/tokenizer.h"
#include "tests/apps/meeting_fixture.h"

namespace lloco::apps {
namespace {

using testing::llama_tokenizer;

constexpr int64_t kChunk = 32;
const std::string kWeakNeedle = "The zeppelin hangar needs new doors.";  // shares one rare term with the question
const std::string kAnswer = "Marcus said the zeppelin budget was approved at nine million dollars.";
const std::string kQuestion = "What did Marcus say about the zeppelin budget?";

std::string meeting() { return testing::routine_meeting(14, {{2, kWeakNeedle}, {10, kAnswer}}); }

size_t count_tokens(const std::string& text) { return llama_tokenizer().encode(text, false, false).size(); }

class RetrievedText : public ::testing::Test {
 protected:
  void SetUp() override {
    ids = llama_tokenizer().encode(meeting(), false, false);
    chunks = std::make_unique<RetrievalChunks>(ids, llama_tokenizer(), kChunk);
    // The crafted sentences must each sit inside one chunk for the expectations below to mean anything.
    for (int64_t c = 0; c < chunks->size(); ++c) {
      const std::string text = chunks->text({c});
      if (text.find("nine million") != std::string::npos) answer_chunk = c;
      if (text.find("hangar") != std::string::npos) weak_chunk = c;
    }
    ASSERT_GE(answer_chunk, 0);
    ASSERT_GE(weak_chunk, 0);
    ASSERT_NE(chunks->text({answer_chunk}).find("Marcus said the zeppelin budget"), std::string::npos);
    ASSERT_NE(chunks->text({weak_chunk}).find("zeppelin hangar"), std::string::npos);
    ASSERT_LT(weak_chunk + 1, answer_chunk);  // not adjacent: they are two spans
  }

  std::vector<int32_t> ids;
  std::unique_ptr<RetrievalChunks> chunks;
  int64_t answer_chunk = -1, weak_chunk = -1;
};

TEST_F(RetrievedText, ChunksCoverTheDocumentInFixedTokenRuns) {
  ASSERT_EQ(chunks->size(), (static_cast<int64_t>(ids.size()) + kChunk - 1) / kChunk);
  int64_t next = 0;
  for (int64_t c = 0; c < chunks->size(); ++c) {
    const auto [begin, end] = chunks->range(c);
    EXPECT_EQ(begin, next) << "chunk " << c;
    EXPECT_EQ(end, std::min<int64_t>(begin + kChunk, static_cast<int64_t>(ids.size()))) << "chunk " << c;
    next = end;
  }
  EXPECT_EQ(next, static_cast<int64_t>(ids.size()));
}

TEST_F(RetrievedText, RanksTheAnsweringChunkFirstThenTheOneSharingARareTerm) {
  const std::vector<int64_t> ranked = chunks->rank(kQuestion);
  ASSERT_EQ(static_cast<int64_t>(ranked.size()), chunks->size());
  EXPECT_EQ(ranked[0], answer_chunk);
  EXPECT_EQ(ranked[1], weak_chunk);
}

TEST_F(RetrievedText, TopOneIsExactlyTheAnsweringChunk) {
  EXPECT_EQ(chunks->select(kQuestion, 1, 4000), chunks->text({answer_chunk}));
}

TEST_F(RetrievedText, KeptChunksAppearInDocumentOrderAsSeparateSpans) {
  const std::string text = chunks->select(kQuestion, 2, 4000);
  const size_t weak = text.find("hangar"), answer = text.find("nine million");
  ASSERT_NE(weak, std::string::npos);
  ASSERT_NE(answer, std::string::npos);
  EXPECT_LT(weak, answer);  // the earlier chunk first, though it ranks second
  EXPECT_EQ(text, chunks->text({weak_chunk}) + "\n\n" + chunks->text({answer_chunk}));
}

TEST_F(RetrievedText, BudgetDropsTheLowerRankedChunkNotTheBest) {
  const size_t one = count_tokens(chunks->text({answer_chunk}));
  const size_t both = count_tokens(chunks->select(kQuestion, 2, 4000));
  ASSERT_LT(one + 2, both);
  const std::string text = chunks->select(kQuestion, 2, one + 2);
  EXPECT_EQ(text, chunks->text({answer_chunk}));
  EXPECT_LE(count_tokens(text), one + 2);
}

TEST_F(RetrievedText, BudgetBelowOneChunkKeepsTheBestChunksBeginning) {
  const std::string text = chunks->select(kQuestion, 2, 12);  // both ranked chunks are full 32-token ones
  EXPECT_LE(count_tokens(text), 12u);
  ASSERT_GT(text.size(), 4u);
  const std::string kept = text.substr(0, text.size() - 4);  // without the " ..." marker
  EXPECT_EQ(text.substr(text.size() - 4), " ...");
  EXPECT_EQ(chunks->text({answer_chunk}).rfind(kept, 0), 0u) << text;
}

TEST_F(RetrievedText, NoSharedTermFallsBackToDocumentOrderAndJoinsContiguousChunks) {
  const std::string text = chunks->select("xylophone quasar", 2, 4000);
  // Chunks 0 and 1 are neighbours: decoded as one span, so the text is the document's first 2 chunks.
  EXPECT_EQ(text, llama_tokenizer().decode(std::span<const int32_t>(ids).first(2 * kChunk)));
}

TEST_F(RetrievedText, TopKBeyondTheChunkCountIsTheWholeDocument) {
  EXPECT_EQ(chunks->select(kQuestion, 1000, 100000), llama_tokenizer().decode(ids));
}

TEST(RetrievedTextChunking, CutNeverSplitsAByteFallbackCharacter) {
  const models::Tokenizer& tok = llama_tokenizer();
  const std::vector<int32_t> ids = tok.encode("Llamas 🦙 graze on the hills", false, false);
  // The emoji has no piece: four byte tokens. Cut right after the first so the chunk would end mid-character.
  const auto first_byte = std::find_if(ids.begin(), ids.end(), [&](int32_t id) { return tok.is_byte(id); });
  ASSERT_NE(first_byte, ids.end());
  const int64_t lead = first_byte - ids.begin();
  for (int64_t i = 0; i < 4; ++i) ASSERT_TRUE(tok.is_byte(ids[static_cast<size_t>(lead + i)]));
  const RetrievalChunks chunks(ids, tok, lead + 1);
  EXPECT_EQ(chunks.range(0).second, lead + 4);
  EXPECT_NE(chunks.text({0}).find("🦙"), std::string::npos) << chunks.text({0});
  EXPECT_EQ(chunks.text({0}).find("\xEF\xBF\xBD"), std::string::npos);  // no U+FFFD
}

TEST(RetrievedTextChunking, RejectsNonPositiveSizes) {
  EXPECT_ANY_THROW(RetrievalChunks({1, 2, 3}, llama_tokenizer(), 0));
  const RetrievalChunks chunks({1, 2, 3}, llama_tokenizer(), 2);
  EXPECT_ANY_THROW(chunks.select("question", 0, 100));
}

}  // namespace
}  // namespace lloco::apps
