// Scoring a set of predictions against a dataset's references with the dataset's official metric.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "eval/example.h"
#include "eval/predictions.h"

namespace lloco::eval {

enum class Metric {
  kQualityAccuracy,  // LLoCO QuALITY: first letter vs gold (reported as "em")
  kF1,               // SCROLLS f1 (max over references)
  kExactMatch,       // SCROLLS exact_match
  kRouge,            // SCROLLS rouge: R-1/2/L F (max over refs), geometric mean
  kHotpotF1,         // LLoCO HotpotQA: prediction up to its first '.', token F1
  kLongBenchF1,      // LongBench qa_f1_score
  kLongBenchRougeL,  // LongBench rouge_score (`rouge` package ROUGE-L F)
  kNeedle,           // needle in a haystack: 100 when the answer occurs in the prediction (needle_found)
};

std::string metric_name(Metric m);  // em, f1, exact_match, rouge_gm, hotpot_f1, qa_f1, rouge_l, needle_acc
Metric parse_metric(const std::string& name);
Metric default_metric(const std::string& dataset);  // throws for datasets without a known metric

struct ScoreOptions {
  bool quality_strip = true;  // strip the prediction before taking its first character
  bool rouge_stemmer = false; // SCROLLS/LLoCO use no stemmer
};

struct ExampleScore {
  std::string id;
  double score = 0;                        // this example's contribution, in [0, 100]
  std::map<std::string, double> parts;     // e.g. rouge1/rouge2/rougeL for kRouge
};

struct DatasetScore {
  std::string dataset;
  Metric metric = Metric::kF1;
  double score = 0;  // x100, unrounded
  size_t n = 0;
  std::map<std::string, double> components;  // kRouge: rouge1, rouge2, rougeL, geometric_mean
  std::vector<ExampleScore> per_example;
};

// Every example needs a prediction and every prediction an example; otherwise throws an error
// giving both counts and the first few ids of each kind.
void check_prediction_ids(const std::vector<Example>& examples, const Predictions& preds);

DatasetScore score_dataset(const std::string& dataset, const std::vector<Example>& examples,
                           const Predictions& preds, Metric metric, const ScoreOptions& opts = {});

}  // namespace lloco::eval
