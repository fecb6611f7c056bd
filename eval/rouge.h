// ROUGE as two reference packages compute it:
//  - Google's `rouge-score` (0.1.2): used by SCROLLS (QMSum, GovReport, SummScreen) and by LLoCO.
//    Tokens are the [a-z0-9]+ runs of str.lower(text); optional NLTK Porter stemming of tokens
//    longer than 3 characters. ROUGE-N on n-gram multisets, ROUGE-L on the token LCS.
//  - the PyPI `rouge` package (1.0.1): used by LongBench for its ROUGE-L (summary-level LCS on
//    '.'-split sentences and space-split, case-sensitive words, with word *sets*, F with +1e-8).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace lloco::eval {

struct RougeScore {
  double precision = 0, recall = 0, fmeasure = 0;
};

struct RougeScores {
  RougeScore rouge1, rouge2, rougeL;
};

std::vector<std::string> rouge_tokenize(std::string_view text, bool use_stemmer = false);

// rouge_scorer.RougeScorer(["rouge1","rouge2","rougeL"], use_stemmer).score(target, prediction)
RougeScores rouge_score(std::string_view target, std::string_view prediction, bool use_stemmer = false);

// SCROLLS per-example ROUGE: each of the three F-measures maximised over the references
// independently (in [0, 1]; SCROLLS scales by 100 after averaging).
struct ScrollsRouge {
  double rouge1 = 0, rouge2 = 0, rougeL = 0;
};
ScrollsRouge scrolls_rouge(std::string_view prediction, const std::vector<std::string>& references,
                           bool use_stemmer = false);

// SCROLLS' "rouge/geometric_mean": the cube root of the product of the (averaged) three scores.
double rouge_geometric_mean(double rouge1, double rouge2, double rougeL);

// LongBench's rouge_score(prediction, ground_truth): `rouge` package ROUGE-L F, where an
// exception (empty hypothesis or reference after its '.'-splitting) scores 0.
//
// Known difference: the `rouge` package reconstructs the LCS recursively, so for a sentence pair
// of roughly 1000+ words Python raises RecursionError and LongBench silently scores 0; we return
// the mathematically defined value instead (the fixture is generated with a raised recursion limit).
double longbench_rouge_l(std::string_view prediction, std::string_view reference);

}  // namespace lloco::eval
