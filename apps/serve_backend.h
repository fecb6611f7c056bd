// The model half of `lloco serve` (LLoCO's serving design): a chat request's last user message is the
// question; BM25 over the store's chunks picks the compressed context (or the request names its
// documents), the hits' group picks the LoRA adapter, and the decoder answers with the summary
// vectors prepended. Model names: "lloco" (retrieve from every group), a group's name (retrieve
// within that group, its adapter), "base" (the decoder alone, no context).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
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

  std::vector<http::ModelInfo> models() override;
  http::ChatResult complete(const http::ChatRequest& request, const http::DeltaSink& on_delta) override;

  // Group name -> adapter index for the groups that have one.
  const std::map<std::string, int64_t>& adapter_of_group() const { return adapter_of_group_; }

 private:
  retrieve::RetrievedContext context_for(const http::ChatRequest& request, const std::string& question,
                                         int64_t max_vectors) const;

  models::LlamaModel model_;
  std::shared_ptr<const models::Tokenizer> tok_;
  std::shared_ptr<const retrieve::ContextRetriever> retriever_;
  ServeOptions options_;
  std::map<std::string, int64_t> adapter_of_group_;
  std::shared_ptr<lora::LoraBinding> binding_;  // null when no group has an adapter
  int64_t created_ = 0;
  std::mutex generate_mutex_;  // one generation at a time on the one model
};

}  // namespace lloco::apps
