// The HF transformers fixtures of tests/fixtures/llama (gen_llama_fixtures.py): their paths and the
// generation checks that run the same on every device (tests/models on the CPU, tests/cuda on CUDA).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/safetensors.h"
#include "models/generate.h"
#include "models/llama.h"

namespace lloco::models::testing {

inline const std::string kTinyModelDir = std::string(LLOCO_FIXTURES_DIR) + "/llama/tiny";
inline const std::string kExpectedOutputs = std::string(LLOCO_FIXTURES_DIR) + "/llama/expected.safetensors";

// Token ids of row `row` of an i64 [B, T] tensor, from position `from` on.
inline std::vector<int32_t> row_ids(const Tensor& t, int64_t row, int64_t from) {
  const auto v = t.select(0, row).to_vector<int64_t>();
  return std::vector<int32_t>(v.begin() + from, v.end());
}

// Greedy continuation of the fixture prompt equals transformers' generate().
inline void expect_greedy_matches_transformers(const LlamaModel& m) {
  const SafetensorsFile ex = load_safetensors(kExpectedOutputs);
  const std::vector<int32_t> prompt = row_ids(ex.get("greedy_prompt"), 0, 0);
  const std::vector<int32_t> want = row_ids(ex.get("greedy_out"), 0, static_cast<int64_t>(prompt.size()));
  GenerateOptions opts;
  opts.max_new_tokens = static_cast<int64_t>(want.size());
  EXPECT_EQ(generate(m, {prompt}, opts).tokens[0], want);
}

// A left-padded batch (HF attention_mask) generates what transformers generates for each row.
inline void expect_left_padded_batch_matches_transformers(const LlamaModel& m) {
  const SafetensorsFile ex = load_safetensors(kExpectedOutputs);
  const Tensor bp = ex.get("batch_prompt"), bm = ex.get("batch_mask"), out = ex.get("batch_out");
  std::vector<std::vector<int32_t>> prompts;
  for (int64_t b = 0; b < bp.size(0); ++b) {
    const auto ids = row_ids(bp, b, 0), mask = row_ids(bm, b, 0);
    std::vector<int32_t> p;
    for (size_t i = 0; i < ids.size(); ++i)
      if (mask[i]) p.push_back(ids[i]);
    prompts.push_back(p);
  }
  GenerateOptions opts;
  opts.max_new_tokens = out.size(1) - bp.size(1);
  const GenerateResult r = generate(m, prompts, opts);
  for (int64_t b = 0; b < bp.size(0); ++b) {
    std::vector<int32_t> want = row_ids(out, b, bp.size(1));
    // HF pads finished rows with pad_token_id after EOS; we stop the row at EOS.
    const auto eos = std::find(want.begin(), want.end(), 2);
    if (eos != want.end()) want.erase(eos + 1, want.end());
    EXPECT_EQ(r.tokens[b], want) << "row " << b;
  }
}

}  // namespace lloco::models::testing
