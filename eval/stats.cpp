// Dataset statistics; see stats.h.
#include "eval/stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>

#include "eval/error.h"
#include "eval/unicode.h"

namespace lloco::eval {
namespace fs = std::filesystem;

LengthCounter word_length_counter() {
  return [](const std::string& s) { return text::count_ws_words(s); };
}

LengthStats length_stats(std::vector<size_t> lengths) {
  LengthStats s;
  s.count = lengths.size();
  if (lengths.empty()) return s;
  std::sort(lengths.begin(), lengths.end());
  double sum = 0;
  for (size_t v : lengths) sum += static_cast<double>(v);
  s.mean = sum / static_cast<double>(lengths.size());
  auto pct = [&](double q) {
    const double pos = q * static_cast<double>(lengths.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, lengths.size() - 1);
    const double frac = pos - static_cast<double>(lo);
    return static_cast<double>(lengths[lo]) + frac * (static_cast<double>(lengths[hi]) - static_cast<double>(lengths[lo]));
  };
  s.p50 = pct(0.50);
  s.p95 = pct(0.95);
  s.max = lengths.back();
  return s;
}

FileStats file_stats(const std::string& path, Format format, const LengthCounter& counter, const ReadOptions& opts,
                     const std::string& unit) {
  const DatasetFile file = read_dataset(path, format, opts);
  FileStats st;
  st.path = path;
  st.length_unit = unit;
  st.format = file.format;
  st.documents = file.documents.size();
  st.questions = file.examples.size();
  st.skipped = file.skipped;
  std::set<std::string> datasets;
  for (const auto& ex : file.examples) datasets.insert(ex.dataset);
  if (datasets.empty() && file.format == "narrativeqa") datasets.insert("narrativeqa");
  st.datasets.assign(datasets.begin(), datasets.end());
  std::vector<size_t> lengths;
  size_t from_text = 0, declared = 0;
  for (const auto& d : file.documents) {
    if (d.text) {
      lengths.push_back(counter(*d.text));
      ++from_text;
    } else if (d.declared_words) {
      lengths.push_back(*d.declared_words);
      ++declared;
    }
  }
  st.doc_length = length_stats(std::move(lengths));
  if (declared == 0) st.length_source = "text";
  else if (from_text == 0) st.length_source = "story_word_count column (texts not available)";
  else st.length_source = "text where available, else story_word_count";
  return st;
}

std::vector<FileStats> directory_stats(const std::string& data_dir, const LengthCounter& counter,
                                       std::vector<std::string>* unknown, const std::string& unit) {
  if (!fs::is_directory(data_dir)) fail_at(data_dir, 0, "not a directory");
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(data_dir); it != fs::recursive_directory_iterator(); ++it) {
    const std::string name = it->path().filename().string();
    if (it->is_directory() && (name == "models" || name == "licenses" || name.rfind('.', 0) == 0)) {
      it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file()) continue;
    const std::string ext = it->path().extension().string();
    if (ext == ".jsonl" || ext == ".json" || ext == ".csv") files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  std::vector<FileStats> out;
  std::set<fs::path> narrativeqa_dirs;
  for (const auto& p : files) {
    if (p.extension() == ".csv") {
      // documents.csv, qaps.csv and summaries.csv of one folder are a single NarrativeQA dataset.
      const fs::path dir = p.parent_path();
      if (!narrativeqa_dirs.insert(dir).second) continue;
      FileStats st = file_stats(dir.string(), Format::kNarrativeQA, counter, {}, unit);
      st.path = fs::relative(dir, data_dir).string();
      out.push_back(std::move(st));
      continue;
    }
    Format f;
    try {
      f = detect_format(p.string());
    } catch (const EvalError&) {
      if (unknown) unknown->push_back(fs::relative(p, data_dir).string());
      continue;
    }
    FileStats st = file_stats(p.string(), f, counter, {}, unit);
    st.path = fs::relative(p, data_dir).string();
    out.push_back(std::move(st));
  }
  return out;
}

nlohmann::json stats_to_json(const std::vector<FileStats>& stats) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& s : stats)
    files.push_back({{"path", s.path},
                     {"format", s.format},
                     {"datasets", s.datasets},
                     {"documents", s.documents},
                     {"questions", s.questions},
                     {"skipped", s.skipped},
                     {"doc_length",
                      {{"unit", s.length_unit},
                       {"source", s.length_source},
                       {"count", s.doc_length.count},
                       {"mean", s.doc_length.mean},
                       {"p50", s.doc_length.p50},
                       {"p95", s.doc_length.p95},
                       {"max", s.doc_length.max}}}});
  return {{"schema", "lloco.data.stats.v1"}, {"files", files}};
}

std::string stats_table(const std::vector<FileStats>& stats) {
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-48s %-12s %9s %9s %10s %10s %10s %10s\n", "file", "format", "docs", "questions",
                "mean", "p50", "p95", "max");
  out << line;
  for (const auto& s : stats) {
    std::snprintf(line, sizeof line, "%-48s %-12s %9zu %9zu %10.1f %10.1f %10.1f %10zu\n", s.path.c_str(),
                  s.format.c_str(), s.documents, s.questions, s.doc_length.mean, s.doc_length.p50, s.doc_length.p95,
                  s.doc_length.max);
    out << line;
    if (s.length_source != "text") out << "    (document lengths from the " << s.length_source << ")\n";
    if (s.skipped) out << "    (" << s.skipped << " malformed lines skipped)\n";
  }
  out << "document length unit: " << (stats.empty() ? "words" : stats.front().length_unit) << "\n";
  return out.str();
}

}  // namespace lloco::eval
