// Generation: the stories260K golden greedy text, cached vs full-recompute logits, HF greedy
// (single and left-padded batch) parity, batched == individual, sampling rules, stop strings.
#include <gtest/gtest.h>

#include <cmath>

#include "core/ops.h"
#include "core/safetensors.h"
#include "models/checkpoint.h"
#include "models/generate.h"
#include "models/kv_cache.h"
#include "models/tokenizer.h"
#include "tests/models/hf_fixture.h"

using namespace lloco;
using namespace lloco::models;
using namespace lloco::models::testing;

namespace {

const std::string kStoriesDir = std::string(LLOCO_SHARED_DATA_DIR) + "/models/stories260K";
const std::string kGolden =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw "
    "a big, red ball. She wanted to play with it, but it was too high.\nLily's mom said, \"Lily, let's go to";

}  // namespace

TEST(GenerateStories260K, GreedyFromBosMatchesGolden) {
  const LlamaModel m = load_model(kStoriesDir + "/stories260K.bin");
  const Llama2cTokenizer tok(kStoriesDir + "/tok512.bin");
  const std::vector<int32_t> golden_ids = tok.encode(kGolden, false, false);
  GenerateOptions opts;
  opts.max_new_tokens = static_cast<int64_t>(golden_ids.size());
  std::string streamed;
  int32_t prev = tok.bos_id();
  const GenerateResult r = generate(m, {{tok.bos_id()}}, opts, &tok, [&](int64_t, int32_t id) {
    streamed += tok.decode_piece(prev, id);
    prev = id;
  });
  EXPECT_EQ(r.texts[0].substr(0, kGolden.size()), kGolden);
  EXPECT_EQ(streamed, r.texts[0]);
  EXPECT_EQ(r.decode_tokens, opts.max_new_tokens);
}

TEST(GenerateStories260K, StopStringEndsGeneration) {
  const LlamaModel m = load_model(kStoriesDir + "/stories260K.bin");
  const Llama2cTokenizer tok(kStoriesDir + "/tok512.bin");
  GenerateOptions opts;
  opts.max_new_tokens = 100;
  opts.stop = {"park"};
  const GenerateResult r = generate(m, {{tok.bos_id()}}, opts, &tok);
  EXPECT_EQ(r.finish[0], FinishReason::Stop);
  EXPECT_EQ(r.texts[0], "Once upon a time, there was a little girl named Lily. She loved to play outside in the ");
}

// A cancel after the third token ends generation there, with the tokens so far and their text.
TEST(GenerateStories260K, CancelEndsUnfinishedRows) {
  const LlamaModel m = load_model(kStoriesDir + "/stories260K.bin");
  const Llama2cTokenizer tok(kStoriesDir + "/tok512.bin");
  GenerateOptions opts;
  opts.max_new_tokens = 50;
  int tokens = 0;
  opts.cancelled = [&] { return tokens >= 3; };
  const GenerateResult r = generate(m, {{tok.bos_id()}}, opts, &tok, [&](int64_t, int32_t) { ++tokens; });
  EXPECT_EQ(r.finish[0], FinishReason::Cancelled);
  EXPECT_EQ(r.tokens[0].size(), 3u);
  EXPECT_EQ(r.texts[0], tok.decode(r.tokens[0]));
}

TEST(Generate, CachedDecodeEqualsFullRecompute) {
  const LlamaModel m = load_model(kStoriesDir + "/stories260K.bin");
  const std::vector<int64_t> seq = {1, 403, 407, 261, 378, 414, 375, 263, 266, 446, 261};
  const int64_t n = static_cast<int64_t>(seq.size());
  ForwardInput full;
  full.input_ids = from_vector<int64_t>(seq, {1, n}, DType::I64);
  const Tensor ref = m.forward(full).logits;  // [1, n, V]
  KVCache cache(m.config.num_layers);
  const int64_t prefill = 4;
  ForwardInput first;
  first.input_ids = full.input_ids.narrow(1, 0, prefill);
  std::vector<Tensor> got = {m.forward(first, &cache).logits};
  for (int64_t t = prefill; t < n; ++t) {
    ForwardInput step;
    step.input_ids = full.input_ids.narrow(1, t, 1);
    got.push_back(m.forward(step, &cache).logits);
  }
  EXPECT_EQ(cache.length(), n);
  // f32 sums in a different order: relative to the logit scale (~|20|), not bitwise.
  const DiffStats d = compare_tensors(concat(got, 1), ref);
  EXPECT_LT(d.max_abs, 2e-6 * d.max_ref) << "max_ref " << d.max_ref;
}

TEST(GenerateHfParity, GreedyMatchesTransformers) {
  expect_greedy_matches_transformers(load_hf_model(kTinyModelDir));
}

TEST(GenerateHfParity, LeftPaddedBatchMatchesTransformers) {
  expect_left_padded_batch_matches_transformers(load_hf_model(kTinyModelDir));
}

TEST(Generate, BatchedEqualsIndividual) {
  const LlamaModel m = load_model(kStoriesDir + "/stories260K.bin");
  const std::vector<std::vector<int32_t>> prompts = {{1, 403, 407}, {1}, {1, 403, 407, 261, 378, 414, 375}};
  for (const double penalty : {1.0, 1.3}) {
    GenerateOptions opts;
    opts.max_new_tokens = 20;
    opts.repetition_penalty = penalty;
    const GenerateResult batched = generate(m, prompts, opts);
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(batched.tokens[i], generate(m, {prompts[i]}, opts).tokens[0]) << "prompt " << i << " penalty " << penalty;
  }
}

