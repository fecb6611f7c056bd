// Text generation with a KV cache: one prefill pass over the (left-padded) prompts, then one cached
// decode step per token. Sampling follows HF transformers' processors in HF order: repetition
// penalty, then temperature, top-k, top-p; temperature 0 is greedy (argmax, first index on ties).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/llama.h"
#include "models/tokenizer.h"

namespace lloco::models {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  double repetition_penalty = 1.0;
  uint64_t seed = 0;  // row b draws from mt19937_64(seed + b * golden-ratio constant)
  std::vector<int32_t> eos_ids;    // empty: the model config's eos_token_id
  std::vector<std::string> stop;   // stop strings (need a tokenizer)
  int32_t pad_id = 0;              // fills left padding (masked out)
  Tensor prefix_embeddings;        // [B, P, D] (or [1, P, D], broadcast) before every prompt: LLoCO
  // Real prefix rows per sequence (<= P; the rest of its prefix block is masked out), so requests
  // with different contexts share a batch. Empty: all P.
  std::vector<int64_t> prefix_lengths;
  // Per-sequence cap on new tokens (<= max_new_tokens); empty: max_new_tokens for every row.
  std::vector<int64_t> row_max_new_tokens;
  // Asked after every decode step; true ends the unfinished rows (FinishReason::Cancelled), e.g.
  // when a server's client has gone. row_cancelled(b) does the same for one row.
  std::function<bool()> cancelled;
  std::function<bool(int64_t row)> row_cancelled;
};

enum class FinishReason : uint8_t { Length, Eos, Stop, Cancelled };

struct GenerateResult {
  std::vector<std::vector<int32_t>> tokens;  // new tokens per prompt, EOS included when hit
  std::vector<std::string> texts;            // decoded new tokens, cut before a stop string (with a tokenizer)
  std::vector<FinishReason> finish;
  int64_t prefill_tokens = 0, decode_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
};

// Called for every new token of every unfinished row, in order.
using TokenCallback = std::function<void(int64_t row, int32_t token)>;

// Samples one token from logits [V] (f32 on the host) given the ids so far (for the penalty).
// `uniform` is a draw in [0, 1) used only when sampling.
int32_t sample_token(std::vector<float> logits, const std::vector<int32_t>& history, const GenerateOptions& opts,
                     double uniform);

GenerateResult generate(const LlamaModel& model, const std::vector<std::vector<int32_t>>& prompts,
                        const GenerateOptions& opts, const Tokenizer* tokenizer = nullptr,
                        const TokenCallback& on_token = nullptr);

}  // namespace lloco::models
