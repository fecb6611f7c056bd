// QA metrics; see metrics.h for the reference each one follows.
#include "eval/metrics.h"

#include <algorithm>
#include <map>

#include "eval/unicode.h"

namespace lloco::eval {
namespace {

bool is_ascii_punct(char32_t c) {  // Python's string.punctuation
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}

bool is_article(std::u32string_view w) { return w == U"a" || w == U"an" || w == U"the"; }

}  // namespace

std::string normalize_answer(std::string_view s) {
  const std::u32string lowered = text::lower(text::decode_utf8(s));
  std::u32string no_punct;
  no_punct.reserve(lowered.size());
  for (char32_t c : lowered)
    if (!is_ascii_punct(c)) no_punct.push_back(c);
  // re.sub(r"\b(a|an|the)\b", " ", t) replaces exactly the maximal \w-runs equal to an article.
  std::u32string no_articles;
  no_articles.reserve(no_punct.size());
  size_t i = 0;
  while (i < no_punct.size()) {
    if (!text::is_word(no_punct[i])) {
      no_articles.push_back(no_punct[i++]);
      continue;
    }
    size_t j = i;
    while (j < no_punct.size() && text::is_word(no_punct[j])) ++j;
    const std::u32string_view word(no_punct.data() + i, j - i);
    if (is_article(word)) no_articles.push_back(U' ');
    else no_articles.append(word);
    i = j;
  }
  std::string out;
  for (const auto& w : text::split_ws(no_articles)) {
    if (!out.empty()) out.push_back(' ');
    out += text::encode_utf8(w);
  }
  return out;
}

std::vector<std::string> normalized_tokens(std::string_view s) {
  // normalize_answer joins with single ASCII spaces, so splitting on ' ' equals str.split().
  const std::string n = normalize_answer(s);
  std::vector<std::string> out;
  size_t i = 0;
  while (i < n.size()) {
    size_t j = n.find(' ', i);
    if (j == std::string::npos) j = n.size();
    out.push_back(n.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

double token_f1(std::string_view prediction, std::string_view reference) {
  const auto p = normalized_tokens(prediction);
  const auto r = normalized_tokens(reference);
  std::map<std::string, long> counts;
  for (const auto& t : r) ++counts[t];
  long same = 0;
  for (const auto& t : p) {
    auto it = counts.find(t);
    if (it != counts.end() && it->second > 0) {
      --it->second;
      ++same;
    }
  }
  if (same == 0) return 0.0;
  const double precision = 1.0 * static_cast<double>(same) / static_cast<double>(p.size());
  const double recall = 1.0 * static_cast<double>(same) / static_cast<double>(r.size());
  return (2 * precision * recall) / (precision + recall);
}

double exact_match(std::string_view prediction, std::string_view reference) {
  return normalize_answer(prediction) == normalize_answer(reference) ? 1.0 : 0.0;
}

double max_token_f1(std::string_view prediction, const std::vector<std::string>& references) {
  double best = 0.0;
  for (const auto& r : references) best = std::max(best, token_f1(prediction, r));
  return best;
}

double max_exact_match(std::string_view prediction, const std::vector<std::string>& references) {
  double best = 0.0;
  for (const auto& r : references) best = std::max(best, exact_match(prediction, r));
  return best;
}

bool quality_correct(std::string_view prediction, char gold_letter, bool strip) {
  const std::string p = strip ? text::strip_ws(prediction) : std::string(prediction);
  return !p.empty() && p[0] == gold_letter;
}

double hotpot_f1(std::string_view prediction, std::string_view answer) {
  const size_t dot = prediction.find('.');
  return token_f1(prediction.substr(0, dot), answer);
}

std::string longbench_first_line(std::string_view prediction) {
  const std::string s = text::lstrip_chars(prediction, '\n');
  return s.substr(0, s.find('\n'));
}

namespace {

std::string needle_normalized(std::string_view s) {
  std::string out;
  bool pending_space = false;
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
  }
  return out;
}

}  // namespace

bool needle_found(std::string_view prediction, const std::vector<std::string>& references) {
  const std::string pred = needle_normalized(prediction);
  for (const auto& r : references) {
    const std::string ref = needle_normalized(r);
    if (!ref.empty() && pred.find(ref) != std::string::npos) return true;
  }
  return false;
}

}  // namespace lloco::eval
