// LLoCO end to end, in miniature: the tiny AutoCompressor compresses four documents into a store
// offline; one LoRA adapter for the group is fine-tuned on QA pairs whose answer depends on the
// document but whose prompt does not (so only the summary vectors can tell the documents apart);
// the adapter is saved as PEFT and loaded into a fresh decoder; then serving retrieves each question's
// document from the store by BM25, prepends its summary vectors, takes the group's adapter, and
// greedy generation must answer every question.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "compress/autocompressor.h"
#include "core/ops.h"
#include "lora/adapter_training.h"
#include "lora/peft_io.h"
#include "models/generate.h"
#include "retrieve/context.h"

namespace lloco {
namespace {

namespace fs = std::filesystem;

const std::string kAcDir = std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac";

// The decoder: the compressor's own LLaMA (as in LLoCO), its head scaled so that a rank-8 adapter can
// move the tiny model's logits far enough to be confident (N(0, 0.02) after a final RMSNorm cannot).
models::LlamaModel decoder_of(const compress::AutoCompressor& ac) {
  models::LlamaModel m = ac.model();
  m.lm_head = mul(m.lm_head, 30.0);
  return m;
}

TEST(LlocoPipeline, CompressFineTuneRetrieveAndAnswer) {
  // The fixture encoder with its summary-token table scaled down: in an untrained tiny model the
  // summary positions' states are the table entries themselves (attention through N(0, 0.02) weights
  // adds ~1% of document signal); small entries let the document dominate them, as training does for
  // a real AutoCompressor (documents then differ by 50-70% in their summary vectors, not 1%).
  const compress::AutoCompressor fixture = compress::AutoCompressor::load(kAcDir);
  const compress::AutoCompressor ac(fixture.model(), mul(fixture.embed_summary(), 0.02), true);
  compress::CompressOptions co;
  co.segment_length = 5;

  // Four documents of 12 tokens (3 segments, 12 summary vectors each), compressed into a store; the
  // retriever indexes a text for each (the tiny vocabulary has no words).
  const std::vector<std::string> names{"apple orchard", "harbour lighthouse", "desert caravan", "glacier summit"};
  std::vector<compress::TokenizedDoc> docs;
  for (int d = 0; d < 4; ++d) {
    compress::TokenizedDoc doc;
    doc.id = "doc" + std::to_string(d);
    doc.group = "group0";
    doc.text = "notes about the " + names[d];
    for (int i = 0; i < 12; ++i) doc.ids.push_back(3 + (d * 17 + i * 5 + i * i * d) % 60);
    docs.push_back(doc);
  }
  const fs::path store = fs::path(::testing::TempDir()) / "lloco_pipeline_store";
  fs::remove_all(store);
  compress::CorpusOptions corpus;
  corpus.compress = co;
  corpus.quiet = true;
  const compress::StoreManifest manifest = compress::compress_corpus(ac, docs, store.string(), corpus);
  std::vector<Tensor> summaries;
  for (int d = 0; d < 4; ++d) {
    summaries.push_back(compress::load_summary(store.string(), manifest, docs[d].id));
    ASSERT_EQ(summaries.back().size(0), 12);
  }
  // Two questions per document; the same two prompts for every document.
  std::vector<lora::QaExample> qa;
  for (int d = 0; d < 4; ++d)
    for (int q = 0; q < 2; ++q)
      qa.push_back(lora::QaExample{summaries[d], {1, 50 + q}, {10 + d * 4 + q, 30 + d + 2 * q, 2}});

  models::LlamaModel model = decoder_of(ac);
  auto adapters = std::make_shared<lora::LoraAdapters>(lora::LoraAdapters::zeros(model.config, lora::LoraConfig{}, 1));
  adapters->init_peft(0, 11);
  lora::AdapterTrainOptions o;
  o.loop.steps = 120;
  o.loop.quiet = true;
  o.batch_size = 4;
  o.lr = 2e-2;
  const train::TrainResult r = lora::train_adapter(model, adapters, qa, o);
  std::printf("answer loss %.3f -> %.4f over %zu steps\n", r.losses.front(), r.losses.back(), r.losses.size());

  const fs::path dir = fs::path(::testing::TempDir()) / "lloco_pipeline_adapter";
  fs::remove_all(dir);
  lora::save_peft_adapter(*adapters, 0, dir.string());
  models::LlamaModel served = decoder_of(ac);
  lora::attach(served, std::make_shared<lora::LoraAdapters>(lora::load_peft_adapters(served.config, {dir.string()})),
               {0});
  compress::register_adapter(store.string(), "group0", dir.string());
  const retrieve::ContextRetriever retriever = retrieve::ContextRetriever::from_store(store.string());
  ASSERT_EQ(retriever.manifest().groups.at("group0").adapter, fs::weakly_canonical(dir).string());
  int correct = 0;
  for (size_t i = 0; i < qa.size(); ++i) {
    const lora::QaExample& e = qa[i];
    const int d = static_cast<int>(i / 2);
    const retrieve::RetrievedContext ctx = retriever.retrieve("what happened at the " + names[d] + "?", 1, {{"group0", 0}});
    ASSERT_EQ(ctx.ids, std::vector<std::string>{docs[d].id});
    ASSERT_EQ(ctx.adapter, 0);
    models::GenerateOptions g;
    g.max_new_tokens = 5;
    g.prefix_embeddings = ctx.prefix.unsqueeze(0);
    const models::GenerateResult out = models::generate(served, {e.prompt}, g);
    correct += out.tokens[0] == e.answer;
    EXPECT_EQ(out.tokens[0], e.answer) << docs[d].id << " prompt " << e.prompt[1];
  }
  std::printf("%d of %zu answers exact\n", correct, qa.size());
  // The same prompts without the summary vectors cannot be told apart: at most 2 of 8 can be right.
  int without = 0;
  for (const lora::QaExample& e : qa) {
    models::GenerateOptions g;
    g.max_new_tokens = 5;
    without += models::generate(served, {e.prompt}, g).tokens[0] == e.answer;
  }
  EXPECT_LE(without, 2);
  fs::remove_all(dir);
  fs::remove_all(store);
}

}  // namespace
}  // namespace lloco
