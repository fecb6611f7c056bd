// Prompt templates and the token-budgeted baseline context.
#include <gtest/gtest.h>

#include "eval/error.h"
#include "eval/prompts.h"
#include "eval/readers.h"
#include "fixture.h"

namespace lloco::eval {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Example make(const std::string& dataset, const std::string& question, const std::string& doc = "") {
  Example ex;
  ex.id = "x";
  ex.dataset = dataset;
  ex.question = question;
  ex.document = std::make_shared<const std::string>(doc);
  ex.answers = {"ref"};
  return ex;
}

TEST(Prompts, EveryKindHoldsTheQuestionAndEndsWithAnswer) {
  for (const char* d : {"qasper", "narrativeqa", "qmsum", "hotpotqa", "longbench/musique", "something"}) {
    const Example ex = make(d, "What is the colour of the sky?");
    const std::string p = lloco_prompt(ex);
    EXPECT_NE(p.find("What is the colour of the sky?"), std::string::npos) << d;
    EXPECT_TRUE(ends_with(p, "\nAnswer:")) << d << ": " << p;
  }
  EXPECT_NE(lloco_prompt(make("qmsum", "q")).find("Query: q\n"), std::string::npos);
  EXPECT_NE(lloco_prompt(make("qasper", "q")).find("unanswerable"), std::string::npos);
}

TEST(Prompts, MultipleChoiceOnRealQuality) {
  const DatasetFile f = read_dataset(testing::shared_data("leval/quality.jsonl"));
  for (size_t i = 0; i < f.examples.size(); i += 37) {
    const Example& ex = f.examples[i];
    const std::string p = lloco_prompt(ex);
    EXPECT_NE(p.find("Question:\n" + ex.question + "\n"), std::string::npos);
    for (size_t k = 0; k < ex.options.size(); ++k)
      EXPECT_NE(p.find(std::string(1, static_cast<char>('A' + k)) + ". " + ex.options[k] + "\n"), std::string::npos);
    EXPECT_NE(p.find("Answer:\nB. Paris"), std::string::npos);  // the worked example
    EXPECT_TRUE(ends_with(p, "\n\nAnswer:"));
    EXPECT_EQ(answer_target(ex), ex.answers[0]);
    EXPECT_EQ(answer_target(ex)[1], '.');
  }
  Example no_options = f.examples[0];
  no_options.options.clear();
  EXPECT_THROW(lloco_prompt(no_options), EvalError);
}

TEST(Prompts, TruncationKeepsTheStartAndAddsTheMarker) {
  const TokenCounter words = whitespace_token_counter();
  std::string doc;
  for (int i = 0; i < 1000; ++i) doc += "w" + std::to_string(i) + (i % 10 == 9 ? "\n" : " ");
  const TruncatedText t = truncate_to_budget(doc, 100, words);
  EXPECT_TRUE(t.truncated);
  EXPECT_LE(t.tokens, 100u);
  EXPECT_EQ(t.tokens, words(t.text));
  EXPECT_EQ(t.text.rfind("w0 w1 w2", 0), 0u);
  EXPECT_TRUE(ends_with(t.text, kOmittedMarker));
  EXPECT_GE(t.tokens, 100u - words(kOmittedMarker));  // not cut shorter than needed
  const TruncatedText whole = truncate_to_budget("short doc", 100, words);
  EXPECT_FALSE(whole.truncated);
  EXPECT_EQ(whole.text, "short doc");
}

TEST(Prompts, TruncationWithACustomCounter) {
  // A character counter stands in for a subword tokenizer.
  const TokenCounter chars = [](const std::string& s) { return s.size(); };
  const std::string doc = "alpha beta gamma delta epsilon zeta eta theta";
  const TruncatedText t = truncate_to_budget(doc, 20, chars, "[cut]");
  EXPECT_TRUE(t.truncated);
  EXPECT_EQ(t.text, "alpha beta[cut]");  // "alpha beta gamma[cut]" would be 21
  EXPECT_EQ(truncate_to_budget(doc, 3, chars, "[cut]").text, "");
  EXPECT_EQ(truncate_to_budget(doc, 5, chars, "[cut]").text, "[cut]");
}

TEST(Prompts, BaselineFitsTheBudget) {
  std::string doc;
  for (int i = 0; i < 5000; ++i) doc += "word ";
  const Example ex = make("narrativeqa", "Who wins?", doc);
  const TokenCounter words = whitespace_token_counter();
  const BaselinePrompt b = baseline_prompt(ex, 4000, words);
  EXPECT_TRUE(b.truncated);
  EXPECT_LE(words(b.text), 4000u);
  EXPECT_EQ(b.prompt_tokens, words(lloco_prompt(ex)));
  EXPECT_TRUE(ends_with(b.text, lloco_prompt(ex)));
  EXPECT_NE(b.text.find(kOmittedMarker), std::string::npos);
  const BaselinePrompt small = baseline_prompt(make("narrativeqa", "Who wins?", "A short story."), 4000, words);
  EXPECT_FALSE(small.truncated);
  EXPECT_EQ(small.text, "A short story.\n\n" + lloco_prompt(ex));
}

}  // namespace
}  // namespace lloco::eval
