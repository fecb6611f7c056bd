#include "apps/serve_backend.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>

#include "core/error.h"
#include "core/ops.h"
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

// One queued request, prepared by its connection thread and decoded as a row of a batch.
struct LlocoChatBackend::Job {
  std::vector<int32_t> ids;  // the prompt (BOS only when there is no prefix)
  Tensor prefix;             // [vectors, D] or undefined
  int64_t adapter = -1;
  int64_t max_new_tokens = 0;
  double temperature = 0, top_p = 1;
  uint64_t seed = 0;
  const http::DeltaSink* on_delta = nullptr;
  http::ChatResult result;
  // Owned by the worker while the job is in a batch.
  std::vector<int32_t> body;  // new tokens without EOS
  std::string emitted;
  bool cancelled = false;
  // Guarded by queue_mutex_.
  bool done = false;
  std::exception_ptr error;
  std::condition_variable finished;
};

LlocoChatBackend::LlocoChatBackend(models::LlamaModel decoder, std::shared_ptr<const models::Tokenizer> tokenizer,
                                   std::shared_ptr<const retrieve::ContextRetriever> retriever, ServeOptions options)
    : model_(std::move(decoder)), tok_(std::move(tokenizer)), retriever_(std::move(retriever)), options_(options) {
  LLOCO_CHECK(options_.max_batch >= 1, "LlocoChatBackend", "max_batch must be >= 1, got ", options_.max_batch);
  if (options_.context_window <= 0) options_.context_window = model_.config.max_position_embeddings;
  created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::vector<std::string> dirs;
  if (retriever_)
    for (const auto& [group, info] : retriever_->manifest().groups)
      if (!info.adapter.empty()) {
        adapter_of_group_[group] = static_cast<int64_t>(dirs.size());
        dirs.push_back(info.adapter);
      }
  if (!dirs.empty()) {
    auto adapters = std::make_shared<lora::LoraAdapters>(
        lora::load_peft_adapters(model_.config, dirs, model_.embed_tokens.dtype(), model_.embed_tokens.device()));
    binding_ = lora::attach(model_, adapters, {-1});
  }
  worker_ = std::thread([this] { worker_loop(); });
}

