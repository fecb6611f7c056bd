// The LLoCO stages on dataset files, shared by the stage commands (compress, finetune, predict) and
// `lloco run`, which chains them from a YAML config. Each stage resumes from what its output already
// holds, so a stopped run continues.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "compress/store.h"
#include "eval/example.h"
#include "lora/adapter_training.h"
#include "models/generate.h"
#include "models/llama.h"
#include "models/tokenizer.h"

namespace lloco::apps {

// Compresses the dataset's documents that have text into the store `dir`.
compress::StoreManifest compress_dataset(const compress::AutoCompressor& encoder, const eval::DatasetFile& data,
                                         const models::Tokenizer& tok, const std::string& dir,
                                         const compress::CorpusOptions& options);

// LLoCO's training pairs of a dataset: [its document's summary vectors ; LLoCO's prompt] -> the
// reference answer + EOS (prompts without BOS, as LLoCO feeds them after the summary vectors).
std::vector<lora::QaExample> qa_examples(const eval::DatasetFile& data, const models::Tokenizer& tok,
                                         const std::string& store_dir, Device device);

// What precedes LLoCO's prompt: the document's summary vectors (from store_dir), nothing, or the
// document as text truncated to text_budget tokens with the prompt (LLoCO's 4k-window baseline).
enum class ContextKind { kCompressed, kNone, kTruncatedText };

struct PredictOptions {
  ContextKind context = ContextKind::kCompressed;
  std::string store_dir;        // kCompressed
  int64_t text_budget = 4000;   // kTruncatedText: document + prompt tokens
  int64_t max_new_tokens = 50;  // LLoCO's default (its QMSum script uses 96)
  int64_t save_every = 16;      // the predictions file is rewritten atomically this often
  bool quiet = false;
};

// Cost of the predictions, accumulated over runs in <out>.cost.json: what the decoder read (summary
// vectors + prompt tokens) and how long prefill (time to first token) and decoding took.
struct PredictCost {
  size_t examples = 0;
  double context_positions = 0;  // summary vectors + prompt tokens, summed
  double prefill_seconds = 0, decode_seconds = 0, decode_tokens = 0;
};
struct PredictCount {
  size_t total = 0, added = 0;
  PredictCost cost;
};

// Greedy answers for every example of `data` into `out` ({"id", "prediction"} lines, what `lloco
// eval` reads); examples already answered in `out` are kept and skipped.
PredictCount predict_dataset(const models::LlamaModel& model, const models::Tokenizer& tok, const eval::DatasetFile& data,
                             const std::string& out, const PredictOptions& options);

}  // namespace lloco::apps
