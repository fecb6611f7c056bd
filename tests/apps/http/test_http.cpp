// The HTTP server and the OpenAI routes over real sockets: a fake backend echoes the last user
// message word by word, and a raw client checks status codes, JSON bodies, SSE framing (chunked),
// keep-alive, disconnects, concurrency and shutdown.
#include <gtest/gtest.h>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/apps/http/http_client.h"
#include "apps/http/http_server.h"
#include "apps/http/openai_api.h"

namespace lloco::http {
namespace {

using json = nlohmann::json;
using test::Client;
using test::get;
using test::post;

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Echoes the last user message one word per delta (" word" after the first); max_tokens truncates
// with finish_reason "length". "boom" throws (500), "missing-doc" throws HttpError(404), "slow N"
// emits N words 1 ms apart and records whether the client went away.
class EchoBackend : public ChatBackend {
 public:
  std::vector<ModelInfo> models() override { return {{"lloco-test", 1700000000, "lloco"}, {"qmsum-group-3", 1700000001, "lloco"}}; }

  ChatResult complete(const ChatRequest& req, const DeltaSink& on_delta) override {
    ++calls;
    const std::string& last = req.messages.back().content;
    if (last == "boom") throw std::runtime_error("decoder exploded");
    if (last == "missing-doc") throw HttpError(404, "no stored document 'x'", "lloco.doc_ids");
    std::vector<std::string> out = words(last);
    if (out.size() == 2 && out[0] == "slow") out.assign(std::stoul(out[1]), "tok");
    ChatResult r;
    for (const auto& m : req.messages) r.prompt_tokens += static_cast<int>(words(m.content).size());
    r.doc_ids = req.lloco.doc_ids;
    r.adapter = req.lloco.adapter.value_or("group-0");
    r.metrics["summary_tokens"] = 50;
    for (std::size_t i = 0; i < out.size(); ++i) {
      if (req.max_tokens && r.completion_tokens == *req.max_tokens) {
        r.finish_reason = "length";
        break;
      }
      ++r.completion_tokens;
      if (words(last)[0] == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (!on_delta((i ? " " : "") + out[i])) {
        ++stopped_early;
        break;
      }
    }
    return r;
  }

  std::atomic<int> calls{0};
  std::atomic<int> stopped_early{0};
};

std::string chat_body(const std::string& user, json extra = json::object()) {
  json body = {{"model", "lloco-test"}, {"messages", {{{"role", "user"}, {"content", user}}}}};
  body.update(extra);
  return body.dump();
}

class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override { start({}); }
  void TearDown() override { server_->stop(); }

  void start(HttpServerOptions options) {
    if (server_) server_->stop();
    options.port = 0;
    server_ = std::make_unique<HttpServer>(options);
    backend_ = std::make_shared<EchoBackend>();
    register_openai_routes(*server_, backend_);
    server_->route("GET", "/throw-invalid", [](const Request&, Response&) { throw std::invalid_argument("bad x"); });
    server_->route("POST", "/echo", [](const Request& req, Response& res) {
      res.send(200, "text/plain", req.method + " " + req.path + "?" + req.query + " " + req.body);
    });
    server_->start();
  }

  test::RawResponse request(const std::string& raw) {
    Client c(server_->port());
    EXPECT_TRUE(c.send(raw));
    return c.read_response();
  }

  // A 4xx/5xx with OpenAI's error shape; returns the "error" object.
  json expect_error(const test::RawResponse& r, int status) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(r.header("content-type"), "application/json");
    const json j = json::parse(r.body);
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_EQ(j["error"]["type"], status >= 500 ? "server_error" : "invalid_request_error");
    return j["error"];
  }

  std::unique_ptr<HttpServer> server_;
  std::shared_ptr<EchoBackend> backend_;
};

TEST_F(HttpTest, HealthModelsAndQuery) {
  EXPECT_EQ(json::parse(request(get("/health")).body)["status"], "ok");
  const auto models = request(get("/v1/models"));
  ASSERT_EQ(models.status, 200);
  const json j = json::parse(models.body);
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 2u);
  EXPECT_EQ(j["data"][0], json({{"id", "lloco-test"}, {"object", "model"}, {"created", 1700000000}, {"owned_by", "lloco"}}));
  EXPECT_EQ(request(post("/echo?a=1&b=2", "hi")).body, "POST /echo?a=1&b=2 hi");
}

