// The OpenAI chat protocol for `lloco serve`, independent of any model: request parsing and
// validation, response / stream-chunk JSON, and the routes (POST /v1/chat/completions, GET /v1/models,
// GET /health) wired to a ChatBackend that the model side implements.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apps/http/http_server.h"

namespace lloco::http {

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant"
  std::string content;
};

// The request's "lloco" extension object.
struct LlocoOptions {
  std::optional<int> top_k;           // how many stored documents to retrieve (0: none)
  std::vector<std::string> doc_ids;   // use exactly these stored documents instead of retrieving
  std::optional<std::string> adapter; // force this LoRA adapter instead of the retrieved group's
};

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;   // at least one
  std::optional<int> max_tokens;       // max_tokens or max_completion_tokens, >= 1
  std::optional<double> temperature;   // [0, 2]; unset: the backend's default
  std::optional<double> top_p;         // (0, 1]
  std::vector<std::string> stop;       // at most 4 non-empty strings; applied by the routes, not the backend
  std::optional<std::int64_t> seed;
  bool stream = false;
  bool include_usage = false;          // stream_options.include_usage
  LlocoOptions lloco;
};

// Parses and validates a POST /v1/chat/completions body. Throws HttpError(400, message naming the
// field and the bad value, param = the field's path such as "messages[1].role" or "lloco.top_k").
ChatRequest parse_chat_request(std::string_view body);

struct ModelInfo {
  std::string id;
  std::int64_t created = 0;  // unix seconds
  std::string owned_by = "lloco";
};

struct ChatResult {
  std::string finish_reason = "stop";  // "stop" (end of sequence) or "length" (max_tokens reached)
  int prompt_tokens = 0;               // tokens of the decoder's input, summary embeddings included
  int completion_tokens = 0;
  std::vector<std::string> doc_ids;    // the stored documents that were injected
  std::string adapter;                 // the LoRA adapter used ("" = base model)
  std::map<std::string, double> metrics;  // free-form numbers (e.g. summary_tokens, prefill_ms)
};

// Receives decoded text piece by piece; returns false when generation should stop (the client
// disconnected, the server is stopping, or a stop string was reached).
using DeltaSink = std::function<bool(const std::string& delta)>;

// The model half of `lloco serve`. Called from connection threads; with
// OpenAiRoutesOptions::serialize (the default) never by two threads at once.
class ChatBackend {
 public:
  virtual ~ChatBackend() = default;
  // Listed by GET /v1/models; with require_listed_model, the only accepted request "model" values.
  virtual std::vector<ModelInfo> models() = 0;
  // Generates the assistant reply for request.messages, passing its text to on_delta as it is
  // decoded (the reply is the concatenation of the deltas; stop strings are applied by the caller).
  // Stop as soon as on_delta returns false and return what was done. Throw HttpError(4xx) for bad
  // requests (e.g. an unknown doc id); other exceptions become 500.
  virtual ChatResult complete(const ChatRequest& request, const DeltaSink& on_delta) = 0;
};

struct OpenAiRoutesOptions {
  bool serialize = true;             // one complete() at a time: a single model on a single GPU
  bool require_listed_model = true;  // unlisted request "model" -> 404 model_not_found
};

// Registers POST /v1/chat/completions, GET /v1/models and GET /health on `server` (before start()).
void register_openai_routes(HttpServer& server, std::shared_ptr<ChatBackend> backend,
                            OpenAiRoutesOptions options = {});

// Applies stop strings to a stream of deltas and holds back text that might still become a stop
// string or that ends inside a UTF-8 sequence, so every emitted piece is final.
class DeltaFilter {
 public:
  explicit DeltaFilter(std::vector<std::string> stop) : stop_(std::move(stop)) {}
  // The text that can be emitted now (possibly empty).
  std::string push(std::string_view delta);
  // Whatever is still held back, at the end of generation ("" once a stop string matched).
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stop_;
  std::string pending_;
  bool stopped_ = false;
};

// ---- response JSON (exposed for tests and for other front ends) -------------------------------------

std::string new_completion_id();  // "chatcmpl-" + 24 random alphanumerics
nlohmann::json usage_json(const ChatResult& result);
nlohmann::json lloco_json(const ChatResult& result);
nlohmann::json completion_json(const std::string& id, std::int64_t created, const std::string& model,
                               const std::string& text, const ChatResult& result);
// One chat.completion.chunk with a single choice: `delta` plus finish_reason (null when empty).
nlohmann::json chunk_json(const std::string& id, std::int64_t created, const std::string& model,
                          const nlohmann::json& delta, const std::string& finish_reason);
nlohmann::json models_json(const std::vector<ModelInfo>& models);
// json.dump() that never throws on invalid UTF-8 from a decoder (it becomes U+FFFD).
std::string dump(const nlohmann::json& j);

}  // namespace lloco::http
