// Results tables: one row per dataset (our score beside the paper's published number where one
// is confirmed), written as JSON, Markdown and CSV, each atomically. Re-running `lloco eval` into
// the same directory replaces that dataset's row and keeps the others, so one table accumulates.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lloco::eval {

struct ResultRow {
  std::string dataset;
  std::string metric;
  double score = 0;  // x100
  size_t n = 0;
  std::map<std::string, double> components;
  std::optional<double> paper;  // the LLoCO paper's number for this dataset and metric
  std::string predictions;
  std::string data;
  size_t skipped = 0;
};

struct ResultsTable {
  std::string system = "ours";
  std::vector<ResultRow> rows;
};

// Numbers from arXiv 2404.07979 that could be confirmed (lloco-method.md §0); others are absent.
std::optional<double> published_lloco(const std::string& dataset, const std::string& metric);

std::optional<double> average_score(const ResultsTable& t);
std::optional<double> average_paper(const ResultsTable& t);  // only if every row has a paper number

nlohmann::json results_to_json(const ResultsTable& t);
ResultsTable results_from_json(const nlohmann::json& j);  // throws on a schema mismatch
std::string results_markdown(const ResultsTable& t);
std::string results_csv(const ResultsTable& t);

// Inserts or replaces the row for row.dataset, keeping datasets in the paper's order.
void upsert_row(ResultsTable& t, ResultRow row);

// Merges `row` into <dir>/results.json (if present) and rewrites results.{json,md,csv}.
// Returns the paths written.
std::vector<std::string> write_results(const std::string& dir, const std::string& system, const ResultRow& row);

std::string display_name(const std::string& dataset);  // "narrativeqa" -> "NarrativeQA"

}  // namespace lloco::eval