TEST_F(HttpTest, CompletionJson) {
  const auto r = request(post("/v1/chat/completions",
                              chat_body("the quick brown fox", {{"lloco", {{"doc_ids", {"d1", "d2"}}, {"top_k", 2}}}})));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  const json j = json::parse(r.body);
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "lloco-test");
  EXPECT_GT(j["created"].get<std::int64_t>(), 1600000000);
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"], json({{"role", "assistant"}, {"content", "the quick brown fox"}}));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"], json({{"prompt_tokens", 4}, {"completion_tokens", 4}, {"total_tokens", 8}}));
  EXPECT_EQ(j["lloco"]["doc_ids"], json({"d1", "d2"}));
  EXPECT_EQ(j["lloco"]["adapter"], "group-0");
  EXPECT_EQ(j["lloco"]["metrics"]["summary_tokens"], 50);
  EXPECT_TRUE(j["lloco"]["metrics"].contains("total_ms"));
}

TEST_F(HttpTest, MaxTokensAndStopStrings) {
  json j = json::parse(request(post("/v1/chat/completions", chat_body("a b c d", {{"max_tokens", 2}}))).body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "a b");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["completion_tokens"], 2);
  // The stop string spans two deltas ("b" and " cat") and is cut out with everything after it.
  j = json::parse(request(post("/v1/chat/completions", chat_body("a b cat d", {{"stop", "b c"}}))).body);
  EXPECT_EQ(j["choices"][0]["message"]["content"], "a ");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"]["completion_tokens"], 3);  // generation stopped right after the match
}

