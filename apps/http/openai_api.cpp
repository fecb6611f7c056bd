// OpenAI chat protocol: request validation, response JSON, stop strings and the three routes.
#include "apps/http/openai_api.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <limits>
#include <mutex>
#include <random>

#include "core/error.h"

namespace lloco::http {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- validation helpers: every error names the field (param) and shows the offending value ----------

std::string show(const json& v) {
  std::string s = dump(v);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

[[noreturn]] void bad(const std::string& param, const std::string& message) { throw HttpError(400, message, param); }

void expect(bool ok, const std::string& param, const json& v, const char* want) {
  if (!ok) bad(param, "'" + param + "' must be " + want + ", got " + show(v));
}

std::string as_string(const json& v, const std::string& param, bool non_empty = false) {
  expect(v.is_string(), param, v, "a string");
  if (non_empty && v.get_ref<const std::string&>().empty()) bad(param, "'" + param + "' must not be empty");
  return v.get<std::string>();
}

std::int64_t as_int(const json& v, const std::string& param, std::int64_t lo, std::int64_t hi) {
  expect(v.is_number_integer(), param, v, "an integer");
  const bool too_big = v.is_number_unsigned() && v.get<std::uint64_t>() > static_cast<std::uint64_t>(hi);
  if (too_big || v.get<std::int64_t>() < lo || v.get<std::int64_t>() > hi) {
    bad(param, "'" + param + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " +
                   show(v));
  }
  return v.get<std::int64_t>();
}

double as_number(const json& v, const std::string& param, double lo, double hi, bool lo_open = false) {
  expect(v.is_number(), param, v, "a number");
  const double x = v.get<double>();
  if (x < lo || x > hi || (lo_open && x == lo)) {
    bad(param, "'" + param + "' must be in " + (lo_open ? "(" : "[") + show(json(lo)) + ", " + show(json(hi)) +
                   "], got " + show(v));
  }
  return x;
}

bool as_bool(const json& v, const std::string& param) {
  expect(v.is_boolean(), param, v, "a boolean");
  return v.get<bool>();
}

void reject_unknown(const std::string& param, const std::vector<std::string>& known) {
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  bad(param, "unknown field '" + param + "' (known: " + list + ")");
}

// ---- request sections --------------------------------------------------------------------------------

// "content": a string, or an array of {"type": "text", "text": ...} parts joined by newlines.
std::string parse_content(const json& v, const std::string& param) {
  if (v.is_string()) return v.get<std::string>();
  expect(v.is_array(), param, v, "a string or an array of text parts");
  std::string text;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::string p = param + "[" + std::to_string(i) + "]";
    const json& part = v[i];
    expect(part.is_object() && part.contains("type"), p, part, "an object with a \"type\"");
    if (part["type"] != "text") bad(p + ".type", "only text content parts are supported, got " + show(part["type"]));
    text += (i ? "\n" : "") + as_string(part.value("text", json()), p + ".text");
  }
  return text;
}

ChatMessage parse_message(const json& m, const std::string& param) {
  expect(m.is_object(), param, m, "an object");
  ChatMessage msg;
  bool has_role = false, has_content = false;
  for (const auto& [key, v] : m.items()) {
    if (key == "role") {
      msg.role = as_string(v, param + ".role");
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant") {
        bad(param + ".role", "'" + param + ".role' must be system, user or assistant, got " + show(v));
      }
      has_role = true;
    } else if (key == "content") {
      msg.content = parse_content(v, param + ".content");
      has_content = true;
    } else if (key == "name") {
      as_string(v, param + ".name");  // accepted and ignored: the prompt format has no speaker names
    } else {
      reject_unknown(param + "." + key, {"role", "content", "name"});
    }
  }
  if (!has_role) bad(param + ".role", "'" + param + ".role' is required");
  if (!has_content) bad(param + ".content", "'" + param + ".content' is required");
  return msg;
}

std::vector<ChatMessage> parse_messages(const json& v) {
  expect(v.is_array(), "messages", v, "an array");
  if (v.empty()) bad("messages", "'messages' must contain at least one message");
  std::vector<ChatMessage> out;
  for (std::size_t i = 0; i < v.size(); ++i) out.push_back(parse_message(v[i], "messages[" + std::to_string(i) + "]"));
  return out;
}

std::vector<std::string> parse_stop(const json& v) {
  if (v.is_string()) return {as_string(v, "stop", true)};
  expect(v.is_array(), "stop", v, "a string or an array of strings");
  if (v.size() > 4) bad("stop", "'stop' takes at most 4 strings, got " + std::to_string(v.size()));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < v.size(); ++i) out.push_back(as_string(v[i], "stop[" + std::to_string(i) + "]", true));
  return out;
}

