// HTTP/1.1 transport: connection threads, request parsing with limits, response and SSE writing.
#include "apps/http/http_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace lloco::http {

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// RFC 9110 token characters (method and header names).
bool is_token(std::string_view s) {
  static constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  if (s.empty()) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && kExtra.find(c) == std::string_view::npos) return false;
  }
  return true;
}

// Whether a comma-separated header value (e.g. Connection) lists `token`, case-insensitively.
bool lists_token(const std::string* value, std::string_view token) {
  if (!value) return false;
  std::string_view rest(*value);
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    if (lower(trim(rest.substr(0, comma))) == token) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

// Offset just past the blank line that ends the header section, or npos. Accepts CRLF or bare LF.
std::size_t find_header_end(const std::string& buf) {
  for (std::size_t i = buf.find('\n'); i != std::string::npos; i = buf.find('\n', i + 1)) {
    if (i + 1 < buf.size() && buf[i + 1] == '\n') return i + 2;
    if (i + 2 < buf.size() && buf[i + 1] == '\r' && buf[i + 2] == '\n') return i + 3;
  }
  return std::string::npos;
}

int remaining_ms(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::max<long long>(left, 0));
}

std::string status_line(int status) {
  return "HTTP/1.1 " + std::to_string(status) + " " + status_reason(status) + "\r\n";
}

}  // namespace

HttpError::HttpError(int status, const std::string& message, std::string param, std::string type, std::string code)
    : std::runtime_error(message), status_(status), param_(std::move(param)), type_(std::move(type)),
      code_(std::move(code)) {
  if (type_.empty()) type_ = status >= 500 ? "server_error" : "invalid_request_error";
}

std::string error_body(const HttpError& e) {
  nlohmann::json err = {{"message", e.what()}, {"type", e.type()}, {"param", nullptr}, {"code", nullptr}};
  if (!e.param().empty()) err["param"] = e.param();
  if (!e.code().empty()) err["code"] = e.code();
  return nlohmann::json{{"error", err}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

const char* status_reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
  }
}

const std::string* Request::header(std::string_view name) const {
  const std::string key = lower(name);
  for (const auto& [k, v] : headers) {
    if (k == key) return &v;
  }
  return nullptr;
}

// ---- Connection: one client socket, its read buffer and its keep-alive state -----------------------

class Connection {
 public:
  Connection(int fd, HttpServer& server) : fd_(fd), server_(server) {}
  void serve();

  bool send_all(std::string_view data);
  bool peer_gone();
  bool broken() const { return broken_; }
  bool stopping() const { return server_.stopping(); }
  bool keep_alive() const { return keep_alive_; }
  void set_close() { keep_alive_ = false; }
  bool http10() const { return http10_; }

 private:
  enum class ReadStatus { kData, kEof, kTimeout, kStopping };
  ReadStatus read_some(Clock::time_point deadline);
  bool read_request(Request& request);
  void parse_head(std::string_view head, Request& request);
  void read_body(Request& request, Clock::time_point deadline);
  void reject(const HttpError& e);
  void lingering_close();

  int fd_;
  HttpServer& server_;
  std::string buffer_;  // received bytes not yet consumed (the start of the next request)
  bool keep_alive_ = true;
  bool http10_ = false;
  bool broken_ = false;
};

Connection::ReadStatus Connection::read_some(Clock::time_point deadline) {
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {server_.wake_fd(), POLLIN, 0}};
    const int n = ::poll(fds, 2, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (server_.stopping()) return ReadStatus::kStopping;
    if (n == 0) return ReadStatus::kTimeout;
    if (n < 0) return ReadStatus::kEof;
    char chunk[16384];
    const ssize_t got = ::recv(fd_, chunk, sizeof chunk, 0);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (got <= 0) return ReadStatus::kEof;
    buffer_.append(chunk, static_cast<std::size_t>(got));
    return ReadStatus::kData;
  }
}

