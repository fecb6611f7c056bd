// `lloco data stats`: per dataset file, the number of documents and questions and the document
// length distribution. Length is measured by a callback so the LLaMA tokenizer can replace the
// default whitespace word count.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/readers.h"

namespace lloco::eval {

using LengthCounter = std::function<size_t(const std::string&)>;
LengthCounter word_length_counter();  // Python len(text.split())

struct LengthStats {
  size_t count = 0;
  double mean = 0, p50 = 0, p95 = 0;  // percentiles interpolate linearly (numpy's default)
  size_t max = 0;
};
LengthStats length_stats(std::vector<size_t> lengths);

struct FileStats {
  std::string path;  // relative to the data directory when listed from one
  std::string format;
  std::vector<std::string> datasets;
  size_t documents = 0;
  size_t questions = 0;
  size_t skipped = 0;
  LengthStats doc_length;
  std::string length_unit = "words";
  std::string length_source;  // "text", or e.g. "story_word_count column" when texts are absent
};

// `unit` names what the counter counts ("words" for the default, "tokens" for a tokenizer);
// lengths a dataset only declares (NarrativeQA story_word_count) are always words.
FileStats file_stats(const std::string& path, Format format, const LengthCounter& counter,
                     const ReadOptions& opts = {}, const std::string& unit = "words");

// Every dataset file under data_dir (recursively; model and license folders are skipped, and a
// NarrativeQA folder counts once). Files whose format cannot be detected are listed in *unknown.
std::vector<FileStats> directory_stats(const std::string& data_dir, const LengthCounter& counter,
                                       std::vector<std::string>* unknown = nullptr,
                                       const std::string& unit = "words");

nlohmann::json stats_to_json(const std::vector<FileStats>& stats);
std::string stats_table(const std::vector<FileStats>& stats);  // fixed-width text for the terminal

}  // namespace lloco::eval
