// The one record type every dataset reader produces, plus the documents it points into.
// Documents are shared (QuALITY has one article per two writers, L-Eval ~13 questions per paper),
// so examples hold a shared pointer instead of a copy of the text.
#pragma once
#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lloco::eval {

struct Document {
  std::string id;
  std::string title;
  std::string split;
  std::shared_ptr<const std::string> text;  // null when the text is not available locally
  std::optional<size_t> declared_words;     // a length the dataset states (NarrativeQA story_word_count)
};

struct Example {
  std::string id;
  std::string doc_id;
  std::shared_ptr<const std::string> document;
  std::string question;
  std::vector<std::string> options;  // multiple choice (QuALITY), in A, B, C, D order
  std::vector<std::string> answers;  // references; multiple choice: "<letter>. <option text>"
  std::string dataset;               // quality, qasper, narrativeqa, hotpotqa, qmsum, longbench/<name>
  std::string split;
  std::map<std::string, std::string> meta;  // extra per-dataset fields (hotpot type/level, ...)

  const std::string& document_text() const;
};

// Everything read from one dataset file (or NarrativeQA directory).
struct DatasetFile {
  std::string path;
  std::string format;
  std::vector<Document> documents;
  std::vector<Example> examples;
  size_t skipped = 0;                  // malformed lines/records skipped (ReadOptions::skip_bad)
  std::vector<std::string> skip_reasons;  // the first few, for the report
};

}  // namespace lloco::eval
