// Format names, format sniffing, dataset aliases and the read_dataset dispatcher.
#include "eval/readers.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "eval/error.h"
#include "eval/io.h"
#include "eval/unicode.h"

namespace lloco::eval {
namespace {

const std::map<std::string, Format, std::less<>>& format_table() {
  static const std::map<std::string, Format, std::less<>> table = {
      {"auto", Format::kAuto},       {"quality", Format::kQuality},         {"leval", Format::kLEval},
      {"qasper", Format::kQasper},   {"narrativeqa", Format::kNarrativeQA}, {"hotpotqa", Format::kHotpotQA},
      {"qmsum", Format::kQMSum},     {"scrolls", Format::kScrolls},         {"longbench", Format::kLongBench},
      {"needle", Format::kNeedle}};
  return table;
}

std::string lowercase_ascii(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

Format sniff_record(const json& rec) {
  if (!rec.is_object()) return Format::kAuto;
  auto has = [&](const char* k) { return rec.contains(k); };
  if (has("instructions") && has("outputs")) return Format::kLEval;
  if (has("questions") && has("article")) return Format::kQuality;
  if (has("meeting_transcripts")) return Format::kQMSum;
  // Needle cases also carry _id/context/answers, so they are told apart before LongBench.
  if (has("_id") && has("depth_percent") && has("needle") && has("context")) return Format::kNeedle;
  if (has("context") && has("answers") && has("_id")) return Format::kLongBench;
  if (has("input") && has("output") && (has("pid") || has("id"))) return Format::kScrolls;
  if (!rec.empty() && rec.begin()->is_object() && rec.begin()->contains("qas")) return Format::kQasper;
  return Format::kAuto;
}

}  // namespace

const std::string& Example::document_text() const {
  static const std::string empty;
  return document ? *document : empty;
}

Format parse_format(std::string_view name) {
  const auto& table = format_table();
  auto it = table.find(lowercase_ascii(name));
  if (it != table.end()) return it->second;
  std::string valid;
  for (const auto& [k, v] : table) valid += (valid.empty() ? "" : ", ") + k;
  throw EvalError("unknown data format '" + std::string(name) + "' (valid: " + valid + ")");
}

std::string format_name(Format f) {
  for (const auto& [k, v] : format_table())
    if (v == f) return k;
  return "unknown";
}

std::string canonical_dataset(std::string_view name) {
  static const std::map<std::string, std::string, std::less<>> aliases = {
      {"quality", "quality"},         {"quality_raw", "quality"},   {"qasper", "qasper"},
      {"scientific_qa", "qasper"},    {"narrativeqa", "narrativeqa"}, {"narrative_qa", "narrativeqa"},
      {"nqa", "narrativeqa"},         {"hotpotqa", "hotpotqa"},     {"hotpot_qa", "hotpotqa"},
      {"hotpot", "hotpotqa"},         {"hqa", "hotpotqa"},          {"qmsum", "qmsum"}};
  const std::string lower = lowercase_ascii(name);
  auto it = aliases.find(lower);
  return it != aliases.end() ? it->second : lower;
}

std::string split_from_filename(const std::string& path) {
  const std::string name = lowercase_ascii(std::filesystem::path(path).filename().string());
  for (const char* s : {"validation", "train", "test"})
    if (name.find(s) != std::string::npos) return s;
  if (name.find("dev") != std::string::npos) return "dev";
  if (name.find("val") != std::string::npos) return "validation";
  return "";
}

Format detect_format(const std::string& path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(path)) {
    if (fs::exists(fs::path(path) / "documents.csv") || fs::exists(fs::path(path) / "qaps.csv"))
      return Format::kNarrativeQA;
    fail_at(path, 0, "a directory is only read as NarrativeQA (documents.csv / qaps.csv), none found");
  }
  if (!fs::exists(path)) fail_at(path, 0, "no such file");
  if (lowercase_ascii(fs::path(path).extension().string()) == ".csv") return Format::kNarrativeQA;
  const char first = first_nonspace_char(path);
  if (first == '[') return Format::kHotpotQA;
  if (first != '{') fail_at(path, 1, "cannot detect the format: the file does not start with JSON");
  const std::string line = first_nonblank_line(path);
  try {
    const Format f = sniff_record(json::parse(line));
    if (f != Format::kAuto) return f;
  } catch (const json::parse_error&) {
    return Format::kQasper;  // a pretty-printed whole-file object
  }
  fail_at(path, 1, "cannot detect the format from the first record's fields; pass --format");
}

DatasetFile read_dataset(const std::string& path, Format format, const ReadOptions& opts) {
  if (format == Format::kAuto) format = detect_format(path);
  switch (format) {
    case Format::kQuality: return read_quality(path, opts);
    case Format::kLEval: return read_leval(path, opts);
    case Format::kQasper: return read_qasper(path, opts);
    case Format::kNarrativeQA: return read_narrativeqa(path, opts);
    case Format::kHotpotQA: return read_hotpotqa(path, opts);
    case Format::kQMSum: return read_qmsum(path, opts);
    case Format::kScrolls: return read_scrolls(path, opts);
    case Format::kLongBench: return read_longbench(path, opts);
    case Format::kNeedle: return read_needle(path, opts);
    case Format::kAuto: break;
  }
  throw EvalError("read_dataset: unresolved format for " + path);
}

bool split_choice_instruction(const std::string& instruction, std::string* question,
                              std::vector<std::string>* options) {
  // An option marker "(X)" counts only at the start of a line (after optional blanks), so a
  // parenthesised letter inside the question text is not mistaken for one.
  auto marker_at = [&](size_t from, char letter) -> size_t {
    for (size_t p = instruction.find(std::string("(") + letter + ")", from); p != std::string::npos;
         p = instruction.find(std::string("(") + letter + ")", p + 1)) {
      size_t q = p;
      while (q > 0 && (instruction[q - 1] == ' ' || instruction[q - 1] == '\t')) --q;
      if (q > 0 && instruction[q - 1] == '\n') return p;
    }
    return std::string::npos;
  };
  std::vector<size_t> starts;
  size_t from = 0;
  for (char letter = 'A'; letter <= 'Z'; ++letter) {
    const size_t p = marker_at(from, letter);
    if (p == std::string::npos) break;
    starts.push_back(p);
    from = p + 3;
  }
  if (starts.size() < 2) return false;
  *question = text::strip_ws(instruction.substr(0, starts[0]));
  options->clear();
  for (size_t i = 0; i < starts.size(); ++i) {
    const size_t begin = starts[i] + 3;
    const size_t end = i + 1 < starts.size() ? starts[i + 1] : instruction.size();
    options->push_back(text::strip_ws(instruction.substr(begin, end - begin)));
  }
  return true;
}

void split_scrolls_input(const std::string& input, std::string* question, std::string* document) {
  const std::vector<std::string> lines = text::splitlines(input);
  question->assign(lines.empty() ? "" : lines[0]);
  document->clear();
  for (size_t i = 1; i < lines.size(); ++i) {
    if (i > 1) document->push_back('\n');
    *document += lines[i];
  }
}

}  // namespace lloco::eval
