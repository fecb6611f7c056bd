#include "apps/context_input.h"

#include <algorithm>
#include <filesystem>
#include <span>
#include <stdexcept>

#include "core/error.h"
#include "eval/prompts.h"

namespace lloco::apps {

namespace {

bool byte_token_continues_utf8(const models::Tokenizer& tok, int32_t id) {
  if (!tok.is_byte(id)) return false;
  const unsigned value = std::stoul(tok.piece(id).substr(3, 2), nullptr, 16);  // "<0xNN>"
  return (value & 0xC0) == 0x80;
}

}  // namespace

RetrievalChunks::RetrievalChunks(std::vector<int32_t> ids, const models::Tokenizer& tok, int64_t chunk_tokens,
                                 const retrieve::RankerFactory& make_ranker)
    : ids_(std::move(ids)), tok_(tok) {
  LLOCO_CHECK(chunk_tokens > 0, "RetrievalChunks", "chunk_tokens must be positive, got ", chunk_tokens);
  const auto n = static_cast<int64_t>(ids_.size());
  std::vector<std::string> texts;
  for (int64_t begin = 0; begin < n;) {
    int64_t end = std::min(n, begin + chunk_tokens);
    while (end < n && byte_token_continues_utf8(tok_, ids_[static_cast<size_t>(end)])) ++end;
    ranges_.emplace_back(begin, end);
    texts.push_back(text({size() - 1}));
    begin = end;
  }
  ranker_ = make_ranker(texts);
}

std::vector<int64_t> RetrievalChunks::rank(const std::string& question) const {
  return retrieve::full_ranking(*ranker_, question);
}

std::string RetrievalChunks::text(std::vector<int64_t> chunks) const {
  std::sort(chunks.begin(), chunks.end());
  std::string out;
  for (size_t i = 0; i < chunks.size();) {
    size_t j = i + 1;  // chunks [i, j) are contiguous in the document: one span, decoded together
    while (j < chunks.size() && chunks[j] == chunks[j - 1] + 1) ++j;
    const int64_t begin = range(chunks[i]).first, end = range(chunks[j - 1]).second;
    if (!out.empty()) out += "\n\n";
    out += tok_.decode(std::span<const int32_t>(ids_).subspan(static_cast<size_t>(begin), static_cast<size_t>(end - begin)));
    i = j;
  }
  return out;
}

std::string RetrievalChunks::select(const std::string& question, int64_t top_k, size_t budget) const {
  LLOCO_CHECK(top_k > 0, "RetrievalChunks::select", "top_k must be positive, got ", top_k);
  std::vector<int64_t> ranked = rank(question);
  ranked.resize(std::min(ranked.size(), static_cast<size_t>(top_k)));
  std::vector<int64_t> kept;
  for (const int64_t c : ranked) {
    kept.push_back(c);
    if (count_tokens(text(kept)) > budget) kept.pop_back();
  }
  if (kept.empty() && !ranked.empty())
    return eval::truncate_to_budget(text({ranked.front()}), budget,
                                    [&](const std::string& s) { return count_tokens(s); }, " ...")
        .text;
  return text(kept);
}

ContextKind parse_context_kind(const std::string& name, const std::string& what) {
  if (name == "compressed") return ContextKind::kCompressed;
  if (name == "none") return ContextKind::kNone;
  if (name == "truncated_text" || name == "text") return ContextKind::kTruncatedText;
  if (name == "retrieved_text") return ContextKind::kRetrievedText;
  throw std::runtime_error(what + " must be compressed, none, truncated_text or retrieved_text, got '" + name + "'");
}

const char* context_kind_name(ContextKind kind) {
  switch (kind) {
    case ContextKind::kCompressed: return "compressed";
    case ContextKind::kNone: return "none";
    case ContextKind::kTruncatedText: return "truncated_text";
    case ContextKind::kRetrievedText: return "retrieved_text";
  }
  return "?";
}

ContextBuilder::ContextBuilder(const models::Tokenizer& tok, ContextOptions options, Device device, bool keep_all)
    : tok_(tok), options_(std::move(options)), device_(device), keep_all_(keep_all) {
  LLOCO_CHECK(options_.retrieval_chunk_tokens > 0 && options_.retrieval_top_k > 0, "ContextBuilder",
              "retrieval_chunk_tokens and retrieval_top_k must be positive, got ", options_.retrieval_chunk_tokens,
              " and ", options_.retrieval_top_k);
  LLOCO_CHECK(options_.text_budget > 0, "ContextBuilder", "text_budget must be positive, got ", options_.text_budget);
  if (options_.context == ContextKind::kCompressed)
    manifest_ = compress::StoreManifest::read((std::filesystem::path(options_.store_dir) / "manifest.json").string());
}

// The text baselines are ordinary LLaMA prompts (BOS first, as vLLM tokenizes them in LLoCO's runs)
// built by one template; retrieved_text only swaps the document for its selected chunks, which fit
// the budget left after the prompt, so baseline_prompt keeps them whole.
std::vector<int32_t> ContextBuilder::text_prompt(const eval::Example& ex) const {
  const eval::TokenCounter count_tokens = [&](const std::string& text) { return tok_.encode(text, false, false).size(); };
  return tok_.encode(eval::baseline_prompt(ex, static_cast<size_t>(options_.text_budget), count_tokens).text, true, false);
}

ContextInput ContextBuilder::build(const eval::Example& ex) {
  ContextInput in;
  switch (options_.context) {
    case ContextKind::kCompressed: {
      auto it = summaries_.find(ex.doc_id);
      if (it == summaries_.end()) {
        if (!keep_all_) summaries_.clear();
        it = summaries_.emplace(ex.doc_id, compress::load_document_summary(options_.store_dir, manifest_, ex.doc_id).to(device_)).first;
      }
      in.prefix = it->second;
      in.prompt = tok_.encode(eval::lloco_prompt(ex), false, false);  // no BOS after the vectors, as in LLoCO
      break;
    }
    case ContextKind::kNone:
      in.prompt = tok_.encode(eval::lloco_prompt(ex), false, false);
      break;
    case ContextKind::kTruncatedText:
      in.prompt = text_prompt(ex);
      break;
    case ContextKind::kRetrievedText: {
      auto it = chunks_.find(ex.doc_id);
      if (it == chunks_.end()) {  // the whole document, uncapped
        if (!keep_all_) chunks_.clear();
        it = chunks_.try_emplace(ex.doc_id, models::encode_long_document(tok_, ex.document_text()), tok_,
                                 options_.retrieval_chunk_tokens, options_.chunk_ranker).first;
      }
      const size_t prompt_tokens = tok_.encode(eval::lloco_prompt(ex), false, false).size();
      const auto budget = static_cast<size_t>(options_.text_budget);
      eval::Example retrieved = ex;
      retrieved.document = std::make_shared<const std::string>(
          it->second.select(ex.question, options_.retrieval_top_k, budget > prompt_tokens ? budget - prompt_tokens : 0));
      in.prompt = text_prompt(retrieved);
      break;
    }
  }
  return in;
}

}  // namespace lloco::apps
