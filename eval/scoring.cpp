// Metric selection and per-dataset aggregation; see scoring.h.
#include "eval/scoring.h"

#include <algorithm>
#include <set>

#include "eval/error.h"
#include "eval/metrics.h"
#include "eval/rouge.h"

namespace lloco::eval {
namespace {

std::string first_ids(const std::vector<std::string>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size() && i < 5; ++i) out += (i ? ", " : "") + ("'" + ids[i] + "'");
  if (ids.size() > 5) out += ", ...";
  return out;
}

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
  for (const char* n : names)
    if (s == n) return true;
  return false;
}

}  // namespace

std::string metric_name(Metric m) {
  switch (m) {
    case Metric::kQualityAccuracy: return "em";
    case Metric::kF1: return "f1";
    case Metric::kExactMatch: return "exact_match";
    case Metric::kRouge: return "rouge_gm";
    case Metric::kHotpotF1: return "hotpot_f1";
    case Metric::kLongBenchF1: return "qa_f1";
    case Metric::kLongBenchRougeL: return "rouge_l";
    case Metric::kNeedle: return "needle_acc";
  }
  return "unknown";
}

Metric parse_metric(const std::string& name) {
  for (Metric m : {Metric::kQualityAccuracy, Metric::kF1, Metric::kExactMatch, Metric::kRouge, Metric::kHotpotF1,
                   Metric::kLongBenchF1, Metric::kLongBenchRougeL, Metric::kNeedle})
    if (metric_name(m) == name) return m;
  throw EvalError("unknown metric '" + name +
                  "' (valid: em, f1, exact_match, rouge_gm, hotpot_f1, qa_f1, rouge_l, needle_acc)");
}

Metric default_metric(const std::string& dataset) {
  if (dataset == "quality") return Metric::kQualityAccuracy;
  if (one_of(dataset, {"qasper", "narrativeqa"})) return Metric::kF1;
  if (one_of(dataset, {"qmsum", "gov_report", "summ_screen_fd"})) return Metric::kRouge;
  if (dataset == "contract_nli") return Metric::kExactMatch;
  if (dataset == "hotpotqa") return Metric::kHotpotF1;
  if (dataset == "needle") return Metric::kNeedle;
  if (dataset.rfind("longbench/", 0) == 0) {
    const std::string sub = dataset.substr(10);
    if (one_of(sub, {"narrativeqa", "qasper", "multifieldqa_en", "hotpotqa", "2wikimqa", "musique", "triviaqa"}))
      return Metric::kLongBenchF1;
    if (one_of(sub, {"gov_report", "qmsum", "multi_news", "samsum"})) return Metric::kLongBenchRougeL;
  }
  throw EvalError("no metric known for dataset '" + dataset +
                  "' (supported: quality, qasper, narrativeqa, qmsum, hotpotqa, needle, gov_report, "
                  "summ_screen_fd, contract_nli, longbench/{narrativeqa, qasper, multifieldqa_en, hotpotqa, 2wikimqa, musique, "
                  "triviaqa, gov_report, qmsum, multi_news, samsum})");
}

void check_prediction_ids(const std::vector<Example>& examples, const Predictions& preds) {
  std::set<std::string> wanted;
  std::vector<std::string> duplicate, missing, extra;
  for (const auto& ex : examples)
    if (!wanted.insert(ex.id).second) duplicate.push_back(ex.id);
  if (!duplicate.empty())
    throw EvalError("the dataset has " + std::to_string(duplicate.size()) + " duplicate example ids: " + first_ids(duplicate));
  for (const auto& id : wanted)
    if (!preds.find(id)) missing.push_back(id);
  for (const auto& [id, text] : preds.by_id)
    if (!wanted.count(id)) extra.push_back(id);
  if (missing.empty() && extra.empty()) return;
  std::string msg = preds.path + ": predictions do not match the dataset's " + std::to_string(wanted.size()) + " ids:";
  if (!missing.empty()) msg += " " + std::to_string(missing.size()) + " missing (" + first_ids(missing) + ")";
  if (!missing.empty() && !extra.empty()) msg += ";";
  if (!extra.empty()) msg += " " + std::to_string(extra.size()) + " extra (" + first_ids(extra) + ")";
  throw EvalError(msg);
}

DatasetScore score_dataset(const std::string& dataset, const std::vector<Example>& examples,
                           const Predictions& preds, Metric metric, const ScoreOptions& opts) {
  if (examples.empty()) throw EvalError("no examples of dataset '" + dataset + "' to score");
  check_prediction_ids(examples, preds);
  DatasetScore out;
  out.dataset = dataset;
  out.metric = metric;
  out.n = examples.size();
  const std::string sub = dataset.rfind("longbench/", 0) == 0 ? dataset.substr(10) : "";
  const bool first_line_only = one_of(sub, {"trec", "triviaqa", "samsum", "lsht"});
  double total = 0, r1 = 0, r2 = 0, rl = 0;
  for (const auto& ex : examples) {
    if (ex.answers.empty()) throw EvalError("example '" + ex.id + "' has no reference answer (a test split?)");
    const std::string& pred = *preds.find(ex.id);
    ExampleScore s{ex.id, 0, {}};
    switch (metric) {
      case Metric::kQualityAccuracy: {
        const std::string& gold = ex.answers.front();
        s.score = quality_correct(pred, gold.empty() ? '\0' : gold[0], opts.quality_strip) ? 100.0 : 0.0;
        break;
      }
      case Metric::kF1: s.score = 100.0 * max_token_f1(pred, ex.answers); break;
      case Metric::kExactMatch: s.score = 100.0 * max_exact_match(pred, ex.answers); break;
      case Metric::kNeedle: s.score = needle_found(pred, ex.answers) ? 100.0 : 0.0; break;
      case Metric::kHotpotF1:
        for (const auto& a : ex.answers) s.score = std::max(s.score, 100.0 * hotpot_f1(pred, a));
        break;
      case Metric::kLongBenchF1: {
        const std::string p = first_line_only ? longbench_first_line(pred) : pred;
        s.score = 100.0 * max_token_f1(p, ex.answers);
        break;
      }
      case Metric::kLongBenchRougeL: {
        const std::string p = first_line_only ? longbench_first_line(pred) : pred;
        for (const auto& a : ex.answers) s.score = std::max(s.score, 100.0 * longbench_rouge_l(p, a));
        break;
      }
      case Metric::kRouge: {
        const ScrollsRouge r = scrolls_rouge(pred, ex.answers, opts.rouge_stemmer);
        s.parts = {{"rouge1", 100 * r.rouge1}, {"rouge2", 100 * r.rouge2}, {"rougeL", 100 * r.rougeL}};
        r1 += 100 * r.rouge1, r2 += 100 * r.rouge2, rl += 100 * r.rougeL;
        s.score = 100 * rouge_geometric_mean(r.rouge1, r.rouge2, r.rougeL);
        break;
      }
    }
    total += s.score;
    out.per_example.push_back(std::move(s));
  }
  const double n = static_cast<double>(out.n);
  if (metric == Metric::kRouge) {
    // SCROLLS averages each ROUGE variant first and takes the geometric mean of the averages.
    out.components = {{"rouge1", r1 / n}, {"rouge2", r2 / n}, {"rougeL", rl / n}};
    out.components["geometric_mean"] = rouge_geometric_mean(r1 / n, r2 / n, rl / n);
    out.score = out.components["geometric_mean"];
  } else {
    out.score = total / n;
  }
  return out;
}

}  // namespace lloco::eval