// Checks a full stream: role chunk, content deltas, finish chunk, usage chunk, [DONE].
void check_stream(const test::RawResponse& r, const std::string& expected_text, bool usage) {
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "text/event-stream");
  EXPECT_EQ(r.header("cache-control"), "no-cache");
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  const auto events = test::sse_events(r.body);
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  const json first = json::parse(events[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  const std::string id = first["id"];
  std::string text;
  std::size_t i = 1;
  for (; i < events.size(); ++i) {
    const json c = json::parse(events[i]);
    EXPECT_EQ(c["id"], id);
    if (!c["choices"][0]["finish_reason"].is_null()) break;
    text += c["choices"][0]["delta"]["content"].get<std::string>();
    EXPECT_EQ(c.contains("usage"), usage);
  }
  EXPECT_EQ(text, expected_text);
  ASSERT_LT(i, events.size());
  const json finish = json::parse(events[i]);
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(finish["choices"][0]["delta"], json::object());
  EXPECT_EQ(finish["lloco"]["adapter"], "group-0");
  if (usage) {
    const json u = json::parse(events.at(i + 1));
    EXPECT_EQ(u["choices"], json::array());
    EXPECT_EQ(u["usage"]["completion_tokens"], static_cast<int>(words(expected_text).size()));
    EXPECT_EQ(i + 3, events.size());
  } else {
    EXPECT_EQ(i + 2, events.size());
  }
}

TEST_F(HttpTest, StreamingSse) {
  const json opts = {{"stream", true}, {"stream_options", {{"include_usage", true}}}};
  check_stream(request(post("/v1/chat/completions", chat_body("one two three four", opts))), "one two three four", true);
  check_stream(request(post("/v1/chat/completions", chat_body("x y", {{"stream", true}}))), "x y", false);
}

TEST_F(HttpTest, KeepAliveTwoRequestsOneConnection) {
  Client c(server_->port());
  ASSERT_TRUE(c.send(post("/v1/chat/completions", chat_body("first request", {{"stream", true}}))));
  check_stream(c.read_response(), "first request", false);
  ASSERT_TRUE(c.send(post("/v1/chat/completions", chat_body("second one"))));
  const auto second = c.read_response();
  EXPECT_EQ(second.header("connection"), "keep-alive");
  EXPECT_EQ(json::parse(second.body)["choices"][0]["message"]["content"], "second one");
  // Connection: close is honoured: the reply says so and the server closes.
  ASSERT_TRUE(c.send(get("/health", "Connection: close\r\n")));
  EXPECT_EQ(c.read_response().header("connection"), "close");
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(HttpTest, ExpectContinueGetsInterimResponse) {
  Client c(server_->port());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(c.read_head(), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.send("hello"));
  EXPECT_EQ(c.read_response().body, "POST /echo? hello");
}

TEST_F(HttpTest, Http10ClosesUnlessKeepAlive) {
  Client c(server_->port());
  ASSERT_TRUE(c.send("GET /health HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(c.read_response().status, 200);
  EXPECT_TRUE(c.closed_by_server());
}

TEST_F(HttpTest, Http10StreamEndsAtClose) {
  const std::string body = chat_body("old client", {{"stream", true}});
  Client c(server_->port());
  ASSERT_TRUE(c.send("POST /v1/chat/completions HTTP/1.0\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n" + body));
  const auto r = c.read_response();  // no Content-Length, no chunking: read to EOF
  EXPECT_EQ(r.header("transfer-encoding"), "");
  EXPECT_EQ(r.header("connection"), "close");
  const auto events = test::sse_events(r.body);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(json::parse(events[2])["choices"][0]["delta"]["content"], " client");
}

TEST_F(HttpTest, InvalidRequestsName400Fields) {
  auto chat = [&](const std::string& body) { return request(post("/v1/chat/completions", body)); };
  EXPECT_NE(expect_error(chat("{\"model\": "), 400)["message"].get<std::string>().find("not valid JSON"),
            std::string::npos);
  json e = expect_error(chat(chat_body("hi", {{"n", 2}})), 400);
  EXPECT_EQ(e["param"], "n");
  EXPECT_NE(e["message"].get<std::string>().find("only n=1"), std::string::npos);
  EXPECT_EQ(expect_error(chat(R"({"model": "lloco-test"})"), 400)["param"], "messages");
  e = expect_error(chat(chat_body("hi", {{"lloco", {{"top_kk", 3}}}})), 400);
  EXPECT_EQ(e["param"], "lloco.top_kk");
  e = expect_error(chat(chat_body("hi", {{"temperature", "hot"}})), 400);
  EXPECT_EQ(e["param"], "temperature");
  EXPECT_NE(e["message"].get<std::string>().find("\"hot\""), std::string::npos);
  e = expect_error(chat(R"({"model":"lloco-test","messages":[{"role":"robot","content":"x"}]})"), 400);
  EXPECT_EQ(e["param"], "messages[0].role");
  EXPECT_NE(e["message"].get<std::string>().find("robot"), std::string::npos);
  EXPECT_EQ(expect_error(chat(chat_body("hi", {{"max_tokens", 0}})), 400)["param"], "max_tokens");
  EXPECT_EQ(expect_error(chat(chat_body("hi", {{"stop", {1}}})), 400)["param"], "stop[0]");
  EXPECT_EQ(expect_error(chat(chat_body("hi", {{"lloco", {{"doc_ids", "d1"}}}})), 400)["param"], "lloco.doc_ids");
  EXPECT_EQ(expect_error(chat(chat_body("hi", {{"tools", {{{"type", "function"}}}}})), 400)["param"], "tools");
  e = expect_error(chat(chat_body("hi", {{"model", "gpt-4"}})), 404);
  EXPECT_EQ(e["code"], "model_not_found");
  EXPECT_EQ(backend_->calls.load(), 0);  // none of these reached the model
}

TEST_F(HttpTest, TransportErrors) {
  expect_error(request(get("/nope")), 404);
  const auto r405 = request(get("/v1/chat/completions"));
  expect_error(r405, 405);
  EXPECT_EQ(r405.header("allow"), "POST");
  // Transfer-Encoding bodies are refused with 411 (we require Content-Length) and the connection closes.
  Client c(server_->port());
  ASSERT_TRUE(c.send("POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n0\r\n\r\n"));
  const auto r411 = c.read_response();
  expect_error(r411, 411);
  EXPECT_EQ(r411.header("connection"), "close");
  expect_error(request("GET /health HTTP/1.1\r\nHost: t\r\n" + std::string(20000, 'X') + ": y\r\n\r\n"), 431);
  expect_error(request("GARBAGE\r\n\r\n"), 400);
  expect_error(request("GET /health HTTP/1.1\r\nNo colon here\r\n\r\n"), 400);
  expect_error(request("GET /health HTTP/2.0\r\n\r\n"), 505);
  expect_error(request("POST /echo HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n"), 400);
  // Declared too large: answered from the headers alone.
  expect_error(request("POST /echo HTTP/1.1\r\nContent-Length: 9000000\r\n\r\n"), 413);
}

TEST_F(HttpTest, OversizedBodySent413) {
  HttpServerOptions small;
  small.max_body_bytes = 1000;
  start(small);
  Client c(server_->port());
  c.send(post("/echo", std::string(200000, 'a')));  // may fail part-way: the server stops reading
  const auto r = c.read_response();
  EXPECT_NE(expect_error(r, 413)["message"].get<std::string>().find("1000"), std::string::npos);
  EXPECT_EQ(request(post("/echo", "ok")).status, 200);
}

TEST_F(HttpTest, HandlerExceptionsBecomeJsonErrors) {
  const auto r500 = request(post("/v1/chat/completions", chat_body("boom")));
  EXPECT_NE(expect_error(r500, 500)["message"].get<std::string>().find("decoder exploded"), std::string::npos);
  EXPECT_EQ(expect_error(request(post("/v1/chat/completions", chat_body("missing-doc"))), 404)["param"],
            "lloco.doc_ids");
  // A streaming request whose backend fails before any output still gets its status, not a 200 stream.
  expect_error(request(post("/v1/chat/completions", chat_body("missing-doc", {{"stream", true}}))), 404);
  EXPECT_EQ(expect_error(request(get("/throw-invalid")), 400)["message"], "bad x");
}

TEST_F(HttpTest, ClientDisconnectStopsGeneration) {
  {
    Client c(server_->port());
    ASSERT_TRUE(c.send(post("/v1/chat/completions", chat_body("slow 5000", {{"stream", true}}))));
    EXPECT_NE(c.read_head().find("200 OK"), std::string::npos);
  }  // closed mid-stream
  for (int i = 0; i < 300 && backend_->stopped_early.load() == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(backend_->stopped_early.load(), 1);
  const auto r = request(post("/v1/chat/completions", chat_body("still alive")));
  EXPECT_EQ(json::parse(r.body)["choices"][0]["message"]["content"], "still alive");
}

TEST_F(HttpTest, ConcurrentClients) {
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      Client c(server_->port());
      for (int i = 0; i < 5; ++i) {
        const std::string text = "thread " + std::to_string(t) + " request " + std::to_string(i);
        if (!c.send(post("/v1/chat/completions", chat_body(text, {{"stream", i % 2 == 1}})))) return;
        const auto r = c.read_response();
        std::string got;
        if (i % 2 == 0) {
          got = json::parse(r.body)["choices"][0]["message"]["content"];
        } else {
          for (const auto& e : test::sse_events(r.body)) {
            if (e == "[DONE]") break;
            const json d = json::parse(e)["choices"][0]["delta"];
            if (d.contains("content")) got += d["content"].get<std::string>();
          }
        }
        if (got == text) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 40);
}

TEST_F(HttpTest, StalledRequestTimesOut408) {
  HttpServerOptions fast;
  fast.read_timeout_ms = 200;
  start(fast);
  Client c(server_->port());
  ASSERT_TRUE(c.send("POST /echo HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"));
  expect_error(c.read_response(), 408);
}

TEST_F(HttpTest, StopIsPromptWithIdleKeepAlive) {
  Client idle(server_->port());
  ASSERT_TRUE(idle.send(get("/health")));
  EXPECT_EQ(idle.read_response().status, 200);
  Client half(server_->port());
  ASSERT_TRUE(half.send("GET /health HTTP/1.1\r\n"));  // a request that never finishes
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(server_->active_connections(), 2);
  const auto t0 = std::chrono::steady_clock::now();
  server_->stop();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(s, 1.0);
  EXPECT_EQ(server_->active_connections(), 0);
  EXPECT_TRUE(idle.closed_by_server());
}

TEST(HttpSignal, RunUntilSignalStopsOnSigterm) {
  HttpServerOptions options;
  options.port = 0;
  HttpServer server(options);
  server.route("GET", "/health", [](const Request&, Response& res) { res.send_json(200, "{}"); });
  std::atomic<int> result{-1};
  std::atomic<int> announced{0};
  std::thread runner([&] { result = run_until_signal(server, [&](int port) { announced = port; }); });
  // on_listening runs after the runner thread has blocked SIGTERM, so the signal cannot kill us.
  for (int i = 0; i < 500 && announced.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_EQ(announced.load(), server.port());
  ASSERT_NE(server.port(), 0);
  {
    Client c(server.port());
    ASSERT_TRUE(c.send(get("/health")));
    EXPECT_EQ(c.read_response().status, 200);
  }
  ::pthread_kill(runner.native_handle(), SIGTERM);
  runner.join();
  EXPECT_EQ(result.load(), SIGTERM);
  EXPECT_THROW(Client(server.port()), std::runtime_error);  // nothing listens any more
}

}  // namespace
}  // namespace lloco::http
