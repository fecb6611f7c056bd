// The LLoCO stages on dataset files, shared by the stage commands (compress, finetune, predict) and
// `lloco run`, which chains them from a YAML config. Each stage resumes from what its output already
// holds, so a stopped run continues.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "apps/context_input.h"
#include "compress/store.h"
#include "eval/example.h"
#include "lora/adapter_training.h"
#include "models/generate.h"
#include "models/llama.h"
#include "core/collective.h"
#include "models/tokenizer.h"
#include "retrieve/ranker.h"

namespace lloco::apps {

// Compresses the dataset's documents that have text into the store `dir`, in document group `group`
// ("" = none), with their texts for the retrievers; shared out over `comm`'s ranks when given
// (apps/sharded.h), returning on every rank once the store is complete.
compress::StoreManifest compress_dataset(const compress::AutoCompressor& encoder, const eval::DatasetFile& data,
                                         const models::Tokenizer& tok, const std::string& dir,
                                         const compress::CorpusOptions& options, const std::string& group = "",
                                         Communicator* comm = nullptr);

// A random subset of `n` examples (all when n <= 0 or n >= their count), kept in file order, with the
// documents they point to; the subset depends only on the seed (LLoCO: 20,000 HotpotQA training
// questions, and 10,000 of NarrativeQA and HotpotQA each in its combined fine-tune).
eval::DatasetFile sample_examples(eval::DatasetFile data, int64_t n, uint64_t seed);

// The training pairs of a dataset: [the context ContextBuilder gives its question ; the prompt] -> the
// reference answer + EOS. LLoCO's are the document's summary vectors (kCompressed, prompts without
// BOS); the text contexts give the fine-tuned text baselines of LLoCO's Table 2.
std::vector<lora::QaExample> qa_examples(const eval::DatasetFile& data, const models::Tokenizer& tok,
                                         const ContextOptions& context, Device device);

// The context (apps/context_input.h) and how the answers are generated.
struct PredictOptions : ContextOptions {
  int64_t max_new_tokens = 50;  // LLoCO's default (its QMSum script uses 96)
  int64_t save_every = 16;      // the predictions file is rewritten atomically this often
  bool quiet = false;
};

// Cost of the predictions, accumulated over runs in <out>.cost.json: what the decoder read (summary
// vectors + prompt tokens), how long prefill (time to first token) and decoding took, and peak memory.
// The peaks are reset when a predict_dataset call starts, so in a process that runs several systems
// each gets its own; what was resident before (weights, in `lloco run` also the encoder) counts.
// Over resumed runs the maximum of the calls that added predictions is kept.
struct PredictCost {
  size_t examples = 0;
  double context_positions = 0;  // summary vectors + prompt tokens, summed
  double prefill_seconds = 0, decode_seconds = 0, decode_tokens = 0;
  double peak_host_bytes = 0;          // peak resident set size (VmHWM)
  bool peak_host_process_wide = false;  // the kernel could not reset VmHWM: the process's peak so far
  double peak_device_bytes = 0;        // CUDA allocator's peak live bytes (cached free blocks excluded); 0 on CPU
};
struct PredictCount {
  size_t total = 0, added = 0;
  PredictCost cost;
};

// The (id, line) pairs of a predictions file's lines that parse and have both fields, the first per
// id, in file order; none when the file is missing.
std::vector<std::pair<std::string, std::string>> read_prediction_lines(const std::string& path);

// A predictions file's cost record (OUT.cost.json); zeros when it is missing, unreadable, or counts
// more than `max_examples` examples (it then belongs to other predictions).
PredictCost read_predict_cost(const std::string& path, size_t max_examples);
void write_predict_cost(const std::string& path, const PredictCost& cost);  // atomically

// Greedy answers for every example of `data` into `out` ({"id", "prediction"} lines, what `lloco
// eval` reads); examples already answered in `out` are kept and skipped.
PredictCount predict_dataset(const models::LlamaModel& model, const models::Tokenizer& tok, const eval::DatasetFile& data,
                             const std::string& out, const PredictOptions& options);

// predict_dataset over the ranks: the questions `out` has no answer for yet are shared out, each rank
// answers into OUT.rank-R, and rank 0 folds those files (and their cost records) into `out`.
// The returned cost is the whole file's on rank 0; other ranks get their own part's.
PredictCount predict_sharded(Communicator& comm, const models::LlamaModel& model, const models::Tokenizer& tok,
                             const eval::DatasetFile& data, const std::string& out, const PredictOptions& options);

}  // namespace lloco::apps
