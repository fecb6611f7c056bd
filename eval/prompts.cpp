// Prompt wording follows the structure of LLoCO's templates (lloco-method.md §3) in our own words.
#include "eval/prompts.h"

#include <vector>

#include "eval/error.h"
#include "eval/unicode.h"

namespace lloco::eval {
namespace {

constexpr const char* kChoiceRule = "Reply with the letter of the best option (A, B, C or D).";

std::string multiple_choice(const Example& ex) {
  // One worked example shows the expected "<letter>. <option>" answer form.
  std::string p =
      "The text above is a story. Below is a multiple-choice question about it with four options, "
      "labelled A, B, C and D. ";
  p += kChoiceRule;
  p += "\nExample question:\nWhat is the capital of France?\n\nChoices:\nA. Berlin\nB. Paris\nC. London\nD. Tokyo\n";
  p += kChoiceRule;
  p += "\n\nAnswer:\nB. Paris\n\nQuestion:\n" + ex.question + "\n\nChoices:\n";
  for (size_t i = 0; i < ex.options.size(); ++i)
    p += std::string(1, static_cast<char>('A' + i)) + ". " + ex.options[i] + "\n";
  p += kChoiceRule;
  p += "\n\nAnswer:";
  return p;
}

}  // namespace

TokenCounter whitespace_token_counter() {
  return [](const std::string& s) { return text::count_ws_words(s); };
}

PromptKind prompt_kind_for(const std::string& dataset) {
  if (dataset == "quality") return PromptKind::kMultipleChoice;
  if (dataset == "qasper" || dataset == "longbench/qasper") return PromptKind::kQasper;
  // LLoCO serves the needle with its NarrativeQA adapter, so it gets that prompt too.
  if (dataset == "narrativeqa" || dataset == "longbench/narrativeqa" || dataset == "needle") return PromptKind::kNarrativeQA;
  if (dataset == "qmsum" || dataset == "longbench/qmsum") return PromptKind::kQMSum;
  if (dataset == "hotpotqa" || dataset == "longbench/hotpotqa") return PromptKind::kHotpotQA;
  return PromptKind::kGeneric;
}

std::string lloco_prompt(const Example& ex) {
  switch (prompt_kind_for(ex.dataset)) {
    case PromptKind::kMultipleChoice:
      if (ex.options.empty()) throw EvalError("example '" + ex.id + "': multiple-choice prompt without options");
      return multiple_choice(ex);
    case PromptKind::kQasper:
      return "The text above is a scientific paper. Answer the question below as briefly as you can, with a "
             "single phrase or sentence where possible. If the paper does not say, answer 'unanswerable'. For a "
             "yes/no question, answer 'yes', 'no' or 'unanswerable'.\nQuestion: " +
             ex.question + "\nAnswer:";
    case PromptKind::kNarrativeQA:
      return "The text above is a story, either a novel or a film script. Answer the question below as briefly "
             "as you can, with a single phrase where possible.\nQuestion: " +
             ex.question + "\nAnswer:";
    case PromptKind::kQMSum:
      return "The text above is a meeting transcript. Respond to the query below, which asks a question or gives "
             "an instruction, in one or more sentences.\nQuery: " +
             ex.question + "\nAnswer:";
    case PromptKind::kHotpotQA:
      return "The text above consists of several passages. Answer the question below as briefly as you can, with "
             "a single phrase or sentence where possible.\nQuestion: " +
             ex.question + "\nAnswer:";
    case PromptKind::kGeneric:
      break;
  }
  return "Use the document above to answer the question below as briefly as you can.\nQuestion: " + ex.question +
         "\nAnswer:";
}

std::string answer_target(const Example& ex) {
  if (ex.answers.empty()) throw EvalError("example '" + ex.id + "' has no reference answer");
  return ex.answers.front();
}

TruncatedText truncate_to_budget(const std::string& document, size_t budget, const TokenCounter& counter,
                                 const std::string& marker) {
  const size_t full = counter(document);
  if (full <= budget) return {document, full, false};
  // Candidate cut points: the end of each whitespace-separated word (ASCII whitespace is enough to
  // find boundaries; multi-byte characters are never split because cuts sit before a space byte).
  std::vector<size_t> cuts;
  for (size_t i = 1; i < document.size(); ++i) {
    const auto c = static_cast<unsigned char>(document[i]);
    const auto prev = static_cast<unsigned char>(document[i - 1]);
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    const bool prev_space = prev == ' ' || prev == '\n' || prev == '\t' || prev == '\r';
    if (space && !prev_space) cuts.push_back(i);
  }
  // Largest cut whose prefix + marker fits; counts grow with the prefix, so binary search.
  size_t lo = 0, hi = cuts.size();  // answer in [0, hi): number of usable cuts
  auto fits = [&](size_t k) { return counter(document.substr(0, cuts[k]) + marker) <= budget; };
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    if (fits(mid)) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) {
    const size_t marker_tokens = counter(marker);
    if (marker_tokens <= budget) return {marker, marker_tokens, true};
    return {"", 0, true};
  }
  std::string kept = document.substr(0, cuts[lo - 1]) + marker;
  const size_t tokens = counter(kept);
  return {std::move(kept), tokens, true};
}

BaselinePrompt baseline_prompt(const Example& ex, size_t total_budget, const TokenCounter& counter) {
  BaselinePrompt out;
  const std::string prompt = lloco_prompt(ex);
  out.prompt_tokens = counter(prompt);
  const size_t context_budget = total_budget > out.prompt_tokens ? total_budget - out.prompt_tokens : 0;
  TruncatedText ctx = truncate_to_budget(ex.document_text(), context_budget, counter);
  out.context_tokens = ctx.tokens;
  out.truncated = ctx.truncated;
  out.text = ctx.text.empty() ? prompt : ctx.text + (ctx.truncated ? "" : "\n\n") + prompt;
  return out;
}

}  // namespace lloco::eval
