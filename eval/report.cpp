// Results tables; see report.h.
#include "eval/report.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "eval/error.h"
#include "eval/io.h"

namespace lloco::eval {
namespace {

constexpr const char* kSchema = "lloco.eval.results.v1";

// The paper's dataset order (its Table 1), then everything else alphabetically.
int dataset_rank(const std::string& d) {
  static const std::vector<std::string> order = {"quality", "qasper", "qmsum", "narrativeqa", "hotpotqa"};
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i] == d) return static_cast<int>(i);
  return static_cast<int>(order.size());
}

std::string fmt2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string opt2(const std::optional<double>& v) { return v ? fmt2(*v) : ""; }

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += "\"\"";
    else out.push_back(c);
  }
  return out + "\"";
}

std::string md_cell(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += ' ';
    else out.push_back(c);
  }
  return out;
}

}  // namespace

std::string display_name(const std::string& dataset) {
  static const std::map<std::string, std::string> names = {
      {"quality", "QuALITY"},      {"qasper", "Qasper"},  {"qmsum", "QMSum"}, {"narrativeqa", "NarrativeQA"},
      {"hotpotqa", "HotpotQA"},    {"needle", "Needle"}};
  auto it = names.find(dataset);
  return it == names.end() ? dataset : it->second;
}

std::optional<double> published_lloco(const std::string& dataset, const std::string& metric) {
  // arXiv 2404.07979 §4.1: LLoCO reaches 28.34 F1 on NarrativeQA (vs 14.42 for the baseline).
  if (dataset == "narrativeqa" && metric == "f1") return 28.34;
  return std::nullopt;
}

std::optional<double> average_score(const ResultsTable& t) {
  if (t.rows.empty()) return std::nullopt;
  double sum = 0;
  for (const auto& r : t.rows) sum += r.score;
  return sum / static_cast<double>(t.rows.size());
}

std::optional<double> average_paper(const ResultsTable& t) {
  if (t.rows.empty()) return std::nullopt;
  double sum = 0;
  for (const auto& r : t.rows) {
    if (!r.paper) return std::nullopt;
    sum += *r.paper;
  }
  return sum / static_cast<double>(t.rows.size());
}

nlohmann::json results_to_json(const ResultsTable& t) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : t.rows) {
    rows.push_back({{"dataset", r.dataset},
                    {"metric", r.metric},
                    {"score", r.score},
                    {"n", r.n},
                    {"components", r.components},
                    {"paper_lloco", r.paper ? nlohmann::json(*r.paper) : nlohmann::json(nullptr)},
                    {"predictions", r.predictions},
                    {"data", r.data},
                    {"skipped", r.skipped}});
  }
  auto avg = average_score(t), pavg = average_paper(t);
  return {{"schema", kSchema},
          {"system", t.system},
          {"rows", rows},
          {"average", {{"score", avg ? nlohmann::json(*avg) : nlohmann::json(nullptr)},
                       {"paper_lloco", pavg ? nlohmann::json(*pavg) : nlohmann::json(nullptr)}}}};
}

ResultsTable results_from_json(const nlohmann::json& j) {
  if (!j.is_object() || j.value("schema", std::string()) != kSchema)
    throw EvalError(std::string("results: expected schema '") + kSchema + "', got '" +
                    (j.is_object() ? j.value("schema", std::string("(none)")) : std::string("(not an object)")) + "'");
  ResultsTable t;
  t.system = j.value("system", std::string("ours"));
  for (const auto& r : j.at("rows")) {
    ResultRow row;
    row.dataset = r.at("dataset").get<std::string>();
    row.metric = r.at("metric").get<std::string>();
    row.score = r.at("score").get<double>();
    row.n = r.at("n").get<size_t>();
    row.components = r.value("components", std::map<std::string, double>{});
    if (r.contains("paper_lloco") && r["paper_lloco"].is_number()) row.paper = r["paper_lloco"].get<double>();
    row.predictions = r.value("predictions", std::string());
    row.data = r.value("data", std::string());
    row.skipped = r.value("skipped", size_t{0});
    t.rows.push_back(std::move(row));
  }
  return t;
}

