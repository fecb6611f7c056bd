// The AutoCompressor context encoder (princeton-nlp/AutoCompressor-Llama-2-7b-6k, as LLoCO uses it
// offline): a document is cut into fixed-length segments; segment k is encoded as
// [softprompt_k ; segment tokens ; summary_length learned summary-token embeddings] with positions
// 0 .. L-1, and the final hidden states (after the final norm) at the summary positions are the new
// summary vectors; softprompt_{k+1} = softprompt_k ++ new (accumulate_summary). The document's
// summary vectors are the last softprompt: summary_length * ceil(N / segment_length) of them, the
// decoder's prefix embeddings.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "models/checkpoint.h"
#include "models/llama.h"

namespace lloco::compress {

// LLoCO feeds at most 80 segments of 1536 tokens to the encoder (its "128k window"): longer
// documents are cut there (models::encode_long_document's max_tokens).
constexpr int64_t kMaxDocumentTokens = 122880;

struct CompressOptions {
  int64_t segment_length = 1536;      // LLoCO: 1536 tokens, 50 summary vectors each (30x)
  bool summarize_last_segment = true; // AutoCompressors' output_softprompt (LLoCO: true)
};

class AutoCompressor {
 public:
  // embed_summary [summary_length, D]: the learned summary-token table (not part of the vocabulary).
  AutoCompressor(models::LlamaModel model, Tensor embed_summary, bool accumulate_summary);

  // An HF directory: config.json with summary_length (and accumulate_summary, default false as in
  // AutoCompressors) and weights holding embed_summary.weight next to the LLaMA ones. Errors name
  // the file and the field or tensor.
  static AutoCompressor load(const std::string& dir, const models::LoadOptions& options = {});

  // Summary vectors of one document, [count, D] in the model's dtype and device (no autograd).
  // count = summary_length * segments (accumulated), or summary_length (not accumulated).
  Tensor compress(const std::vector<int32_t>& ids, const CompressOptions& options = {}) const;
  // How many vectors compress() returns for n tokens.
  int64_t num_vectors(int64_t n_tokens, const CompressOptions& options = {}) const;

  int64_t summary_length() const { return embed_summary_.size(0); }
  bool accumulate_summary() const { return accumulate_; }
  const models::LlamaModel& model() const { return model_; }
  const Tensor& embed_summary() const { return embed_summary_; }
  AutoCompressor to(Device device) const;

 private:
  models::LlamaModel model_;
  Tensor embed_summary_;
  bool accumulate_ = true;
};

// The LLoCO decoder from an HF directory: a plain LLaMA checkpoint, or an AutoCompressor's (whose
// LLaMA weights LLoCO decodes with; its summary-token table is not needed to decode and is dropped).
models::LlamaModel load_decoder(const std::string& dir, const models::LoadOptions& options = {});

}  // namespace lloco::compress