TEST(Generate, PrefixEmbeddingsEqualTheirTokens) {
  // Giving the first tokens as prefix embeddings must generate exactly what the tokens generate.
  const LlamaModel m = load_hf_model(kTinyModelDir);
  const std::vector<int32_t> all = {1, 17, 33, 9};
  GenerateOptions opts;
  opts.max_new_tokens = 8;
  opts.eos_ids = {-1};
  const auto want = generate(m, {all}, opts).tokens[0];
  opts.prefix_embeddings = m.embed(from_vector<int64_t>({1, 17}, {1, 2}, DType::I64));
  EXPECT_EQ(generate(m, {{33, 9}}, opts).tokens[0], want);
}

// Requests with different contexts in one batch (the server's batches): each row's real prefix is
// its first prefix_lengths[b] rows, the rest masked; each row stops at its own token cap. Every row
// must equal the request run alone.
TEST(Generate, RaggedPrefixesAndRowLimitsEqualIndividualRuns) {
  const LlamaModel m = load_model(kStoriesDir + "/stories260K.bin");
  const std::vector<std::vector<int64_t>> contexts = {{1, 403, 407, 261, 378}, {1, 403}, {}};
  const std::vector<std::vector<int32_t>> prompts = {{414, 375}, {263, 266, 446, 261}, {1, 403}};
  const std::vector<int64_t> limits = {12, 5, 9};
  const int64_t D = m.config.hidden_size;
  Tensor prefix = zeros({3, 5, D});
  for (int64_t b = 0; b < 3; ++b)
    if (!contexts[b].empty()) {
      const int64_t n = static_cast<int64_t>(contexts[b].size());
      copy_(prefix.narrow(0, b, 1).narrow(1, 0, n), m.embed(from_vector<int64_t>(contexts[b], {1, n}, DType::I64)));
    }
  GenerateOptions batch;
  batch.max_new_tokens = 12;
  batch.eos_ids = {-1};
  batch.prefix_embeddings = prefix;
  batch.prefix_lengths = {5, 2, 0};
  batch.row_max_new_tokens = limits;
  const GenerateResult together = generate(m, prompts, batch);
  for (size_t b = 0; b < 3; ++b) {
    GenerateOptions alone;
    alone.max_new_tokens = limits[b];
    alone.eos_ids = {-1};
    const int64_t n = static_cast<int64_t>(contexts[b].size());
    if (n > 0) alone.prefix_embeddings = m.embed(from_vector<int64_t>(contexts[b], {1, n}, DType::I64));
    EXPECT_EQ(together.tokens[b], generate(m, {prompts[b]}, alone).tokens[0]) << "row " << b;
    EXPECT_EQ(static_cast<int64_t>(together.tokens[b].size()), limits[b]);
    EXPECT_EQ(together.finish[b], FinishReason::Length);
  }
  batch.prefix_lengths = {6, 2, 0};
  EXPECT_THROW(generate(m, prompts, batch), Error);
}

TEST(GenerateSampling, GreedyPenaltyTopKTopP) {
  GenerateOptions o;
  EXPECT_EQ(sample_token({0.1f, 3.0f, 2.0f, 3.0f}, {}, o, 0.5), 1);  // first index on ties
  o.repetition_penalty = 2.0;
  // HF: positive logits are divided, negative multiplied by the penalty.
  EXPECT_EQ(sample_token({0.1f, 3.0f, 2.0f}, {1}, o, 0.5), 2);
  EXPECT_EQ(sample_token({-1.0f, -0.6f, -1.1f}, {1}, o, 0.5), 0);
  o = GenerateOptions{};
  o.temperature = 1.0;
  o.top_k = 1;
  for (double u : {0.0, 0.5, 0.999}) EXPECT_EQ(sample_token({0.0f, 1.0f, 5.0f, 4.9f}, {}, o, u), 2);
  o.top_k = 2;
  EXPECT_EQ(sample_token({0.0f, 1.0f, 5.0f, 4.9f}, {}, o, 0.999), 3);
  o.top_k = 0;
  o.top_p = 0.5;  // p = [0.1, 0.2, 0.7]: the top token alone reaches 0.5
  const std::vector<float> l = {std::log(0.1f), std::log(0.2f), std::log(0.7f)};
  for (double u : {0.0, 0.9, 0.999}) EXPECT_EQ(sample_token(l, {}, o, u), 2);
  o.top_p = 0.8;  // the top two (0.9) survive, renormalised to 7/9 and 2/9
  EXPECT_EQ(sample_token(l, {}, o, 0.7), 2);
  EXPECT_EQ(sample_token(l, {}, o, 0.8), 1);
  o.top_p = 1.0;
  EXPECT_EQ(sample_token(l, {}, o, 0.05), 2);
  EXPECT_EQ(sample_token(l, {}, o, 0.75), 1);
  EXPECT_EQ(sample_token(l, {}, o, 0.95), 0);
}

TEST(GenerateSampling, SeedIsDeterministic) {
  const LlamaModel m = load_model(kStoriesDir + "/stories260K.bin");
  GenerateOptions opts;
  opts.max_new_tokens = 30;
  opts.temperature = 1.0;
  opts.top_p = 0.9;
  opts.seed = 42;
  const auto a = generate(m, {{1}}, opts).tokens[0];
  EXPECT_EQ(generate(m, {{1}}, opts).tokens[0], a);
  opts.seed = 43;
  EXPECT_NE(generate(m, {{1}}, opts).tokens[0], a);
}
