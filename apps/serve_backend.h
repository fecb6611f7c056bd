// The model half of `lloco serve` (LLoCO's serving design): a chat request's last user message is the
// question; BM25 over the store's chunks picks the compressed context (or the request names its
// documents), the hits' group picks the LoRA adapter, and the decoder answers with the summary
// vectors prepended. Model names: "lloco" (retrieve from every group), a group's name (retrieve
// within that group, its adapter), "base" (the decoder alone, no context).
// Requests are batched: connection threads prepare their request (retrieval, prompt) and queue it;
// one worker runs up to max_batch queued greedy requests as one generate() call, each row with its
// own summary prefix (ragged, masked) and its own adapter (multi-LoRA by sequence). A sampled
// request runs alone, since a row's random stream depends on its index in the batch.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/http/openai_api.h"
#include "lora/adapters.h"
#include "models/llama.h"
#include "models/tokenizer.h"
#include "retrieve/context.h"

namespace lloco::apps {

struct ServeOptions {
  int64_t top_k = 1;             // chunks retrieved when the request does not say (lloco.top_k)
  int64_t max_tokens = 256;      // when the request does not say
  double temperature = 0.0;      // when the request does not say (0 = greedy, as LLoCO evaluates)
  int64_t context_window = 0;    // positions the decoder may use; 0 = its max_position_embeddings
  int64_t max_batch = 8;         // requests decoded together
  int batch_window_ms = 2;       // how long the worker waits for more requests to join a batch
};

// Renders the chat as LLoCO's prompt: a single user turn without a system message is exactly the
// prompt the group's adapter was trained on (eval::lloco_prompt for the group's dataset); otherwise
// the system message (or the generic instruction) and earlier turns as Question/Answer lines.
std::string render_chat_prompt(const std::vector<http::ChatMessage>& messages, const std::string& dataset);

class LlocoChatBackend : public http::ChatBackend {
 public:
  // `retriever` may be null (then only "base" is served). Groups with a registered adapter get it
  // loaded (all adapters must share rank, alpha and targets: they are stacked into one tensor set).
  LlocoChatBackend(models::LlamaModel decoder, std::shared_ptr<const models::Tokenizer> tokenizer,
                   std::shared_ptr<const retrieve::ContextRetriever> retriever, ServeOptions options);
  ~LlocoChatBackend() override;  // answers what is queued, then stops the worker

  std::vector<http::ModelInfo> models() override;
  http::ChatResult complete(const http::ChatRequest& request, const http::DeltaSink& on_delta) override;

  // Thread-safe: called concurrently by the connection threads (routes without serialize).
  // Group name -> adapter index for the groups that have one.
  const std::map<std::string, int64_t>& adapter_of_group() const { return adapter_of_group_; }

 private:
  struct Job;
  retrieve::RetrievedContext context_for(const http::ChatRequest& request, const std::string& question,
                                         int64_t max_vectors) const;
  std::shared_ptr<Job> prepare(const http::ChatRequest& request, const http::DeltaSink& on_delta) const;
  void worker_loop();
  void run_batch(const std::vector<std::shared_ptr<Job>>& jobs);

  models::LlamaModel model_;
  std::shared_ptr<const models::Tokenizer> tok_;
  std::shared_ptr<const retrieve::ContextRetriever> retriever_;
  ServeOptions options_;
  std::map<std::string, int64_t> adapter_of_group_;
  std::shared_ptr<lora::LoraBinding> binding_;  // null when no group has an adapter
  int64_t created_ = 0;
  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;  // a job arrived, or stopping
  std::deque<std::shared_ptr<Job>> queue_;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace lloco::apps