LlocoOptions parse_lloco(const json& v) {
  expect(v.is_object(), "lloco", v, "an object");
  LlocoOptions out;
  for (const auto& [key, x] : v.items()) {
    const std::string param = "lloco." + key;
    if (key == "top_k") {
      if (!x.is_null()) out.top_k = static_cast<int>(as_int(x, param, 0, 1000000));
    } else if (key == "doc_ids") {
      if (x.is_null()) continue;
      expect(x.is_array(), param, x, "an array of strings");
      for (std::size_t i = 0; i < x.size(); ++i) {
        out.doc_ids.push_back(as_string(x[i], param + "[" + std::to_string(i) + "]", true));
      }
    } else if (key == "adapter") {
      if (!x.is_null()) out.adapter = as_string(x, param, true);
    } else {
      reject_unknown(param, {"top_k", "doc_ids", "adapter"});
    }
  }
  return out;
}

bool parse_stream_options(const json& v) {
  expect(v.is_object(), "stream_options", v, "an object");
  bool include_usage = false;
  for (const auto& [key, x] : v.items()) {
    if (key != "include_usage") reject_unknown("stream_options." + key, {"include_usage"});
    include_usage = as_bool(x, "stream_options.include_usage");
  }
  return include_usage;
}

// OpenAI fields we do not implement: accepted only with a value that asks for nothing.
void check_unsupported(const std::string& key, const json& v) {
  bool neutral = false;
  if (key == "frequency_penalty" || key == "presence_penalty") {
    neutral = as_number(v, key, -2.0, 2.0) == 0.0;
  } else if (key == "logprobs" || key == "parallel_tool_calls") {
    neutral = key == "parallel_tool_calls" || !as_bool(v, key);
  } else if (key == "logit_bias" || key == "tools") {
    neutral = v.empty();
  } else if (key == "response_format") {
    neutral = v.is_object() && v.value("type", "") == "text";
  }
  if (!neutral) bad(key, "'" + key + "' is not supported by this server, got " + show(v));
}

bool is_unsupported_field(const std::string& key) {
  static const std::vector<std::string> kFields = {
      "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias", "tools",
      "tool_choice", "functions", "function_call", "response_format", "parallel_tool_calls"};
  return std::find(kFields.begin(), kFields.end(), key) != kFields.end();
}

// One top-level field into `req`. Null means "not given" for every optional field, as OpenAI clients
// often send explicit nulls.
void parse_field(const std::string& key, const json& v, ChatRequest& req, std::optional<int>& max_completion,
                 bool& has_stream_options) {
  if (key == "model") {
    req.model = as_string(v, "model", true);
  } else if (key == "messages") {
    req.messages = parse_messages(v);
  } else if (v.is_null()) {
    return;
  } else if (key == "max_tokens") {
    req.max_tokens = static_cast<int>(as_int(v, key, 1, std::numeric_limits<int>::max()));
  } else if (key == "max_completion_tokens") {
    max_completion = static_cast<int>(as_int(v, key, 1, std::numeric_limits<int>::max()));
  } else if (key == "temperature") {
    req.temperature = as_number(v, key, 0.0, 2.0);
  } else if (key == "top_p") {
    req.top_p = as_number(v, key, 0.0, 1.0, true);
  } else if (key == "n") {
    if (as_int(v, key, 1, std::numeric_limits<int>::max()) != 1) bad("n", "only n=1 is supported, got " + show(v));
  } else if (key == "stop") {
    req.stop = parse_stop(v);
  } else if (key == "seed") {
    req.seed = as_int(v, key, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max());
  } else if (key == "stream") {
    req.stream = as_bool(v, key);
  } else if (key == "stream_options") {
    req.include_usage = parse_stream_options(v);
    has_stream_options = true;
  } else if (key == "lloco") {
    req.lloco = parse_lloco(v);
  } else if (key == "user" || key == "metadata" || key == "store" || key == "service_tier") {
    return;  // bookkeeping fields with no effect on generation
  } else if (is_unsupported_field(key)) {
    check_unsupported(key, v);
  } else {
    reject_unknown(key, {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
                         "stop", "seed", "stream", "stream_options", "lloco"});
  }
}

}  // namespace

