// A small HTTP/1.1 server on POSIX sockets for `lloco serve`: Content-Length request bodies, keep-alive,
// per-(method, path) routing, whole responses or Server-Sent-Event streams (chunked), OpenAI-shaped
// JSON error bodies. Threading: one thread per connection, bounded by max_connections (see
// HttpServer below for why). No TLS, no request pipelining beyond sequential keep-alive requests.
#pragma once
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace lloco::http {

// Thrown by handlers (and by the parser) to answer with `status` and an OpenAI-style error body
// {"error":{"message","type","param","code"}}. type defaults to invalid_request_error (4xx) or
// server_error (5xx).
class HttpError : public std::runtime_error {
 public:
  HttpError(int status, const std::string& message, std::string param = "", std::string type = "",
            std::string code = "");
  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& type() const { return type_; }
  const std::string& code() const { return code_; }
  // Extra response headers (e.g. Allow for 405).
  std::vector<std::pair<std::string, std::string>> headers;

 private:
  int status_;
  std::string param_, type_, code_;
};

// The OpenAI error body for an error (null param/code when empty).
std::string error_body(const HttpError& e);
const char* status_reason(int status);

using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method;   // "GET", "POST", ...
  std::string target;   // as sent: path[?query]
  std::string path;     // target before '?'
  std::string query;    // after '?', not decoded
  std::string version;  // "HTTP/1.1" or "HTTP/1.0"
  Headers headers;      // names lower-cased, values trimmed, in arrival order
  std::string body;

  // First header with this (case-insensitive) name, or nullptr.
  const std::string* header(std::string_view name) const;
};

class Connection;

// Writes one response: either send() once, or begin_stream(), write_event()*, end_stream().
// Every write returns false once the client is gone (or the server is stopping); it never raises
// SIGPIPE. After a false return the connection is closed, so a generator should stop.
class Response {
 public:
  explicit Response(Connection& conn) : conn_(conn) {}

  bool send(int status, std::string_view content_type, std::string_view body, const Headers& extra = {});
  bool send_json(int status, std::string_view json_body) { return send(status, "application/json", json_body); }
  bool send_error(const HttpError& e);

  // 200 text/event-stream, Cache-Control: no-cache, chunked transfer encoding (HTTP/1.0 clients get
  // an unframed body ended by closing the connection).
  bool begin_stream(const Headers& extra = {});
  // One SSE event: every line of `data` prefixed by "data: ", then a blank line.
  bool write_event(std::string_view data);
  bool end_stream();

  // True when the peer has closed (checked without blocking), a write failed, or the server stops.
  bool client_gone();
  bool started() const { return state_ != State::kNone; }
  bool finished() const { return state_ == State::kDone; }
  int status() const { return status_; }

 private:
  enum class State { kNone, kStreaming, kDone };
  bool write_chunk(std::string_view payload);

  Connection& conn_;
  State state_ = State::kNone;
  int status_ = 0;
};

using Handler = std::function<void(const Request&, Response&)>;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = an ephemeral port; HttpServer::port() tells which
  int max_connections = 64;
  std::size_t max_body_bytes = 8u << 20;     // larger Content-Length -> 413
  std::size_t max_header_bytes = 16u << 10;  // request line + headers; larger -> 431
  int read_timeout_ms = 30000;   // a started request must arrive in full within this (-> 408)
  int idle_timeout_ms = 60000;   // an idle keep-alive connection is closed after this
  int write_timeout_ms = 30000;  // a client that stops reading is dropped after this
  int backlog = 128;
  // Called after every response (status 0: the client vanished before one was written).
  std::function<void(const Request&, int status, double ms)> access_log;
};

// Connections each get their own thread, at most max_connections at once (beyond that: 503 and
// close). Why not a fixed pool of a few workers: an SSE stream or an idle keep-alive connection holds
// its thread for its whole life, so 4 slow streams or 4 idle clients would starve everyone else;
// how many generations run at once is the backend's decision (it may serialize on the GPU).
class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Register before start(). The same path with another method answers 405 with Allow.
  void route(const std::string& method, const std::string& path, Handler handler);

  // Binds and listens (throws lloco::Error naming host:port on failure), starts the accept thread.
  void start();
  // Wakes the accept loop and every connection (idle or mid-request), ends streams (their writes
  // return false), joins all threads. Idempotent.
  void stop();

  int port() const { return bound_port_.load(); }  // 0 until start() has bound
  const HttpServerOptions& options() const { return options_; }
  int active_connections() const { return active_.load(); }

  // Internal: used by Connection.
  bool stopping() const { return stopping_.load(); }
  int wake_fd() const { return wake_pipe_[0]; }
  void dispatch(const Request& request, Response& response) const;

 private:
  struct ConnThread {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void accept_loop();
  void spawn_connection(int fd);
  void reap_connections(bool all);

  HttpServerOptions options_;
  std::map<std::string, std::map<std::string, Handler>> routes_;  // path -> method -> handler
  int listen_fd_ = -1;
  int wake_pipe_[2] = {-1, -1};
  std::atomic<int> bound_port_{0};  // read by other threads (tests, run_until_signal callers)
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
  std::thread accept_thread_;
  std::mutex conns_mu_;
  std::list<std::unique_ptr<ConnThread>> conns_;
  std::mutex stop_mu_;  // stop() may race between a signal-waiting thread and ~HttpServer
  bool stopped_ = false;
};

// For `lloco serve`: blocks SIGINT and SIGTERM in the calling thread (the server's threads inherit
// the mask, so the signal reaches only the sigwait here), starts the server, waits for one of those
// signals, stops the server and returns the signal number. on_listening runs once the port is bound.
int run_until_signal(HttpServer& server, const std::function<void(int port)>& on_listening = {});

}  // namespace lloco::http
