#include "apps/serve_backend.h"

#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "eval/prompts.h"
#include "lora/peft_io.h"
#include "models/generate.h"

namespace lloco::apps {

namespace {

constexpr const char* kAutoModel = "lloco";
constexpr const char* kBaseModel = "base";

bool ends_with_replacement_char(const std::string& s) {  // a byte-fallback character still incomplete
  return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0;
}

}  // namespace

std::string render_chat_prompt(const std::vector<http::ChatMessage>& messages, const std::string& dataset) {
  if (messages.empty() || messages.back().role != "user")
    throw http::HttpError(400, "the last message must have role 'user' (it is the question)", "messages");
  std::string system, history;
  for (size_t i = 0; i + 1 < messages.size(); ++i) {
    const http::ChatMessage& m = messages[i];
    if (m.role == "system") system += (system.empty() ? "" : "\n") + m.content;
    else if (m.role == "user") history += "Question: " + m.content + "\n";
    else history += "Answer: " + m.content + "\n\n";
  }
  const std::string& question = messages.back().content;
  if (!system.empty()) return system + "\n" + history + "Question: " + question + "\nAnswer:";
  eval::Example ex;
  // Multiple-choice templates need the options, which a chat turn does not carry: generic then.
  if (eval::prompt_kind_for(dataset) != eval::PromptKind::kMultipleChoice) ex.dataset = dataset;
  ex.question = question;
  return history + eval::lloco_prompt(ex);
}

LlocoChatBackend::LlocoChatBackend(models::LlamaModel decoder, std::shared_ptr<const models::Tokenizer> tokenizer,
                                   std::shared_ptr<const retrieve::ContextRetriever> retriever, ServeOptions options)
    : model_(std::move(decoder)), tok_(std::move(tokenizer)), retriever_(std::move(retriever)), options_(options) {
  if (options_.context_window <= 0) options_.context_window = model_.config.max_position_embeddings;
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  if (!retriever_) return;
  std::vector<std::string> dirs;
  for (const auto& [group, info] : retriever_->manifest().groups)
    if (!info.adapter.empty()) {
      adapter_of_group_[group] = static_cast<int64_t>(dirs.size());
      dirs.push_back(info.adapter);
    }
  if (dirs.empty()) return;
  auto adapters = std::make_shared<lora::LoraAdapters>(
      lora::load_peft_adapters(model_.config, dirs, model_.embed_tokens.dtype(), model_.embed_tokens.device()));
  binding_ = lora::attach(model_, adapters, {-1});
}

std::vector<http::ModelInfo> LlocoChatBackend::models() {
  std::vector<http::ModelInfo> out;
  if (retriever_) {
    out.push_back({kAutoModel, created_, "lloco"});
    for (const auto& [group, info] : retriever_->manifest().groups) out.push_back({group, created_, "lloco"});
  }
  out.push_back({kBaseModel, created_, "lloco"});
  return out;
}

retrieve::RetrievedContext LlocoChatBackend::context_for(const http::ChatRequest& r, const std::string& question,
                                                         int64_t max_vectors) const {
  if (!retriever_) {
    if (!r.lloco.doc_ids.empty()) throw http::HttpError(400, "this server has no store to take documents from", "lloco.doc_ids");
    return {};
  }
  try {
    if (!r.lloco.doc_ids.empty()) return retriever_->documents(r.lloco.doc_ids, max_vectors, adapter_of_group_);
  } catch (const Error& e) {
    throw http::HttpError(400, e.what(), "lloco.doc_ids");
  }
  const int64_t k = r.lloco.top_k ? *r.lloco.top_k : options_.top_k;
  if (r.model == kBaseModel || k == 0) return {};
  retrieve::RetrieveOptions o;
  o.k = k;
  o.max_vectors = max_vectors;
  if (r.model != kAutoModel) o.group = r.model;
  return retriever_->retrieve(question, o, adapter_of_group_);
}

http::ChatResult LlocoChatBackend::complete(const http::ChatRequest& r, const http::DeltaSink& on_delta) {
  std::lock_guard<std::mutex> lock(generate_mutex_);
  const std::string& question = r.messages.empty() ? std::string() : r.messages.back().content;
  auto dataset_of = [&](const std::string& group) {
    if (!retriever_) return std::string();
    const auto it = retriever_->manifest().groups.find(group);
    return it == retriever_->manifest().groups.end() ? std::string() : it->second.dataset;
  };
  const int64_t max_tokens = r.max_tokens ? *r.max_tokens : options_.max_tokens;
  // The prefix gets what the window leaves after the prompt and the answer (the prompt is measured
  // with the requested group's template; the final one may differ by a few tokens, checked below).
  const std::string draft = render_chat_prompt(r.messages, dataset_of(r.model));
  const int64_t draft_tokens = static_cast<int64_t>(tok_->encode(draft, false, false).size()) + 1;
  const int64_t room = options_.context_window - draft_tokens - max_tokens;
  if (room < 0)
    throw http::HttpError(400, "the prompt (" + std::to_string(draft_tokens) + " tokens) and max_tokens (" +
                                   std::to_string(max_tokens) + ") exceed the context window of " +
                                   std::to_string(options_.context_window),
                          "messages", "invalid_request_error", "context_length_exceeded");
  const retrieve::RetrievedContext ctx = context_for(r, question, std::max<int64_t>(room, 1));

  int64_t adapter = -1;
  std::string adapter_group;
  if (r.lloco.adapter) {
    const auto it = adapter_of_group_.find(*r.lloco.adapter);
    if (it == adapter_of_group_.end())
      throw http::HttpError(400, "no adapter for group '" + *r.lloco.adapter + "'", "lloco.adapter");
    std::tie(adapter_group, adapter) = *it;
  } else if (r.model != kBaseModel && ctx.adapter >= 0) {
    adapter = ctx.adapter;
    adapter_group = ctx.group;
  }
  if (binding_) binding_->sequence_adapters = {adapter};

  const bool has_prefix = ctx.prefix.defined();
  const std::string prompt = render_chat_prompt(r.messages, dataset_of(ctx.group.empty() ? r.model : ctx.group));
  const std::vector<int32_t> ids = tok_->encode(prompt, !has_prefix, false);  // LLoCO: no BOS after the vectors
  const int64_t prefix_len = has_prefix ? ctx.prefix.size(0) : 0;
  const int64_t positions = prefix_len + static_cast<int64_t>(ids.size());
  models::GenerateOptions g;
  g.max_new_tokens = std::min(max_tokens, options_.context_window - positions);
  if (g.max_new_tokens < 1)
    throw http::HttpError(400, "the context (" + std::to_string(positions) + " positions) fills the window of " +
                                   std::to_string(options_.context_window),
                          "messages", "invalid_request_error", "context_length_exceeded");
  g.temperature = r.temperature ? *r.temperature : options_.temperature;
  if (r.top_p) g.top_p = *r.top_p;
  if (r.seed) g.seed = static_cast<uint64_t>(*r.seed);
  if (has_prefix)
    g.prefix_embeddings = ctx.prefix.to(model_.embed_tokens.dtype()).to(model_.embed_tokens.device()).unsqueeze(0);
  bool cancelled = false;
  g.cancelled = [&] { return cancelled; };

  // Deltas are suffixes of the decoded text so far (SentencePiece decodes words, not tokens).
  const std::vector<int32_t> eos = {model_.config.eos_token_id};
  std::vector<int32_t> body;
  std::string emitted;
  auto emit_up_to = [&](const std::string& text) {
    if (cancelled || text.size() <= emitted.size() || text.compare(0, emitted.size(), emitted) != 0) return;
    if (!on_delta(text.substr(emitted.size()))) cancelled = true;
    emitted = text;
  };
  const models::GenerateResult out = models::generate(model_, {ids}, g, tok_.get(), [&](int64_t, int32_t token) {
    if (token == model_.config.eos_token_id) return;
    body.push_back(token);
    const std::string text = tok_->decode(body);
    if (!ends_with_replacement_char(text)) emit_up_to(text);
  });
  emit_up_to(tok_->decode(body));

  http::ChatResult result;
  result.finish_reason = out.finish[0] == models::FinishReason::Length ? "length" : "stop";
  result.prompt_tokens = static_cast<int>(positions);
  result.completion_tokens = static_cast<int>(out.tokens[0].size());
  result.doc_ids = ctx.ids;
  result.adapter = adapter_group;
  result.metrics["summary_vectors"] = static_cast<double>(prefix_len);
  result.metrics["prompt_text_tokens"] = static_cast<double>(ids.size());
  result.metrics["prefill_ms"] = out.prefill_seconds * 1e3;
  result.metrics["decode_tokens_per_s"] = out.decode_seconds > 0 ? static_cast<double>(out.decode_tokens) / out.decode_seconds : 0.0;
  if (!ctx.skipped.empty()) result.metrics["chunks_over_budget"] = static_cast<double>(ctx.skipped.size());
  return result;
}

}  // namespace lloco::apps