void upsert_row(ResultsTable& t, ResultRow row) {
  for (auto& r : t.rows)
    if (r.dataset == row.dataset) {
      r = std::move(row);
      return;
    }
  auto pos = t.rows.begin();
  while (pos != t.rows.end() && (dataset_rank(pos->dataset) < dataset_rank(row.dataset) ||
                                 (dataset_rank(pos->dataset) == dataset_rank(row.dataset) && pos->dataset < row.dataset)))
    ++pos;
  t.rows.insert(pos, std::move(row));
}

std::string results_markdown(const ResultsTable& t) {
  std::ostringstream md;
  md << "# Evaluation results\n\nSystem: `" << md_cell(t.system) << "`. Scores are x100. "
     << "\"LLoCO (paper)\" lists only numbers confirmed from arXiv 2404.07979; blank = not available.\n\n";
  md << "| Dataset | Metric | N | " << md_cell(t.system) << " | LLoCO (paper) |\n|---|---|---:|---:|---:|\n";
  for (const auto& r : t.rows)
    md << "| " << md_cell(display_name(r.dataset)) << " | " << r.metric << " | " << r.n << " | " << fmt2(r.score) << " | "
       << opt2(r.paper) << " |\n";
  md << "| **Average** | | | " << opt2(average_score(t)) << " | " << opt2(average_paper(t)) << " |\n\n";
  // The paper's layout: one row per system, datasets as columns, then the average.
  md << "| System |";
  for (const auto& r : t.rows) md << " " << md_cell(display_name(r.dataset)) << " |";
  md << " Avg |\n|---|";
  for (size_t i = 0; i <= t.rows.size(); ++i) md << "---:|";
  md << "\n| " << md_cell(t.system) << " |";
  for (const auto& r : t.rows) md << " " << fmt2(r.score) << " |";
  md << " " << opt2(average_score(t)) << " |\n| LLoCO (paper) |";
  for (const auto& r : t.rows) md << " " << opt2(r.paper) << " |";
  md << " " << opt2(average_paper(t)) << " |\n";
  bool any_rouge = false;
  for (const auto& r : t.rows) any_rouge |= r.components.count("rouge1") > 0;
  if (any_rouge) {
    md << "\nROUGE components (F-measure, max over references, averaged):\n\n| Dataset | R-1 | R-2 | R-L | geometric mean |\n"
          "|---|---:|---:|---:|---:|\n";
    for (const auto& r : t.rows)
      if (r.components.count("rouge1"))
        md << "| " << md_cell(display_name(r.dataset)) << " | " << fmt2(r.components.at("rouge1")) << " | "
           << fmt2(r.components.at("rouge2")) << " | " << fmt2(r.components.at("rougeL")) << " | "
           << fmt2(r.components.at("geometric_mean")) << " |\n";
  }
  return md.str();
}

std::string results_csv(const ResultsTable& t) {
  std::ostringstream csv;
  csv << "dataset,metric,n," << csv_field(t.system) << ",paper_lloco\n";
  for (const auto& r : t.rows)
    csv << csv_field(r.dataset) << "," << csv_field(r.metric) << "," << r.n << "," << fmt2(r.score) << "," << opt2(r.paper)
        << "\n";
  csv << "average,,," << opt2(average_score(t)) << "," << opt2(average_paper(t)) << "\n";
  return csv.str();
}

std::vector<std::string> write_results(const std::string& dir, const std::string& system, const ResultRow& row) {
  namespace fs = std::filesystem;
  const fs::path json_path = fs::path(dir) / "results.json";
  ResultsTable table;
  table.system = system;
  if (fs::exists(json_path)) {
    std::ifstream in(json_path);
    nlohmann::json existing;
    try {
      existing = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      fail_at(json_path.string(), 0, std::string("cannot merge into an unreadable results file: ") + e.what());
    }
    table = results_from_json(existing);
    if (table.system != system)
      fail_at(json_path.string(), 0, "holds results of system '" + table.system + "', not '" + system +
                                         "'; use another --out directory");
  }
  upsert_row(table, row);
  const std::vector<std::string> paths = {json_path.string(), (fs::path(dir) / "results.md").string(),
                                          (fs::path(dir) / "results.csv").string()};
  write_file_atomic(paths[0], results_to_json(table).dump(2) + "\n");
  write_file_atomic(paths[1], results_markdown(table));
  write_file_atomic(paths[2], results_csv(table));
  return paths;
}

}  // namespace lloco::eval
