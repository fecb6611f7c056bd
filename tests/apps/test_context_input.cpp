// ContextBuilder and qa_examples on the LLaMA-2 tokenizer: the training pairs of a system fine-tuned on
// a text context (LLoCO's Table 2) hold exactly the prompt its predictions are generated from, within
// the budget, and each context keeps what it promises (the whole short document, the answering chunk,
// the prompt alone without BOS). Training pairs that come back to a document share its summary vectors.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "apps/context_input.h"
#include "apps/pipeline.h"
#include "compress/autocompressor.h"
#include "core/ops.h"
#include "eval/prompts.h"
#include "models/tokenizer.h"
#include "tests/apps/meeting_fixture.h"
#include "tests/compress/tiny_store.h"

namespace lloco::apps {
namespace {

using testing::llama_tokenizer;

constexpr size_t kBudget = 160;
const std::string kAnswerSentence = "Marcus said the zeppelin budget was approved at nine million dollars.";

std::string long_meeting() { return testing::routine_meeting(20, {{15, kAnswerSentence}}); }

// Two meetings (one far over the budget, one short) with two questions each, as a reader returns them.
eval::DatasetFile meetings() {
  eval::DatasetFile data;
  data.path = "in-memory";
  const std::vector<std::pair<std::string, std::string>> docs{{"long", long_meeting()},
                                                              {"short", "Ana opened the meeting and left early."}};
  for (const auto& [id, text] : docs) {
    auto shared = std::make_shared<const std::string>(text);
    data.documents.push_back({id, "", "validation", shared, std::nullopt});
    for (int q = 0; q < 2; ++q) {
      eval::Example ex;
      ex.id = id + "-" + std::to_string(q);
      ex.doc_id = id;
      ex.document = shared;
      ex.question = q == 0 ? "What did Marcus say about the zeppelin budget?" : "Who opened the meeting?";
      ex.answers = {q == 0 ? "It was approved." : "Ana."};
      ex.dataset = "qmsum";
      data.examples.push_back(std::move(ex));
    }
  }
  return data;
}

ContextOptions text_options(ContextKind kind) {
  ContextOptions o;
  o.context = kind;
  o.text_budget = static_cast<int64_t>(kBudget);
  o.retrieval_chunk_tokens = 24;
  o.retrieval_top_k = 2;
  return o;
}

std::string decode_prompt(const std::vector<int32_t>& ids) {
  return llama_tokenizer().decode(std::vector<int32_t>(ids.begin() + 1, ids.end()));  // after BOS
}

TEST(ContextInput, TextTrainingPairsHoldThePromptPredictionsRead) {
  const models::Tokenizer& tok = llama_tokenizer();
  const eval::DatasetFile data = meetings();
  for (const ContextKind kind : {ContextKind::kTruncatedText, ContextKind::kRetrievedText, ContextKind::kNone}) {
    SCOPED_TRACE(context_kind_name(kind));
    const std::vector<lora::QaExample> pairs = qa_examples(data, tok, text_options(kind), cpu());
    ContextBuilder predict_side(tok, text_options(kind), cpu());
    ASSERT_EQ(pairs.size(), data.examples.size());
    for (size_t i = 0; i < pairs.size(); ++i) {
      const ContextInput in = predict_side.build(data.examples[i]);
      EXPECT_FALSE(pairs[i].prefix.defined());
      EXPECT_FALSE(in.prefix.defined());
      EXPECT_EQ(pairs[i].prompt, in.prompt) << data.examples[i].id;
      std::vector<int32_t> answer = tok.encode(eval::answer_target(data.examples[i]), false, false);
      answer.push_back(tok.eos_id());
      EXPECT_EQ(pairs[i].answer, answer);
    }
  }
}

TEST(ContextInput, TruncatedTextCutsTheLongDocumentWithinTheBudgetAndKeepsTheShortOne) {
  const models::Tokenizer& tok = llama_tokenizer();
  const eval::DatasetFile data = meetings();
  ContextBuilder b(tok, text_options(ContextKind::kTruncatedText), cpu());
  const ContextInput cut = b.build(data.examples[0]);
  ASSERT_FALSE(cut.prompt.empty());
  EXPECT_EQ(cut.prompt.front(), tok.bos_id());
  EXPECT_LE(cut.prompt.size(), kBudget + 1);  // document + prompt within the budget, then BOS
  EXPECT_GT(cut.prompt.size(), kBudget - 20);  // and the document fills it
  const std::string text = decode_prompt(cut.prompt);
  EXPECT_NE(text.find("Item 0: the group reviewed"), std::string::npos);
  EXPECT_EQ(text.find("nine million"), std::string::npos);  // item 15 is past the cut
  EXPECT_NE(text.find(eval::kOmittedMarker), std::string::npos);
  EXPECT_NE(text.find("What did Marcus say about the zeppelin budget?"), std::string::npos);
  const std::string whole = decode_prompt(b.build(data.examples[2]).prompt);
  EXPECT_NE(whole.find("Ana opened the meeting and left early."), std::string::npos);
  EXPECT_EQ(whole.find(eval::kOmittedMarker), std::string::npos);
}

TEST(ContextInput, RetrievedTextBringsTheAnsweringChunkPastTheCut) {
  const models::Tokenizer& tok = llama_tokenizer();
  const eval::DatasetFile data = meetings();
  ContextBuilder b(tok, text_options(ContextKind::kRetrievedText), cpu());
  const ContextInput in = b.build(data.examples[0]);
  EXPECT_EQ(in.prompt.front(), tok.bos_id());
  EXPECT_LE(in.prompt.size(), kBudget + 1);
  const std::string text = decode_prompt(in.prompt);
  EXPECT_NE(text.find("nine million"), std::string::npos);  // what truncation loses, retrieval finds
  EXPECT_EQ(text.find("Item 0: the group"), std::string::npos);
}

TEST(ContextInput, NoContextIsLLoCOsPromptAloneWithoutBos) {
  const models::Tokenizer& tok = llama_tokenizer();
  const eval::DatasetFile data = meetings();
  ContextBuilder b(tok, text_options(ContextKind::kNone), cpu());
  const ContextInput in = b.build(data.examples[1]);
  EXPECT_EQ(in.prompt, tok.encode(eval::lloco_prompt(data.examples[1]), false, false));
  EXPECT_NE(in.prompt.front(), tok.bos_id());
  EXPECT_EQ(decode_prompt(in.prompt).find("routine paperwork"), std::string::npos);
}

// QuALITY lists an article once per writer, so a training set returns to a document: its examples
// must share one summary tensor (a 7B run holds them all on the GPU), equal to the stored vectors.
TEST(ContextInput, TrainingPairsOfAReturningDocumentShareItsSummaryVectors) {
  namespace ct = compress::testing;
  const std::string store = ct::fresh("context_input_store").string();
  compress::compress_corpus(compress::AutoCompressor::load(ct::kAcDir), ct::tiny_corpus(2), store, ct::tiny_options());
  eval::DatasetFile data;
  for (const std::string doc : {"doc-0", "doc-1", "doc-0"}) {
    eval::Example ex;
    ex.id = doc + "-" + std::to_string(data.examples.size());
    ex.doc_id = doc;
    ex.question = "Who spoke first?";
    ex.answers = {"Ana."};
    ex.dataset = "qmsum";
    data.examples.push_back(std::move(ex));
  }
  ContextOptions o;
  o.store_dir = store;
  const std::vector<lora::QaExample> pairs = qa_examples(data, llama_tokenizer(), o, cpu());
  ASSERT_EQ(pairs.size(), 3u);
  EXPECT_EQ(pairs[0].prefix.storage().get(), pairs[2].prefix.storage().get());
  EXPECT_NE(pairs[0].prefix.storage().get(), pairs[1].prefix.storage().get());
  const compress::StoreManifest manifest = compress::read_store(store);
  for (size_t i = 0; i < pairs.size(); ++i) {
    const Tensor want = compress::load_document_summary(store, manifest, data.examples[i].doc_id);
    ASSERT_EQ(pairs[i].prefix.shape(), want.shape());
    EXPECT_EQ(compare_tensors(pairs[i].prefix, want).max_abs, 0.0) << i;
    EXPECT_EQ(pairs[i].prompt, llama_tokenizer().encode(eval::lloco_prompt(data.examples[i]), false, false));
  }
  ContextBuilder predict_side(llama_tokenizer(), o, cpu());  // keeps one document: same values, reloaded
  EXPECT_EQ(compare_tensors(predict_side.build(data.examples[2]).prefix, pairs[2].prefix).max_abs, 0.0);
}

TEST(ContextInput, KindsParseByNameAndRejectOthersNamingTheOption) {
  for (const ContextKind kind :
       {ContextKind::kCompressed, ContextKind::kNone, ContextKind::kTruncatedText, ContextKind::kRetrievedText})
    EXPECT_EQ(parse_context_kind(context_kind_name(kind), "--context"), kind);
  EXPECT_EQ(parse_context_kind("text", "--context"), ContextKind::kTruncatedText);  // predict's older spelling
  try {
    parse_context_kind("summary", "systems[2].context");
    FAIL() << "accepted 'summary'";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("systems[2].context must be compressed, none, truncated_text or retrieved_text, got 'summary'"),
              std::string::npos)
        << e.what();
  }
}

TEST(ContextInput, BuilderRejectsBadSettingsNamingThem) {
  ContextOptions o = text_options(ContextKind::kTruncatedText);
  o.text_budget = 0;
  EXPECT_THROW(
      {
        try {
          ContextBuilder b(llama_tokenizer(), o, cpu());
        } catch (const std::exception& e) {
          EXPECT_NE(std::string(e.what()).find("text_budget must be positive, got 0"), std::string::npos) << e.what();
          throw;
        }
      },
      std::exception);
  o = text_options(ContextKind::kCompressed);
  o.store_dir = "/nonexistent/store";
  EXPECT_THROW(ContextBuilder(llama_tokenizer(), o, cpu()), std::exception);
}

}  // namespace
}  // namespace lloco::apps