// Reads one request into `request`; false when the connection should just close (EOF, idle timeout,
// stop). Protocol errors throw HttpError.
bool Connection::read_request(Request& request) {
  const auto& opt = server_.options();
  // Blank lines before a request line are ignored (RFC 9112 section 2.2).
  const std::size_t first = buffer_.find_first_not_of("\r\n");
  buffer_.erase(0, first == std::string::npos ? buffer_.size() : first);
  auto deadline = Clock::now() + std::chrono::milliseconds(opt.idle_timeout_ms);
  bool started = !buffer_.empty();
  if (started) deadline = Clock::now() + std::chrono::milliseconds(opt.read_timeout_ms);
  std::size_t head_end;
  while ((head_end = find_header_end(buffer_)) == std::string::npos) {
    if (buffer_.size() > opt.max_header_bytes) {
      throw HttpError(431, "request line and headers exceed " + std::to_string(opt.max_header_bytes) + " bytes");
    }
    const ReadStatus st = read_some(deadline);
    if (st == ReadStatus::kTimeout && started) throw HttpError(408, "timed out waiting for the request headers");
    if (st != ReadStatus::kData) return false;
    if (!started) {
      const std::size_t skip = buffer_.find_first_not_of("\r\n");
      buffer_.erase(0, skip == std::string::npos ? buffer_.size() : skip);
      if (!buffer_.empty()) {
        started = true;
        deadline = Clock::now() + std::chrono::milliseconds(opt.read_timeout_ms);
      }
    }
  }
  if (head_end > opt.max_header_bytes) {
    throw HttpError(431, "request line and headers exceed " + std::to_string(opt.max_header_bytes) + " bytes");
  }
  parse_head(std::string_view(buffer_).substr(0, head_end), request);
  buffer_.erase(0, head_end);
  read_body(request, deadline);
  return true;
}

void Connection::parse_head(std::string_view head, Request& request) {
  std::size_t eol = head.find('\n');
  const std::string_view line = trim(head.substr(0, eol));
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    throw HttpError(400, "malformed request line '" + std::string(line.substr(0, 200)) + "'");
  }
  request.method = std::string(line.substr(0, sp1));
  request.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  request.version = std::string(line.substr(sp2 + 1));
  if (!is_token(request.method)) throw HttpError(400, "malformed method '" + request.method + "'");
  if (request.target.empty() || request.target[0] != '/') {
    throw HttpError(400, "request target must be an absolute path, got '" + request.target.substr(0, 200) + "'");
  }
  if (request.version.size() != 8 || request.version.compare(0, 5, "HTTP/") != 0 ||
      !std::isdigit(static_cast<unsigned char>(request.version[5])) || request.version[6] != '.' ||
      !std::isdigit(static_cast<unsigned char>(request.version[7]))) {
    throw HttpError(400, "malformed HTTP version '" + request.version.substr(0, 20) + "'");
  }
  if (request.version != "HTTP/1.1" && request.version != "HTTP/1.0") {
    throw HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported, got " + request.version);
  }
  const std::size_t q = request.target.find('?');
  request.path = request.target.substr(0, q);
  request.query = q == std::string::npos ? "" : request.target.substr(q + 1);

  while (eol != std::string_view::npos) {
    const std::size_t start = eol + 1;
    eol = head.find('\n', start);
    const std::string_view raw = head.substr(start, eol == std::string_view::npos ? eol : eol - start);
    if (trim(raw).empty()) break;
    if (raw[0] == ' ' || raw[0] == '\t') throw HttpError(400, "obsolete header line folding is not accepted");
    const std::size_t colon = raw.find(':');
    if (colon == std::string_view::npos || !is_token(raw.substr(0, colon))) {
      throw HttpError(400, "malformed header line '" + std::string(raw.substr(0, 200)) + "'");
    }
    request.headers.emplace_back(lower(raw.substr(0, colon)), std::string(trim(raw.substr(colon + 1))));
  }
  http10_ = request.version == "HTTP/1.0";
  const std::string* conn = request.header("connection");
  keep_alive_ = http10_ ? lists_token(conn, "keep-alive") : !lists_token(conn, "close");
}

