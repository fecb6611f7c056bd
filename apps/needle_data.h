// Needle-in-a-haystack datasets on disk: the haystack document picked from a dataset file, and the
// cases of eval/needle.h built with the LLaMA tokenizer and written as a `needle` dataset file that
// every stage (compress, finetune, predict, eval) reads like any other.
#pragma once
#include <string>
#include <vector>

#include "apps/run_config.h"
#include "eval/needle.h"
#include "models/tokenizer.h"

namespace lloco::apps {

// The haystack's text: the document of `source.row` (a SCROLLS file's 0-based line), of id
// `source.document`, or else the longest document with text. Errors name the file and the choice.
std::string read_haystack(const HaystackSource& source);

// LLoCO's tokenization for the needle: encode without BOS, SentencePiece decode, and the break ids
// of encode("\n") with BOS (LLoCO asks HF's tokenizer for '\n' with its default special tokens).
eval::NeedleTokenizer needle_tokenizer(const models::Tokenizer& tok);

// Builds the cases and writes them to `path`. An existing file with the same content is kept; one
// with other content is an error, because stores and predictions keyed by case id would be stale.
// Returns the number of cases.
size_t write_needle_dataset(const NeedleDataset& dataset, const models::Tokenizer& tok, const std::string& path);

// The random needle's cities: LLoCO's "test" or "train" list, or a comma-separated list of names.
std::vector<std::string> needle_cities(const std::string& spec);

}  // namespace lloco::apps
