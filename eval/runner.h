// The logic behind `lloco eval`: read a dataset, read predictions, score, write the reports.
// apps/cmd_eval.cpp only turns argv into an EvalRequest.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "eval/readers.h"
#include "eval/report.h"
#include "eval/scoring.h"

namespace lloco::eval {

struct EvalRequest {
  std::string dataset;      // quality, qasper, narrativeqa, hotpotqa, qmsum, longbench/<name>, ...
  std::string predictions;  // SCROLLS-style JSON or JSONL {id, prediction}
  std::string data;         // dataset file (or NarrativeQA directory)
  Format format = Format::kAuto;
  ReadOptions read;
  std::optional<Metric> metric;  // default: the dataset's official metric
  ScoreOptions scoring;
  std::string out_dir;           // empty: write nothing
  std::string system = "ours";   // column label in the results tables
};

struct EvalOutcome {
  DatasetScore score;
  ResultRow row;
  size_t skipped = 0;
  std::vector<std::string> skip_reasons;
  std::vector<std::string> written;  // files written under out_dir
};

EvalOutcome run_eval(const EvalRequest& req);

}  // namespace lloco::eval