// Only Content-Length bodies are read. A Transfer-Encoding request gets 411 Length Required rather
// than 501: chunked is a coding we recognise, we just require the client to send the length (every
// OpenAI client does for JSON), and 411 tells it exactly that.
void Connection::read_body(Request& request, Clock::time_point deadline) {
  if (request.header("transfer-encoding")) {
    keep_alive_ = false;  // the body's framing is unknown, so nothing after it can be parsed
    throw HttpError(411, "Transfer-Encoding request bodies are not supported; send Content-Length");
  }
  std::optional<std::size_t> length;
  for (const auto& [name, value] : request.headers) {
    if (name != "content-length") continue;
    std::size_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec != std::errc() || end != value.data() + value.size() || value.empty() || (length && *length != n)) {
      keep_alive_ = false;
      throw HttpError(400, "invalid Content-Length '" + value.substr(0, 40) + "'");
    }
    length = n;
  }
  const std::size_t max_body = server_.options().max_body_bytes;
  if (length && *length > max_body) {
    keep_alive_ = false;
    throw HttpError(413, "request body of " + std::to_string(*length) + " bytes exceeds the limit of " +
                             std::to_string(max_body) + " bytes");
  }
  const std::size_t need = length.value_or(0);
  // curl sends Expect: 100-continue for bodies over 1 KiB and otherwise waits a second before sending.
  if (need > buffer_.size() && lists_token(request.header("expect"), "100-continue") && !http10_ &&
      !send_all("HTTP/1.1 100 Continue\r\n\r\n")) {
    throw HttpError(400, "connection lost before the request body");
  }
  while (buffer_.size() < need) {
    const ReadStatus st = read_some(deadline);
    if (st == ReadStatus::kTimeout) {
      keep_alive_ = false;
      throw HttpError(408, "timed out reading the request body (" + std::to_string(buffer_.size()) + " of " +
                               std::to_string(need) + " bytes)");
    }
    if (st != ReadStatus::kData) throw HttpError(400, "connection closed inside the request body");
  }
  request.body = buffer_.substr(0, need);
  buffer_.erase(0, need);
}

bool Connection::send_all(std::string_view data) {
  if (broken_) return false;
  const auto deadline = Clock::now() + std::chrono::milliseconds(server_.options().write_timeout_ms);
  while (!data.empty()) {
    // MSG_NOSIGNAL: a vanished client yields EPIPE here instead of killing the process with SIGPIPE.
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd fds[2] = {{fd_, POLLOUT, 0}, {server_.wake_fd(), POLLIN, 0}};
      const int ready = ::poll(fds, 2, remaining_ms(deadline));
      if (ready > 0 && !(fds[1].revents & POLLIN)) continue;
      if (ready < 0 && errno == EINTR) continue;
    }
    broken_ = true;
    return false;
  }
  return true;
}

// Without blocking: has the peer closed or reset? Pending bytes (a pipelined request) do not count.
bool Connection::peer_gone() {
  if (broken_) return true;
  pollfd p = {fd_, POLLIN | POLLRDHUP, 0};
  if (::poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLERR | POLLHUP | POLLRDHUP)) {
    broken_ = true;
    return true;
  }
  char c;
  const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) broken_ = true;
  return broken_;
}

void Connection::reject(const HttpError& e) {
  set_close();
  Response response(*this);
  response.send_error(e);
  lingering_close();
}

// After an error reply the client may still be sending (e.g. an oversized body); closing with unread
// bytes would reset the connection and could destroy our reply in flight, so drain for a moment first.
void Connection::lingering_close() {
  ::shutdown(fd_, SHUT_WR);
  const auto deadline = Clock::now() + std::chrono::milliseconds(std::min(server_.options().read_timeout_ms, 1000));
  buffer_.clear();
  while (read_some(deadline) == ReadStatus::kData) buffer_.clear();
}

void Connection::serve() {
  while (!server_.stopping()) {
    Request request;
    const auto t0 = Clock::now();
    try {
      if (!read_request(request)) return;
    } catch (const HttpError& e) {
      reject(e);
      if (server_.options().access_log) server_.options().access_log(request, e.status(), 0.0);
      return;
    }
    Response response(*this);
    server_.dispatch(request, response);
    if (server_.options().access_log) {
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      server_.options().access_log(request, broken_ ? 0 : response.status(), ms);
    }
    if (broken_ || !keep_alive_) return;
  }
}

// ---- Response ---------------------------------------------------------------------------------------