LlocoChatBackend::~LlocoChatBackend() {
  {
    std::lock_guard<std::mutex> lock(queue_mutex_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  worker_.join();
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

std::shared_ptr<LlocoChatBackend::Job> LlocoChatBackend::prepare(const http::ChatRequest& r,
                                                                  const http::DeltaSink& on_delta) const {
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
  const std::vector<int32_t> draft_ids = tok_->encode(draft, false, false);
  const int64_t draft_tokens = static_cast<int64_t>(draft_ids.size()) + 1;
  const int64_t room = options_.context_window - draft_tokens - max_tokens;
  if (room < 0)
    throw http::HttpError(400, "the prompt (" + std::to_string(draft_tokens) + " tokens) and max_tokens (" +
                                   std::to_string(max_tokens) + ") exceed the context window of " +
                                   std::to_string(options_.context_window),
                          "messages", "invalid_request_error", "context_length_exceeded");
  const retrieve::RetrievedContext ctx = context_for(r, question, std::max<int64_t>(room, 1));

  auto job = std::make_shared<Job>();
  std::string adapter_group;
  if (r.lloco.adapter) {
    const auto it = adapter_of_group_.find(*r.lloco.adapter);
    if (it == adapter_of_group_.end())
      throw http::HttpError(400, "no adapter for group '" + *r.lloco.adapter + "'", "lloco.adapter");
    std::tie(adapter_group, job->adapter) = *it;
  } else if (r.model != kBaseModel && ctx.adapter >= 0) {
    job->adapter = ctx.adapter;
    adapter_group = ctx.group;
  }
  const bool has_prefix = ctx.prefix.defined();
  const std::string prompt = render_chat_prompt(r.messages, dataset_of(ctx.group.empty() ? r.model : ctx.group));
  // LLoCO: no BOS after the vectors. The draft's ids serve when the group kept the template.
  if (prompt != draft) job->ids = tok_->encode(prompt, false, false);
  else job->ids = draft_ids;
  if (!has_prefix) job->ids.insert(job->ids.begin(), tok_->bos_id());
  const int64_t prefix_len = has_prefix ? ctx.prefix.size(0) : 0;
  const int64_t positions = prefix_len + static_cast<int64_t>(job->ids.size());
  job->max_new_tokens = std::min(max_tokens, options_.context_window - positions);
  if (job->max_new_tokens < 1)
    throw http::HttpError(400, "the context (" + std::to_string(positions) + " positions) fills the window of " +
                                   std::to_string(options_.context_window),
                          "messages", "invalid_request_error", "context_length_exceeded");
  if (has_prefix) job->prefix = ctx.prefix;
  job->temperature = r.temperature ? *r.temperature : options_.temperature;
  job->top_p = r.top_p ? *r.top_p : 1.0;
  job->seed = r.seed ? static_cast<uint64_t>(*r.seed) : 0;
  job->on_delta = &on_delta;
  http::ChatResult& res = job->result;
  res.prompt_tokens = static_cast<int>(positions);
  res.doc_ids = ctx.ids;
  res.adapter = adapter_group;
  res.metrics["summary_vectors"] = static_cast<double>(prefix_len);
  res.metrics["prompt_text_tokens"] = static_cast<double>(job->ids.size());
  if (!ctx.skipped.empty()) res.metrics["chunks_over_budget"] = static_cast<double>(ctx.skipped.size());
  return job;
}

http::ChatResult LlocoChatBackend::complete(const http::ChatRequest& r, const http::DeltaSink& on_delta) {
  const std::shared_ptr<Job> job = prepare(r, on_delta);
  std::unique_lock<std::mutex> lock(queue_mutex_);
  if (stopping_) throw http::HttpError(503, "the server is stopping");
  queue_.push_back(job);
  queue_cv_.notify_all();
  job->finished.wait(lock, [&] { return job->done; });
  if (job->error) std::rethrow_exception(job->error);
  return job->result;
}

void LlocoChatBackend::worker_loop() {
  const auto greedy = [](const std::shared_ptr<Job>& j) { return j->temperature == 0; };
  for (;;) {
    std::vector<std::shared_ptr<Job>> batch;
    {
      std::unique_lock<std::mutex> lock(queue_mutex_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping with nothing left
      // A greedy head waits briefly for company; a sampled one runs alone.
      if (greedy(queue_.front()) && options_.max_batch > 1)
        queue_cv_.wait_for(lock, std::chrono::milliseconds(options_.batch_window_ms), [&] {
          return stopping_ || static_cast<int64_t>(queue_.size()) >= options_.max_batch;
        });
      batch.push_back(queue_.front());
      queue_.pop_front();
      if (greedy(batch[0])) {
        for (auto it = queue_.begin(); it != queue_.end() && static_cast<int64_t>(batch.size()) < options_.max_batch;) {
          if (greedy(*it)) {
            batch.push_back(*it);
            it = queue_.erase(it);
          } else {
            ++it;
          }
        }
      }
    }
    std::exception_ptr error;
    try {
      run_batch(batch);
    } catch (...) {
      error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(queue_mutex_);
    for (const std::shared_ptr<Job>& j : batch) {
      j->error = error;
      j->done = true;
      j->finished.notify_all();
    }
  }
}

void LlocoChatBackend::run_batch(const std::vector<std::shared_ptr<Job>>& jobs) {
  const auto B = static_cast<int64_t>(jobs.size());
  models::GenerateOptions g;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<int64_t> adapters;
  int64_t P = 0;
  for (const std::shared_ptr<Job>& j : jobs) {
    prompts.push_back(j->ids);
    adapters.push_back(j->adapter);
    g.row_max_new_tokens.push_back(j->max_new_tokens);
    g.max_new_tokens = std::max(g.max_new_tokens, j->max_new_tokens);
    const int64_t len = j->prefix.defined() ? j->prefix.size(0) : 0;
    g.prefix_lengths.push_back(len);
    P = std::max(P, len);
  }
  if (P > 0) {  // rows padded at the end of their prefix block; generate masks the padding
    const DType dtype = model_.embed_tokens.dtype();
    Tensor prefix = zeros({B, P, model_.config.hidden_size}, dtype, model_.embed_tokens.device());
    for (int64_t b = 0; b < B; ++b)
      if (g.prefix_lengths[b] > 0)
        copy_(prefix.narrow(0, b, 1).narrow(1, 0, g.prefix_lengths[b]),
              jobs[b]->prefix.to(dtype).to(model_.embed_tokens.device()).unsqueeze(0));
    g.prefix_embeddings = prefix;
  }
  if (binding_) binding_->sequence_adapters = adapters;
  g.temperature = jobs[0]->temperature;  // batches mix greedy requests only
  g.top_p = jobs[0]->top_p;
  g.seed = jobs[0]->seed;
  g.row_cancelled = [&](int64_t b) { return jobs[b]->cancelled; };

  // Deltas are suffixes of the decoded text so far (SentencePiece decodes words, not tokens).
  auto emit_up_to = [&](Job& j, const std::string& text) {
    if (j.cancelled || text.size() <= j.emitted.size() || text.compare(0, j.emitted.size(), j.emitted) != 0) return;
    if (!(*j.on_delta)(text.substr(j.emitted.size()))) j.cancelled = true;
    j.emitted = text;
  };
  const models::GenerateResult out = models::generate(model_, prompts, g, tok_.get(), [&](int64_t row, int32_t token) {
    Job& j = *jobs[row];
    if (token == model_.config.eos_token_id) return;
    j.body.push_back(token);
    const std::string text = tok_->decode(j.body);
    if (!ends_with_replacement_char(text)) emit_up_to(j, text);
  });
  for (int64_t b = 0; b < B; ++b) {
    Job& j = *jobs[b];
    emit_up_to(j, tok_->decode(j.body));
    http::ChatResult& res = j.result;
    res.finish_reason = out.finish[b] == models::FinishReason::Length ? "length" : "stop";
    res.completion_tokens = static_cast<int>(out.tokens[b].size());
    res.metrics["batch_size"] = static_cast<double>(B);
    res.metrics["prefill_ms"] = out.prefill_seconds * 1e3;
    res.metrics["decode_tokens_per_s"] = out.decode_seconds > 0 ? static_cast<double>(out.decode_tokens) / out.decode_seconds : 0.0;
  }
}

}  // namespace lloco::apps
