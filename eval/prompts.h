// Prompt templates. In LLoCO mode the document reaches the decoder as compressed summary vectors
// placed before the prompt, so the prompt refers to "the ... above" and carries only the
// instruction and the question (lloco-method.md §3). The plain-context baseline puts the document
// text itself above the same prompt, truncated to a token budget (§7).
#pragma once
#include <cstddef>
#include <functional>
#include <string>

#include "eval/example.h"

namespace lloco::eval {

// Counts tokens in a text; plug the LLaMA tokenizer in here. The default counts
// whitespace-separated words (Python str.split() semantics).
using TokenCounter = std::function<size_t(const std::string&)>;
TokenCounter whitespace_token_counter();

enum class PromptKind { kMultipleChoice, kQasper, kNarrativeQA, kQMSum, kHotpotQA, kGeneric };
PromptKind prompt_kind_for(const std::string& dataset);

// Instruction + question, ending with "Answer:" (the model continues from there).
std::string lloco_prompt(const Example& ex);

// The text a model is trained to produce: "<letter>. <option>" for multiple choice, else the first
// reference answer. Throws if the example has no reference.
std::string answer_target(const Example& ex);

// Appended where the document was cut.
inline constexpr const char* kOmittedMarker = "... [the rest of the document is omitted]\n\n";

struct TruncatedText {
  std::string text;
  size_t tokens = 0;       // counter(text)
  bool truncated = false;
};

// Keeps the longest prefix of `document` (cut at a whitespace boundary) such that prefix + marker
// fits in `budget` tokens; an untruncated document is returned unchanged, without the marker.
TruncatedText truncate_to_budget(const std::string& document, size_t budget, const TokenCounter& counter,
                                 const std::string& marker = kOmittedMarker);

struct BaselinePrompt {
  std::string text;
  size_t prompt_tokens = 0;   // tokens of the question prompt
  size_t context_tokens = 0;  // tokens of the (possibly truncated) document block
  bool truncated = false;
};

// Document (truncated to total_budget - tokens(prompt)) + blank line + lloco_prompt(ex). LLoCO's
// baseline used a 4000-token budget.
BaselinePrompt baseline_prompt(const Example& ex, size_t total_budget = 4000,
                               const TokenCounter& counter = whitespace_token_counter());

}  // namespace lloco::eval