bool Response::send(int status, std::string_view content_type, std::string_view body, const Headers& extra) {
  LLOCO_CHECK(state_ == State::kNone, "http.Response.send", "a response was already started (status ", status_,
              "), cannot send status ", status);
  state_ = State::kDone;
  status_ = status;
  std::string head = status_line(status);
  head += "Content-Type: " + std::string(content_type) + "\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  head += conn_.keep_alive() ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& [k, v] : extra) head += k + ": " + v + "\r\n";
  head += "\r\n";
  // One buffer, one send: small JSON replies leave in a single segment.
  head.append(body);
  return conn_.send_all(head);
}

bool Response::send_error(const HttpError& e) {
  if (e.status() >= 500 || e.status() == 408 || e.status() == 411 || e.status() == 413) conn_.set_close();
  return send(e.status(), "application/json", error_body(e), e.headers);
}

bool Response::begin_stream(const Headers& extra) {
  LLOCO_CHECK(state_ == State::kNone, "http.Response.begin_stream", "a response was already started (status ",
              status_, ")");
  state_ = State::kStreaming;
  status_ = 200;
  if (conn_.http10()) conn_.set_close();  // HTTP/1.0 has no chunked coding: the body ends at close
  std::string head = status_line(200);
  head += "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n";
  if (!conn_.http10()) head += "Transfer-Encoding: chunked\r\n";
  head += conn_.keep_alive() ? "Connection: keep-alive\r\n" : "Connection: close\r\n";
  for (const auto& [k, v] : extra) head += k + ": " + v + "\r\n";
  head += "\r\n";
  return conn_.send_all(head);
}

bool Response::write_chunk(std::string_view payload) {
  if (conn_.http10()) return conn_.send_all(payload);
  char size[20];
  const int len = std::snprintf(size, sizeof size, "%zx\r\n", payload.size());
  std::string chunk(size, static_cast<std::size_t>(len));
  chunk.append(payload);
  chunk += "\r\n";
  return conn_.send_all(chunk);
}

bool Response::write_event(std::string_view data) {
  LLOCO_CHECK(state_ == State::kStreaming, "http.Response.write_event", "begin_stream() was not called");
  if (client_gone()) return false;
  std::string event;
  std::size_t start = 0;
  for (;;) {
    const std::size_t nl = data.find('\n', start);
    event += "data: ";
    event.append(data.substr(start, nl == std::string_view::npos ? nl : nl - start));
    event += '\n';
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  event += '\n';
  return write_chunk(event);
}

bool Response::end_stream() {
  LLOCO_CHECK(state_ == State::kStreaming, "http.Response.end_stream", "begin_stream() was not called");
  state_ = State::kDone;
  if (conn_.http10()) return !conn_.broken();
  return conn_.send_all("0\r\n\r\n");
}

bool Response::client_gone() { return conn_.stopping() || conn_.peer_gone(); }

// ---- HttpServer --------------------------------------------------------------------------------------

HttpServer::HttpServer(HttpServerOptions options) : options_(std::move(options)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(const std::string& method, const std::string& path, Handler handler) {
  LLOCO_CHECK(listen_fd_ < 0, "http.route", "register ", method, " ", path, " before start()");
  routes_[path][method] = std::move(handler);
}

void HttpServer::start() {
  LLOCO_CHECK(listen_fd_ < 0 && !stopping_, "http.start", "the server was already started");
  LLOCO_CHECK(::pipe2(wake_pipe_, O_CLOEXEC | O_NONBLOCK) == 0, "http.start", "pipe2: ", std::strerror(errno));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(options_.port);
  const int rc = ::getaddrinfo(options_.host.empty() ? nullptr : options_.host.c_str(), port.c_str(), &hints, &found);
  LLOCO_CHECK(rc == 0, "http.start", "cannot resolve ", options_.host, ":", port, ": ", ::gai_strerror(rc));
  std::string last_error = "no addresses";
  for (addrinfo* ai = found; ai && listen_fd_ < 0; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, options_.backlog) == 0) {
      listen_fd_ = fd;
    } else {
      last_error = std::strerror(errno);
      ::close(fd);
    }
  }
  ::freeaddrinfo(found);
  LLOCO_CHECK(listen_fd_ >= 0, "http.start", "cannot listen on ", options_.host, ":", port, ": ", last_error);
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  bound_port_ = ntohs(addr.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port
                                                 : reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  accept_thread_ = std::thread([this] { accept_loop(); });
}

void HttpServer::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_pipe_[0], POLLIN, 0}};
    const int n = ::poll(fds, 2, 1000);  // the timeout only paces reaping of finished connections
    if (stopping_) return;
    reap_connections(false);
    if (n <= 0 || !(fds[0].revents & POLLIN)) continue;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // EMFILE and friends: back off instead of spinning on a listen socket that stays readable.
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    if (active_.load() >= options_.max_connections) {
      const std::string busy = status_line(503) +
                               "Content-Type: application/json\r\nConnection: close\r\nRetry-After: 1\r\n"
                               "Content-Length: ";
      const std::string body = error_body(HttpError(503, "too many open connections"));
      const std::string reply = busy + std::to_string(body.size()) + "\r\n\r\n" + body;
      ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      ::close(fd);
      continue;
    }
    spawn_connection(fd);
  }
}

