// `lloco run`'s experiment config: the YAML is read and validated here (apps/ is the only layer that
// reads configs) into RunConfig with LLoCO's defaults. Errors name the key path and its YAML line.
#pragma once
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "apps/context_input.h"
#include "compress/autocompressor.h"
#include "eval/needle.h"
#include "lora/adapter_training.h"
#include "lora/adapters.h"

namespace lloco::apps {

// Where a needle test's haystack comes from: one document of a dataset file. `row` (a SCROLLS file's
// 0-based line, LLoCO's "validation row 97") or `document` (an id) picks it; neither: the longest.
struct HaystackSource {
  std::string data, format = "auto";
  int64_t row = -1;
  std::string document;
};

// A generated needle-in-a-haystack dataset (eval/needle.h) in place of a dataset file.
struct NeedleDataset {
  HaystackSource haystack;
  eval::NeedleSpec spec;
};

struct DatasetEntry {
  std::string name, format = "auto", train, eval;
  std::optional<NeedleDataset> needle_eval, needle_train;  // `needle`, `needle_train` keys
  // The lloco system's adapter: "" trains a fresh one on `train`; one of `adapters:`, an earlier
  // dataset of the run (its adapter) or a PEFT directory is reused as is, or, with `train`, fine-tuned
  // further (LLoCO's needle runs: the NarrativeQA adapter, further trained on synthetic needles).
  std::string adapter;
  enum class AdapterSource { kNone, kNamed, kDataset, kPath } adapter_source = AdapterSource::kNone;
  int64_t train_examples = 0;    // > 0: a random subset of the training questions (seeded by finetune.seed)
  int64_t max_new_tokens = 0;    // > 0: overrides predict.max_new_tokens (LongBench's per-set lengths)
};

// One training file of a named adapter.
struct TrainSource {
  std::string file, format = "auto";
  int64_t examples = 0;  // > 0: a random subset of its questions (seeded by finetune.seed)
};

// An adapter trained on several datasets at once (`adapters:`; LLoCO's combined fine-tune: every
// dataset, 10,000 questions each of NarrativeQA and HotpotQA), used by datasets that name it.
struct NamedAdapter {
  std::string name;
  std::vector<TrainSource> train;
};

// One column of the results table: what the decoder reads in front of the question, whether it answers
// with a LoRA fine-tuned on that input, and which decoder answers. A system is a built-in name or a
// mapping; the built-ins: lloco (compressed + the dataset's adapter), compressed (AutoCompressor out of
// the box), no_context, truncated_text and retrieved_text. A mapping gives LLoCO's other rows, e.g.
// Table 2's decoder fine-tuned on the uncompressed document ({context: truncated_text, finetune: true})
// or its 32k baseline ({context: truncated_text, decoder: LongChat-7b-v1.5-32k, text_budget: 32000}).
struct SystemSpec {
  std::string name;                             // the results column and the run's <dataset>/<name>/ directory
  ContextKind context = ContextKind::kCompressed;
  bool finetune = false;  // lloco: the dataset's adapter (its `adapter`, `adapters:`); any other: a LoRA
                          // trained per dataset on its `train` set with this context, in <dataset>/<name>/adapter
  std::string decoder, tokenizer;  // "" = the run's
  int64_t text_budget = 0;         // > 0: predict.text_budget for this system (a longer decoder's window)
  bool builtin = true;             // given by name
};

// The built-in system `name`; nullopt for any other name.
std::optional<SystemSpec> builtin_system(const std::string& name);

struct RunConfig {
  std::string name, encoder, decoder, tokenizer, device = "cpu", dtype;
  compress::CompressOptions compress;
  int64_t docs_per_shard = 64;
  lora::AdapterTrainOptions finetune;
  double epochs = 3.0;
  int64_t steps = 0;  // 0: from epochs
  bool gradient_checkpointing = false;  // recompute each decoder layer in backward (LLoCO's runs did)
  lora::LoraConfig lora;
  int64_t max_new_tokens = 50, text_budget = 4000;
  int64_t retrieval_chunk_tokens = 512, retrieval_top_k = 5;  // retrieved_text
  std::string retriever = "bm25", retriever_model;  // retrieved_text: bm25, or contriever (a BERT directory)
  std::vector<SystemSpec> systems{*builtin_system("lloco")};
  std::vector<NamedAdapter> adapters;
  std::vector<DatasetEntry> datasets;
};

inline const std::vector<std::string>& run_systems() {
  static const std::vector<std::string> systems{"lloco", "compressed", "no_context", "truncated_text", "retrieved_text"};
  return systems;
}

inline bool has_system(const RunConfig& c, const std::string& name) {
  return std::any_of(c.systems.begin(), c.systems.end(), [&](const SystemSpec& s) { return s.name == name; });
}
inline bool has_context(const RunConfig& c, ContextKind kind) {
  return std::any_of(c.systems.begin(), c.systems.end(), [&](const SystemSpec& s) { return s.context == kind; });
}

// Reads and validates CONFIG.yaml; relative paths resolve against `root`.
RunConfig parse_run_config(const std::string& path, const std::string& root);

// Input files and directories the config names that are not there ("<what>: <path>"), so a run can
// refuse to start before loading any weights.
std::vector<std::string> missing_inputs(const RunConfig& c);

// What the run will do, one dataset a paragraph (`lloco run --dry-run`).
std::string describe_plan(const RunConfig& c);

}  // namespace lloco::apps
