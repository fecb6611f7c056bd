// Dataset readers. Each returns a DatasetFile of Examples (+ the Documents they point into):
//   quality      QuALITY v1.0.1 jsonl (htmlstripped; one line per article x writer)
//   leval        L-Eval jsonl (quality.jsonl -> "quality", scientific_qa.jsonl -> "qasper")
//   qasper       Qasper v0.3 json (object keyed by paper id)
//   narrativeqa  NarrativeQA csv directory (documents.csv [+ qaps.csv, summaries.csv, stories])
//   hotpotqa     HotpotQA json array (distractor or fullwiki)
//   qmsum        QMSum jsonl (one meeting per line; general + specific queries)
//   scrolls      SCROLLS jsonl (id/pid/input/output; repeated ids are extra references)
//   longbench    LongBench jsonl (input/context/answers/length/dataset/language/all_classes/_id)
//   needle       needle-in-a-haystack cases (eval/needle.h write_needle_jsonl; one case per line)
// JSONL is read line by line and whole-file JSON record by record, so memory holds the examples,
// not the parse tree.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "eval/example.h"

namespace lloco::eval {

enum class Format { kAuto, kQuality, kLEval, kQasper, kNarrativeQA, kHotpotQA, kQMSum, kScrolls, kLongBench, kNeedle };

Format parse_format(std::string_view name);  // throws on unknown names, listing the valid ones
std::string format_name(Format f);
Format detect_format(const std::string& path);  // sniffs extension / first line; throws if unsure

// quality, qasper, narrativeqa, hotpotqa, qmsum, longbench/<subset>; common aliases accepted
// (narrative_qa, hotpot_qa, scientific_qa, quality_raw, ...). Unknown names pass through.
std::string canonical_dataset(std::string_view name);

struct ReadOptions {
  bool skip_bad = false;  // skip malformed lines/records (counted in DatasetFile::skipped)
  std::string dataset;    // SCROLLS: which dataset the file holds (else guessed from its name)
  std::string split;      // overrides the split label guessed from the file name
  // NarrativeQA: where "<document_id>.content" story files live (default: <dir>/tmp if present),
  // and whether documents are the Wikipedia summaries instead of the stories.
  std::string narrativeqa_stories_dir;
  bool narrativeqa_use_summaries = false;
  std::string narrativeqa_set;  // keep only this `set` (train/valid/test); empty = all
};

DatasetFile read_dataset(const std::string& path, Format format = Format::kAuto, const ReadOptions& opts = {});

DatasetFile read_quality(const std::string& path, const ReadOptions& opts = {});
DatasetFile read_leval(const std::string& path, const ReadOptions& opts = {});
DatasetFile read_qasper(const std::string& path, const ReadOptions& opts = {});
DatasetFile read_narrativeqa(const std::string& path, const ReadOptions& opts = {});
DatasetFile read_hotpotqa(const std::string& path, const ReadOptions& opts = {});
DatasetFile read_qmsum(const std::string& path, const ReadOptions& opts = {});
DatasetFile read_scrolls(const std::string& path, const ReadOptions& opts = {});
DatasetFile read_longbench(const std::string& path, const ReadOptions& opts = {});
// Example meta: length, depth_percent, iteration, context_tokens, needle (decimal strings / text).
DatasetFile read_needle(const std::string& path, const ReadOptions& opts = {});

// Splits an L-Eval multiple-choice instruction "question\n (A) ...\n (B) ..." into the question
// and its options; returns false when it has no "(A)".."(D)" options on their own lines.
bool split_choice_instruction(const std::string& instruction, std::string* question, std::vector<std::string>* options);

// SCROLLS' input layout as LLoCO reads it: question = first line (str.splitlines()), document = the
// remaining lines joined with "\n".
void split_scrolls_input(const std::string& input, std::string* question, std::string* document);

std::string split_from_filename(const std::string& path);  // "dev"/"train"/"test"/"validation"/""

}  // namespace lloco::eval
