// `lloco eval` logic; see runner.h.
#include "eval/runner.h"

#include <filesystem>
#include <set>

#include "eval/error.h"
#include "eval/io.h"
#include "eval/needle.h"

namespace lloco::eval {

EvalOutcome run_eval(const EvalRequest& req) {
  if (req.dataset.empty()) throw EvalError("eval: a dataset name is required");
  const std::string dataset = canonical_dataset(req.dataset);
  // Fail on an unknown dataset before reading a possibly large file.
  if (!req.metric && dataset != "longbench") (void)default_metric(dataset);

  ReadOptions read = req.read;
  if (read.dataset.empty()) read.dataset = dataset;
  DatasetFile file = read_dataset(req.data, req.format, read);

  // Keep the requested dataset's examples (a LongBench file names its subset per line).
  std::vector<Example> examples;
  std::set<std::string> found;
  std::string scored_name = dataset;
  for (auto& ex : file.examples) {
    found.insert(ex.dataset);
    const bool match = ex.dataset == dataset || (dataset == "longbench" && ex.dataset.rfind("longbench/", 0) == 0);
    if (match) examples.push_back(std::move(ex));
  }
  if (examples.empty()) {
    std::string names;
    for (const auto& n : found) names += (names.empty() ? "" : ", ") + n;
    throw EvalError(req.data + ": holds no examples of dataset '" + dataset + "'" +
                    (names.empty() ? std::string(" (no examples at all)") : " (it holds: " + names + ")"));
  }
  if (dataset == "longbench") {
    scored_name = examples.front().dataset;
    for (const auto& ex : examples)
      if (ex.dataset != scored_name)
        throw EvalError(req.data + ": mixes LongBench subsets '" + scored_name + "' and '" + ex.dataset +
                        "'; score one subset at a time");
  }
  const Metric used = req.metric ? *req.metric : default_metric(scored_name);

  const Predictions preds = read_predictions(req.predictions);
  EvalOutcome out;
  out.score = score_dataset(scored_name, examples, preds, used, req.scoring);
  out.skipped = file.skipped;
  out.skip_reasons = file.skip_reasons;

  ResultRow& row = out.row;
  row.dataset = scored_name;
  row.metric = metric_name(used);
  row.score = out.score.score;
  row.n = out.score.n;
  row.components = out.score.components;
  row.paper = published_lloco(scored_name, row.metric);
  row.predictions = req.predictions;
  row.data = req.data;
  row.skipped = file.skipped;

  if (!req.out_dir.empty()) {
    out.written = write_results(req.out_dir, req.system, row);
    std::string lines;
    for (size_t i = 0; i < out.score.per_example.size(); ++i) {
      const auto& s = out.score.per_example[i];
      json j = {{"id", s.id}, {"score", s.score}, {"prediction", *preds.find(s.id)}, {"references", examples[i].answers}};
      if (!s.parts.empty()) j["parts"] = s.parts;
      lines += j.dump() + "\n";
    }
    std::string safe = scored_name;
    for (char& c : safe)
      if (c == '/') c = '_';
    const std::string per_example = (std::filesystem::path(req.out_dir) / "per_example" / (safe + ".jsonl")).string();
    write_file_atomic(per_example, lines);
    out.written.push_back(per_example);
    if (scored_name == "needle") {
      // LLoCO's needle figure: success per context length x depth, beside the one-number score.
      DatasetFile scored{req.data, file.format, {}, examples, 0, {}};
      const std::string title = req.system + ": " + std::filesystem::path(req.data).filename().string();
      for (std::string& f : write_needle_report(req.out_dir, title, needle_grid(scored, out.score)))
        out.written.push_back(std::move(f));
    }
  }
  return out;
}

}  // namespace lloco::eval
