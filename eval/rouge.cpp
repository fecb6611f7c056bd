// ROUGE implementations matching rouge-score 0.1.2 and rouge 1.0.1; see rouge.h.
#include "eval/rouge.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <unordered_map>

#include "eval/porter.h"
#include "eval/unicode.h"

namespace lloco::eval {
namespace {

bool is_az09(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

double rouge_score_fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

// Token ids so that n-gram and LCS comparisons are integer compares.
struct Vocab {
  std::unordered_map<std::string, int32_t> ids;
  std::vector<int32_t> encode(const std::vector<std::string>& tokens) {
    std::vector<int32_t> out;
    out.reserve(tokens.size());
    for (const auto& t : tokens) out.push_back(ids.emplace(t, static_cast<int32_t>(ids.size())).first->second);
    return out;
  }
};

RougeScore score_ngrams(const std::vector<int32_t>& target, const std::vector<int32_t>& pred, size_t n) {
  auto count = [n](const std::vector<int32_t>& toks) {
    std::map<std::vector<int32_t>, int64_t> grams;
    for (size_t i = 0; i + n <= toks.size(); ++i)
      ++grams[std::vector<int32_t>(toks.begin() + static_cast<std::ptrdiff_t>(i), toks.begin() + static_cast<std::ptrdiff_t>(i + n))];
    return grams;
  };
  const auto t = count(target), p = count(pred);
  int64_t overlap = 0, t_total = 0, p_total = 0;
  for (const auto& [g, c] : t) {
    t_total += c;
    if (auto it = p.find(g); it != p.end()) overlap += std::min(c, it->second);
  }
  for (const auto& [g, c] : p) p_total += c;
  RougeScore s;
  s.precision = static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(p_total, 1));
  s.recall = static_cast<double>(overlap) / static_cast<double>(std::max<int64_t>(t_total, 1));
  s.fmeasure = rouge_score_fmeasure(s.precision, s.recall);
  return s;
}

// LCS length with two rolling rows: O(n*m) time, O(m) memory.
size_t lcs_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::vector<uint32_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

RougeScore score_lcs(const std::vector<int32_t>& target, const std::vector<int32_t>& pred) {
  if (target.empty() || pred.empty()) return {};
  const double lcs = static_cast<double>(lcs_length(target, pred));
  RougeScore s;
  s.precision = lcs / static_cast<double>(pred.size());
  s.recall = lcs / static_cast<double>(target.size());
  s.fmeasure = rouge_score_fmeasure(s.precision, s.recall);
  return s;
}

// ---- the `rouge` package (LongBench) -------------------------------------------------------------

// Rouge._get_scores: split on '.', keep non-empty pieces, collapse each piece's whitespace
// (Python str.split), then words = each sentence split on ' '. A whitespace-only piece becomes
// the empty sentence, whose single word is "".
std::vector<std::vector<std::string>> rouge_pkg_sentences(std::string_view text) {
  std::vector<std::vector<std::string>> sentences;
  size_t start = 0;
  while (start <= text.size()) {
    size_t dot = text.find('.', start);
    if (dot == std::string_view::npos) dot = text.size();
    const std::string_view piece = text.substr(start, dot - start);
    if (!piece.empty()) {
      std::vector<std::string> words = text::split_ws(piece);
      if (words.empty()) words.emplace_back();
      sentences.push_back(std::move(words));
    }
    start = dot + 1;
  }
  return sentences;
}

// rouge_score._recon_lcs: one LCS of x and y, chosen by the package's backtracking order
// (match -> diagonal; else up when table[i-1][j] > table[i][j-1]; else left), as a word list.
std::vector<int32_t> recon_lcs(const std::vector<int32_t>& x, const std::vector<int32_t>& y) {
  const size_t n = x.size(), m = y.size();
  std::vector<uint32_t> table((n + 1) * (m + 1), 0);
  auto at = [&](size_t i, size_t j) -> uint32_t& { return table[i * (m + 1) + j]; };
  for (size_t i = 1; i <= n; ++i)
    for (size_t j = 1; j <= m; ++j)
      at(i, j) = x[i - 1] == y[j - 1] ? at(i - 1, j - 1) + 1 : std::max(at(i - 1, j), at(i, j - 1));
  std::vector<int32_t> lcs;
  size_t i = n, j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] == y[j - 1]) {
      lcs.push_back(x[i - 1]);
      --i, --j;
    } else if (at(i - 1, j) > at(i, j - 1)) {
      --i;
    } else {
      --j;
    }
  }
  return lcs;  // reversed order is irrelevant: the caller only takes its set of words
}

}  // namespace

