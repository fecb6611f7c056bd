// Answer-matching metrics exactly as the reference scorers compute them (scores in [0, 1]; the
// reports scale by 100):
//  - SQuAD-style normalisation and token F1 / exact match (SQuAD v1.1 evaluate script, SCROLLS
//    f1.py/exact_match.py, LongBench qa_f1_score, LLoCO hotpot_evaluator.py all share it):
//    str.lower(), drop string.punctuation, replace whole words a/an/the (re `\b`, Unicode word
//    characters) by a space, collapse whitespace (str.split()); F1 on token multisets, 0 when no
//    token is shared (so two empty answers score F1 0 but exact match 1).
//  - QuALITY as LLoCO's quality_evaluator.py scores it: the prediction's first character against
//    the gold letter; an empty prediction is wrong.
//  - HotpotQA as LLoCO's hotpot_evaluator.py scores it: the prediction up to its first '.', then F1.
//  - Needle in a haystack: the answer occurs in the prediction (case and whitespace insensitive).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace lloco::eval {

std::string normalize_answer(std::string_view s);
std::vector<std::string> normalized_tokens(std::string_view s);

double token_f1(std::string_view prediction, std::string_view reference);
double exact_match(std::string_view prediction, std::string_view reference);

// max over references; 0 when there are none.
double max_token_f1(std::string_view prediction, const std::vector<std::string>& references);
double max_exact_match(std::string_view prediction, const std::vector<std::string>& references);

// LLoCO compares the raw first character (its decoded outputs have no leading space); with
// strip=true (our default) leading/trailing whitespace is removed first, so " B" counts as B.
bool quality_correct(std::string_view prediction, char gold_letter, bool strip = true);

double hotpot_f1(std::string_view prediction, std::string_view answer);

// True when some reference occurs in the prediction after both are ASCII-lowercased (bytes >= 0x80
// are compared as they are) and their runs of ASCII whitespace are collapsed to one space and
// stripped. An empty reference matches nothing.
bool needle_found(std::string_view prediction, const std::vector<std::string>& references);

// LongBench keeps only the first line (after leading newlines) for trec/triviaqa/samsum/lsht.
std::string longbench_first_line(std::string_view prediction);

}  // namespace lloco::eval
