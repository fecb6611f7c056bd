// NLTK-mode Porter stemmer (M. F. Porter, "An algorithm for suffix stripping", 1980, plus NLTK's
// extensions: irregular forms, the "ies"/"ied" length-4 rules, "bli"/"fulli"/"logi", the 2-letter
// *o condition and the y->i condition of step 1c). Each rule list applies the first rule whose
// suffix matches and stops there even when its condition fails, as NLTK's _apply_rule_list does.
#include "eval/porter.h"

#include <functional>
#include <initializer_list>
#include <map>
#include <vector>

namespace lloco::eval {
namespace {

bool ends_with(const std::string& w, std::string_view suffix) {
  return w.size() >= suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string drop(const std::string& w, size_t n) { return w.substr(0, w.size() - n); }

bool is_consonant(const std::string& w, size_t i) {
  const char c = w[i];
  if (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') return false;
  if (c == 'y') return i == 0 ? true : !is_consonant(w, i - 1);
  return true;
}

// m in [C](VC){m}[V]: the number of vowel->consonant transitions.
int measure(const std::string& stem) {
  int m = 0;
  bool prev_vowel = false;
  for (size_t i = 0; i < stem.size(); ++i) {
    const bool cons = is_consonant(stem, i);
    if (cons && prev_vowel) ++m;
    prev_vowel = !cons;
  }
  return m;
}

bool contains_vowel(const std::string& stem) {
  for (size_t i = 0; i < stem.size(); ++i)
    if (!is_consonant(stem, i)) return true;
  return false;
}

bool ends_double_consonant(const std::string& w) {
  return w.size() >= 2 && w[w.size() - 1] == w[w.size() - 2] && is_consonant(w, w.size() - 1);
}

bool ends_cvc(const std::string& w) {
  const size_t n = w.size();
  if (n >= 3 && is_consonant(w, n - 3) && !is_consonant(w, n - 2) && is_consonant(w, n - 1) &&
      w[n - 1] != 'w' && w[n - 1] != 'x' && w[n - 1] != 'y')
    return true;
  return n == 2 && !is_consonant(w, 0) && is_consonant(w, 1);
}

using Condition = std::function<bool(const std::string&)>;
struct Rule {
  std::string_view suffix;  // "*d" = any double consonant
  std::string replacement;
  Condition condition;      // empty = unconditional
};

std::string apply_rules(const std::string& word, const std::vector<Rule>& rules) {
  for (const Rule& r : rules) {
    if (r.suffix == "*d") {
      if (!ends_double_consonant(word)) continue;
      const std::string stem = drop(word, 2);
      return (!r.condition || r.condition(stem)) ? stem + r.replacement : word;
    }
    if (ends_with(word, r.suffix)) {
      const std::string stem = drop(word, r.suffix.size());
      return (!r.condition || r.condition(stem)) ? stem + r.replacement : word;
    }
  }
  return word;
}

bool positive_measure(const std::string& s) { return measure(s) > 0; }
bool measure_gt1(const std::string& s) { return measure(s) > 1; }

std::string step1a(const std::string& w) {
  if (ends_with(w, "ies") && w.size() == 4) return drop(w, 3) + "ie";
  return apply_rules(w, {{"sses", "ss", {}}, {"ies", "i", {}}, {"ss", "ss", {}}, {"s", "", {}}});
}

std::string step1b(const std::string& w) {
  if (ends_with(w, "ied")) return drop(w, 3) + (w.size() == 4 ? "ie" : "i");
  if (ends_with(w, "eed")) {
    const std::string stem = drop(w, 3);
    return measure(stem) > 0 ? stem + "ee" : w;
  }
  std::string stem;
  bool removed = false;
  for (std::string_view suffix : {std::string_view("ed"), std::string_view("ing")}) {
    if (ends_with(w, suffix)) {
      stem = drop(w, suffix.size());
      if (contains_vowel(stem)) {
        removed = true;
        break;
      }
    }
  }
  if (!removed) return w;
  const char last = stem.empty() ? '\0' : stem.back();
  return apply_rules(stem, {{"at", "ate", {}},
                            {"bl", "ble", {}},
                            {"iz", "ize", {}},
                            {"*d", std::string(1, last),
                             [last](const std::string&) { return last != 'l' && last != 's' && last != 'z'; }},
                            {"", "e", [](const std::string& s) { return measure(s) == 1 && ends_cvc(s); }}});
}

std::string step1c(const std::string& w) {
  return apply_rules(w, {{"y", "i", [](const std::string& s) { return s.size() > 1 && is_consonant(s, s.size() - 1); }}});
}

std::string step2(const std::string& w) {
  if (ends_with(w, "alli") && positive_measure(drop(w, 4))) return step2(drop(w, 4) + "al");
  const Condition pm = positive_measure;
  return apply_rules(w, {{"ational", "ate", pm}, {"tional", "tion", pm}, {"enci", "ence", pm},
                         {"anci", "ance", pm},   {"izer", "ize", pm},    {"bli", "ble", pm},
                         {"alli", "al", pm},     {"entli", "ent", pm},   {"eli", "e", pm},
                         {"ousli", "ous", pm},   {"ization", "ize", pm}, {"ation", "ate", pm},
                         {"ator", "ate", pm},    {"alism", "al", pm},    {"iveness", "ive", pm},
                         {"fulness", "ful", pm}, {"ousness", "ous", pm}, {"aliti", "al", pm},
                         {"iviti", "ive", pm},   {"biliti", "ble", pm},  {"fulli", "ful", pm},
                         {"logi", "log", [&w](const std::string&) { return positive_measure(drop(w, 3)); }}});
}

std::string step3(const std::string& w) {
  const Condition pm = positive_measure;
  return apply_rules(w, {{"icate", "ic", pm}, {"ative", "", pm}, {"alize", "al", pm}, {"iciti", "ic", pm},
                         {"ical", "ic", pm},  {"ful", "", pm},   {"ness", "", pm}});
}

std::string step4(const std::string& w) {
  const Condition m1 = measure_gt1;
  const Condition ion = [](const std::string& s) { return measure(s) > 1 && (s.back() == 's' || s.back() == 't'); };
  return apply_rules(w, {{"al", "", m1},   {"ance", "", m1}, {"ence", "", m1}, {"er", "", m1},  {"ic", "", m1},
                         {"able", "", m1}, {"ible", "", m1}, {"ant", "", m1},  {"ement", "", m1},
                         {"ment", "", m1}, {"ent", "", m1},  {"ion", "", ion}, {"ou", "", m1},  {"ism", "", m1},
                         {"ate", "", m1},  {"iti", "", m1},  {"ous", "", m1},  {"ive", "", m1}, {"ize", "", m1}});
}

std::string step5a(const std::string& w) {
  if (!ends_with(w, "e")) return w;
  const std::string stem = drop(w, 1);
  const int m = measure(stem);
  if (m > 1) return stem;
  if (m == 1 && !ends_cvc(stem)) return stem;
  return w;
}

std::string step5b(const std::string& w) {
  return apply_rules(w, {{"ll", "l", [&w](const std::string&) { return measure(drop(w, 1)) > 1; }}});
}

const std::map<std::string, std::string, std::less<>>& irregular_forms() {
  static const std::map<std::string, std::string, std::less<>> forms = {
      {"sky", "sky"},         {"skies", "sky"},     {"dying", "die"},       {"lying", "lie"},
      {"tying", "tie"},       {"news", "news"},     {"innings", "inning"},  {"inning", "inning"},
      {"outings", "outing"},  {"outing", "outing"}, {"cannings", "canning"}, {"canning", "canning"},
      {"howe", "howe"},       {"proceed", "proceed"}, {"exceed", "exceed"}, {"succeed", "succeed"}};
  return forms;
}

}  // namespace

std::string porter_stem(std::string_view word) {
  std::string w(word);
  if (auto it = irregular_forms().find(w); it != irregular_forms().end()) return it->second;
  if (w.size() <= 2) return w;
  w = step1a(w);
  w = step1b(w);
  w = step1c(w);
  w = step2(w);
  w = step3(w);
  w = step4(w);
  w = step5a(w);
  w = step5b(w);
  return w;
}

}  // namespace lloco::eval