std::vector<std::string> rouge_tokenize(std::string_view text, bool use_stemmer) {
  const std::string lowered = text::lower(text);
  std::vector<std::string> tokens;
  size_t i = 0;
  while (i < lowered.size()) {
    while (i < lowered.size() && !is_az09(lowered[i])) ++i;
    size_t j = i;
    while (j < lowered.size() && is_az09(lowered[j])) ++j;
    if (j > i) {
      std::string tok = lowered.substr(i, j - i);
      if (use_stemmer && tok.size() > 3) tok = porter_stem(tok);
      // rouge-score drops tokens that no longer match ^[a-z0-9]+$ after stemming.
      if (!tok.empty() && std::all_of(tok.begin(), tok.end(), is_az09)) tokens.push_back(std::move(tok));
    }
    i = j;
  }
  return tokens;
}

RougeScores rouge_score(std::string_view target, std::string_view prediction, bool use_stemmer) {
  Vocab vocab;
  const auto t = vocab.encode(rouge_tokenize(target, use_stemmer));
  const auto p = vocab.encode(rouge_tokenize(prediction, use_stemmer));
  return {score_ngrams(t, p, 1), score_ngrams(t, p, 2), score_lcs(t, p)};
}

ScrollsRouge scrolls_rouge(std::string_view prediction, const std::vector<std::string>& references,
                           bool use_stemmer) {
  ScrollsRouge best;
  bool first = true;
  for (const auto& ref : references) {
    const RougeScores s = rouge_score(ref, prediction, use_stemmer);
    best.rouge1 = first ? s.rouge1.fmeasure : std::max(best.rouge1, s.rouge1.fmeasure);
    best.rouge2 = first ? s.rouge2.fmeasure : std::max(best.rouge2, s.rouge2.fmeasure);
    best.rougeL = first ? s.rougeL.fmeasure : std::max(best.rougeL, s.rougeL.fmeasure);
    first = false;
  }
  return best;
}

double rouge_geometric_mean(double rouge1, double rouge2, double rougeL) {
  return std::pow(rouge1 * rouge2 * rougeL, 1.0 / 3.0);
}

double longbench_rouge_l(std::string_view prediction, std::string_view reference) {
  const auto hyp = rouge_pkg_sentences(prediction);
  const auto ref = rouge_pkg_sentences(reference);
  if (hyp.empty() || ref.empty()) return 0.0;  // the package raises ValueError; LongBench scores 0
  Vocab vocab;
  std::vector<std::vector<int32_t>> hyp_ids, ref_ids;
  std::set<int32_t> hyp_words, ref_words;
  for (const auto& s : hyp) {
    hyp_ids.push_back(vocab.encode(s));
    hyp_words.insert(hyp_ids.back().begin(), hyp_ids.back().end());
  }
  for (const auto& s : ref) {
    ref_ids.push_back(vocab.encode(s));
    ref_words.insert(ref_ids.back().begin(), ref_ids.back().end());
  }
  // With exclusive=True the union LCS is a set of words accumulated over every
  // (reference sentence, hypothesis sentence) pair.
  std::set<int32_t> lcs_union;
  for (const auto& r : ref_ids)
    for (const auto& h : hyp_ids) {
      const auto lcs = recon_lcs(r, h);
      lcs_union.insert(lcs.begin(), lcs.end());
    }
  const double llcs = static_cast<double>(lcs_union.size());
  const double r_lcs = llcs / static_cast<double>(ref_words.size());
  const double p_lcs = llcs / static_cast<double>(hyp_words.size());
  return 2.0 * ((p_lcs * r_lcs) / (p_lcs + r_lcs + 1e-8));
}

}  // namespace lloco::eval