void HttpServer::spawn_connection(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // SSE events must not wait for Nagle
  auto conn = std::make_unique<ConnThread>();
  ConnThread* raw = conn.get();
  ++active_;
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    conns_.push_back(std::move(conn));
  }
  raw->thread = std::thread([this, fd, raw] {
    {
      Connection connection(fd, *this);
      connection.serve();
    }
    ::close(fd);
    --active_;
    raw->done = true;
  });
}

void HttpServer::reap_connections(bool all) {
  std::list<std::unique_ptr<ConnThread>> finished;
  {
    std::lock_guard<std::mutex> lock(conns_mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (all || (*it)->done) {
        finished.push_back(std::move(*it));
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& c : finished) {
    if (c->thread.joinable()) c->thread.join();
  }
}

void HttpServer::stop() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  stopping_ = true;
  if (wake_pipe_[1] >= 0) {
    // Never drained: the pipe stays readable, so every poll() in every thread wakes from now on.
    [[maybe_unused]] const ssize_t n = ::write(wake_pipe_[1], "x", 1);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  reap_connections(true);
  for (int* fd : {&listen_fd_, &wake_pipe_[0], &wake_pipe_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
}

int run_until_signal(HttpServer& server, const std::function<void(int port)>& on_listening) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  LLOCO_CHECK(::pthread_sigmask(SIG_BLOCK, &set, nullptr) == 0, "http.run_until_signal", "pthread_sigmask failed");
  server.start();
  if (on_listening) on_listening(server.port());
  int sig = 0;
  while (::sigwait(&set, &sig) != 0) {
  }
  server.stop();
  return sig;
}

void HttpServer::dispatch(const Request& request, Response& response) const {
  auto fail = [&](const HttpError& e) {
    if (!response.started()) {
      response.send_error(e);
    } else if (!response.finished()) {
      // Headers are gone already: report the error as a last event, then end the stream.
      response.write_event(error_body(e));
      response.end_stream();
    }
  };
  const auto path_it = routes_.find(request.path);
  if (path_it == routes_.end()) return fail(HttpError(404, "no route for " + request.path, "", "", "unknown_url"));
  const auto handler_it = path_it->second.find(request.method);
  if (handler_it == path_it->second.end()) {
    std::string allow;
    for (const auto& [method, h] : path_it->second) allow += (allow.empty() ? "" : ", ") + method;
    HttpError e(405, request.method + " is not allowed on " + request.path + " (allowed: " + allow + ")");
    e.headers.emplace_back("Allow", allow);
    return fail(e);
  }
  try {
    handler_it->second(request, response);
  } catch (const HttpError& e) {
    fail(e);
  } catch (const std::invalid_argument& e) {
    fail(HttpError(400, e.what()));
  } catch (const std::exception& e) {
    fail(HttpError(500, e.what()));
  } catch (...) {
    fail(HttpError(500, "unknown exception in the handler"));
  }
  if (!response.started()) {
    fail(HttpError(500, "the handler for " + request.method + " " + request.path + " sent no response"));
  } else if (!response.finished()) {
    response.end_stream();
  }
}

}  // namespace lloco::http