ChatRequest parse_chat_request(std::string_view body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::parse_error& e) {
    throw HttpError(400, std::string("request body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw HttpError(400, "request body must be a JSON object, got " + show(j));
  ChatRequest req;
  std::optional<int> max_completion;
  bool has_stream_options = false;
  for (const auto& [key, v] : j.items()) parse_field(key, v, req, max_completion, has_stream_options);
  if (!j.contains("model")) bad("model", "'model' is required");
  if (!j.contains("messages")) bad("messages", "'messages' is required");
  if (max_completion) {
    if (req.max_tokens && *req.max_tokens != *max_completion) {
      bad("max_completion_tokens", "'max_tokens' (" + std::to_string(*req.max_tokens) +
                                       ") and 'max_completion_tokens' (" + std::to_string(*max_completion) +
                                       ") disagree");
    }
    req.max_tokens = max_completion;
  }
  if (has_stream_options && !req.stream) {
    bad("stream_options", "'stream_options' is only allowed when 'stream' is true");
  }
  return req;
}

// ---- stop strings ----------------------------------------------------------------------------------

namespace {

// Bytes at the end of `s` that begin a UTF-8 sequence not yet complete (0 when it ends cleanly).
std::size_t incomplete_utf8_tail(const std::string& s) {
  const std::size_t n = s.size();
  for (std::size_t k = 1; k <= std::min<std::size_t>(4, n); ++k) {
    const auto c = static_cast<unsigned char>(s[n - k]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead byte
    const std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > k ? k : 0;
  }
  return 0;
}

}  // namespace

std::string DeltaFilter::push(std::string_view delta) {
  if (stopped_) return "";
  pending_.append(delta);
  std::size_t cut = std::string::npos;
  for (const auto& s : stop_) {
    if (!s.empty()) cut = std::min(cut, pending_.find(s));
  }
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  // Emitted text never ends in a stop-string prefix, so a match can never straddle what was emitted.
  std::size_t hold = incomplete_utf8_tail(pending_);
  for (const auto& s : stop_) {
    if (s.empty()) continue;
    for (std::size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string DeltaFilter::flush() {
  std::string out;
  if (!stopped_) out.swap(pending_);
  return out;
}

// ---- response JSON -------------------------------------------------------------------------------------

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string new_completion_id() {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(0, sizeof kAlphabet - 2);
  std::string id = "chatcmpl-";
  for (int i = 0; i < 24; ++i) id += kAlphabet[pick(rng)];
  return id;
}

json usage_json(const ChatResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens}};
}

json lloco_json(const ChatResult& r) {
  json metrics = json::object();
  for (const auto& [k, v] : r.metrics) metrics[k] = v;
  return {{"doc_ids", r.doc_ids}, {"adapter", r.adapter.empty() ? json() : json(r.adapter)}, {"metrics", metrics}};
}

json completion_json(const std::string& id, std::int64_t created, const std::string& model, const std::string& text,
                     const ChatResult& r) {
  json choice = {{"index", 0},
                 {"message", {{"role", "assistant"}, {"content", text}}},
                 {"logprobs", nullptr},
                 {"finish_reason", r.finish_reason}};
  return {{"id", id},          {"object", "chat.completion"}, {"created", created},     {"model", model},
          {"choices", {choice}}, {"usage", usage_json(r)},      {"lloco", lloco_json(r)}};
}

json chunk_json(const std::string& id, std::int64_t created, const std::string& model, const json& delta,
                const std::string& finish_reason) {
  json choice = {{"index", 0},
                 {"delta", delta},
                 {"logprobs", nullptr},
                 {"finish_reason", finish_reason.empty() ? json() : json(finish_reason)}};
  return {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model}, {"choices", {choice}}};
}

json models_json(const std::vector<ModelInfo>& models) {
  json data = json::array();
  for (const auto& m : models) {
    data.push_back({{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", m.owned_by}});
  }
  return {{"object", "list"}, {"data", data}};
}

// ---- routes ----------------------------------------------------------------------------------------------

namespace {

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

class ChatRoute {
 public:
  ChatRoute(std::shared_ptr<ChatBackend> backend, OpenAiRoutesOptions options)
      : backend_(std::move(backend)), options_(options) {}

  void handle(const Request& http, Response& response) {
    const auto t0 = Clock::now();
    const ChatRequest req = parse_chat_request(http.body);
    check_model(req.model);
    Reply reply{req, response, new_completion_id(), static_cast<std::int64_t>(std::time(nullptr)), t0,
                DeltaFilter(req.stop), std::nullopt};
    if (req.stream) {
      stream(reply);
    } else {
      whole(reply);
    }
  }

 private:
  // Per-request state shared by the streaming and the whole-response paths.
  struct Reply {
    const ChatRequest& req;
    Response& response;
    std::string id;
    std::int64_t created;
    Clock::time_point t0;
    DeltaFilter filter;
    std::optional<double> ttft_ms;
  };

  void check_model(const std::string& model) {
    if (!options_.require_listed_model) return;
    std::string listed;
    for (const auto& m : backend_->models()) {
      if (m.id == model) return;
      listed += (listed.empty() ? "" : ", ") + m.id;
    }
    throw HttpError(404, "the model '" + model + "' does not exist (served: " + listed + ")", "model", "",
                    "model_not_found");
  }

  // Runs the backend (one at a time when serialized) and finalises finish_reason and metrics.
  ChatResult generate(Reply& r, const DeltaSink& sink) {
    std::unique_lock<std::mutex> lock(mu_, std::defer_lock);
    if (options_.serialize) lock.lock();
    const double queue_ms = ms_since(r.t0);
    ChatResult result;
    if (!r.response.client_gone()) result = backend_->complete(r.req, sink);  // nobody waits for the answer
    if (r.filter.stopped()) result.finish_reason = "stop";
    LLOCO_CHECK(result.finish_reason == "stop" || result.finish_reason == "length", "http.chat",
                "the backend returned finish_reason '", result.finish_reason, "', expected stop or length");
    result.metrics["queue_ms"] = queue_ms;
    if (r.ttft_ms) result.metrics["ttft_ms"] = *r.ttft_ms;
    result.metrics["total_ms"] = ms_since(r.t0);
    return result;
  }

  void whole(Reply& r) {
    std::string text;
    const DeltaSink sink = [&](const std::string& delta) {
      text += r.filter.push(delta);
      if (!r.ttft_ms && !text.empty()) r.ttft_ms = ms_since(r.t0);
      return !r.filter.stopped() && !r.response.client_gone();
    };
    ChatResult result = generate(r, sink);
    text += r.filter.flush();
    r.response.send_json(200, dump(completion_json(r.id, r.created, r.req.model, text, result)));
  }

  // Headers go out with the first text (or at the end), so a backend error before any output still
  // gets its own status code instead of a 200 stream.
  void stream(Reply& r) {
    auto send_chunk = [&](json chunk) {
      if (r.req.include_usage) chunk["usage"] = nullptr;  // OpenAI: null on all but the usage chunk
      return r.response.write_event(dump(chunk));
    };
    auto open = [&] {
      if (r.response.started()) return true;
      return r.response.begin_stream() &&
             send_chunk(chunk_json(r.id, r.created, r.req.model, {{"role", "assistant"}, {"content", ""}}, ""));
    };
    auto emit = [&](const std::string& text) {
      if (text.empty()) return true;
      if (!r.ttft_ms) r.ttft_ms = ms_since(r.t0);
      return open() && send_chunk(chunk_json(r.id, r.created, r.req.model, {{"content", text}}, ""));
    };
    const DeltaSink sink = [&](const std::string& delta) {
      return emit(r.filter.push(delta)) && !r.filter.stopped() && !r.response.client_gone();
    };
    ChatResult result = generate(r, sink);
    if (!emit(r.filter.flush()) || !open()) return;
    json last = chunk_json(r.id, r.created, r.req.model, json::object(), result.finish_reason);
    last["lloco"] = lloco_json(result);
    if (!send_chunk(last)) return;
    if (r.req.include_usage) {
      json usage = chunk_json(r.id, r.created, r.req.model, json::object(), "");
      usage["choices"] = json::array();
      usage["usage"] = usage_json(result);
      if (!r.response.write_event(dump(usage))) return;
    }
    if (r.response.write_event("[DONE]")) r.response.end_stream();
  }

  std::shared_ptr<ChatBackend> backend_;
  OpenAiRoutesOptions options_;
  std::mutex mu_;
};

}  // namespace

void register_openai_routes(HttpServer& server, std::shared_ptr<ChatBackend> backend, OpenAiRoutesOptions options) {
  LLOCO_CHECK(backend != nullptr, "http.register_openai_routes", "backend is null");
  auto chat = std::make_shared<ChatRoute>(backend, options);
  server.route("POST", "/v1/chat/completions", [chat](const Request& req, Response& res) { chat->handle(req, res); });
  server.route("GET", "/v1/models", [backend](const Request&, Response& res) {
    res.send_json(200, dump(models_json(backend->models())));
  });
  server.route("GET", "/health", [](const Request&, Response& res) { res.send_json(200, R"({"status":"ok"})"); });
}

}  // namespace lloco::http
