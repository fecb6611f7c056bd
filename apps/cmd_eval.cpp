// `lloco eval`: score a predictions file against a dataset's references. Only argv handling lives
// here; the work is lloco::eval::run_eval (eval/runner.h).
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "eval/runner.h"

namespace {

constexpr const char* kUsage = R"(usage: lloco eval --dataset D --predictions FILE --data FILE [options]

Scores predictions with the dataset's official metric (as LLoCO / SCROLLS / LongBench compute it)
and writes results.{json,md,csv} (+ per_example/<dataset>.jsonl) to --out, adding or replacing
this dataset's row so that several runs build one table.

required:
  --dataset D        quality | qasper | narrativeqa | hotpotqa | qmsum | gov_report | summ_screen_fd |
                     contract_nli | longbench (the file's subset, e.g. longbench/qasper)
  --predictions F    JSON object {"id": "text", ...} (SCROLLS style) or JSONL {"id", "prediction"}
  --data F           dataset file (NarrativeQA: its folder or documents.csv)
options:
  --format F         auto (default) | quality | leval | qasper | narrativeqa | hotpotqa | qmsum |
                     scrolls | longbench
  --out DIR          write the result tables here (default: print only)
  --system NAME      column label for these scores (default: ours)
  --metric M         override: em | f1 | exact_match | rouge_gm | hotpot_f1 | qa_f1 | rouge_l
  --split S          split label for files whose name does not say
  --skip-bad-lines   skip malformed lines/records in --data and report how many
  --stories-dir DIR  NarrativeQA story files <DIR>/<document_id>.content (default: <data>/tmp)
  --use-summaries    NarrativeQA: documents are the Wikipedia summaries
  --nqa-set SET      NarrativeQA: only this set (train | valid | test)
  --raw-first-char   QuALITY: compare the unstripped first character (LLoCO's script) instead of
                     the first character after stripping whitespace
  --rouge-stemmer    ROUGE with rouge-score's Porter stemmer (SCROLLS and LLoCO use none)
  --help             this text
)";

int run_eval_command(const std::vector<std::string>& argv) {
  using namespace lloco::eval;
  const lloco::apps::Args args(argv,
                               {"dataset", "predictions", "data", "format", "out", "system", "metric", "split",
                                "stories-dir", "nqa-set"},
                               {"skip-bad-lines", "use-summaries", "raw-first-char", "rouge-stemmer", "help"});
  if (args.flag("help")) {
    std::printf("%s", kUsage);
    return 0;
  }
  if (!args.positional().empty()) throw std::runtime_error("unexpected argument '" + args.positional()[0] + "' (see --help)");
  for (const char* required : {"dataset", "predictions", "data"})
    if (!args.has(required)) throw std::runtime_error(std::string("missing --") + required + " (see --help)");

  EvalRequest req;
  req.dataset = args.str("dataset", "");
  req.predictions = args.str("predictions", "");
  req.data = args.str("data", "");
  req.format = parse_format(args.str("format", "auto"));
  req.out_dir = args.str("out", "");
  req.system = args.str("system", "ours");
  if (args.has("metric")) req.metric = parse_metric(args.str("metric", ""));
  req.read.split = args.str("split", "");
  req.read.skip_bad = args.flag("skip-bad-lines");
  req.read.narrativeqa_stories_dir = args.str("stories-dir", "");
  req.read.narrativeqa_use_summaries = args.flag("use-summaries");
  req.read.narrativeqa_set = args.str("nqa-set", "");
  req.scoring.quality_strip = !args.flag("raw-first-char");
  req.scoring.rouge_stemmer = args.flag("rouge-stemmer");

  const EvalOutcome out = run_eval(req);
  std::printf("%s: %s = %.2f (n=%zu)\n", out.row.dataset.c_str(), out.row.metric.c_str(), out.row.score, out.row.n);
  for (const auto& [k, v] : out.row.components) std::printf("  %s = %.2f\n", k.c_str(), v);
  if (out.row.paper) std::printf("  LLoCO (paper) = %.2f\n", *out.row.paper);
  if (out.skipped) {
    std::printf("skipped %zu malformed lines/records in %s:\n", out.skipped, req.data.c_str());
    for (const auto& r : out.skip_reasons) std::printf("  %s\n", r.c_str());
  }
  for (const auto& p : out.written) std::printf("wrote %s\n", p.c_str());
  return 0;
}

}  // namespace

LLOCO_COMMAND("eval", "score a predictions file", run_eval_command);
