#include "apps/needle_data.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

#include "core/atomic_file.h"
#include "eval/readers.h"

namespace lloco::apps {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("needle: cannot read " + path.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

std::string read_haystack(const HaystackSource& source) {
  const eval::DatasetFile data = eval::read_dataset(source.data, eval::parse_format(source.format));
  const std::string where = "needle: haystack " + source.data;
  if (source.row >= 0) {
    const std::string row = std::to_string(source.row);
    for (const eval::Example& ex : data.examples) {
      const auto it = ex.meta.find("row");
      if (it != ex.meta.end() && it->second == row) {
        if (!ex.document) throw std::runtime_error(where + ": row " + row + " (document " + ex.doc_id + ") has no text");
        return *ex.document;
      }
    }
    throw std::runtime_error(where + ": no example starts at row " + row + " (" + std::to_string(data.examples.size()) +
                             " examples; rows are recorded for the scrolls format, this file is " + data.format + ")");
  }
  const eval::Document* pick = nullptr;
  for (const eval::Document& doc : data.documents) {
    if (!doc.text) continue;
    if (!source.document.empty() ? doc.id == source.document : (!pick || doc.text->size() > pick->text->size()))
      pick = &doc;
  }
  if (!pick)
    throw std::runtime_error(where + (source.document.empty() ? ": no document has text"
                                                               : ": no document with text has id '" + source.document + "'"));
  return *pick->text;
}

eval::NeedleTokenizer needle_tokenizer(const models::Tokenizer& tok) {
  eval::NeedleTokenizer t;
  t.encode = [&tok](const std::string& text) { return tok.encode(text, false, false); };
  t.decode = [&tok](std::span<const int32_t> ids) { return tok.decode(ids); };
  t.break_ids = tok.encode("\n", true, false);
  return t;
}

size_t write_needle_dataset(const NeedleDataset& dataset, const models::Tokenizer& tok, const std::string& path) {
  const std::vector<eval::NeedleCase> cases =
      eval::build_needle_cases(read_haystack(dataset.haystack), dataset.spec, needle_tokenizer(tok));
  const std::string content = eval::needle_jsonl(cases);
  const fs::path target(path);
  if (!fs::exists(target)) {
    if (target.has_parent_path()) fs::create_directories(target.parent_path());
    write_file_atomic(path, content);
    return cases.size();
  }
  if (slurp(target) != content)
    throw std::runtime_error("needle: " + path +
                             " holds cases built from another haystack, grid, needle or tokenizer; its store and "
                             "predictions would be stale: use a new run directory or remove the dataset's folder");
  return cases.size();
}

std::vector<std::string> needle_cities(const std::string& spec) {
  if (spec == "test") return eval::needle_test_cities();
  if (spec == "train") return eval::needle_train_cities();
  std::vector<std::string> cities;
  std::stringstream in(spec);
  for (std::string city; std::getline(in, city, ',');)
    if (!city.empty()) cities.push_back(city);
  if (cities.empty()) throw std::runtime_error("needle: cities '" + spec + "' names no city (test, train or A,B,C)");
  return cities;
}

}  // namespace lloco::apps
