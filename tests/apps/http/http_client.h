// A raw HTTP/1.1 test client: sends exact bytes, reads one response (Content-Length, chunked or
// until close), and splits SSE bodies into events. Every socket has a timeout so no test can hang.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace lloco::http::test {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-cased names
  std::string body;                            // de-chunked
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class Client {
 public:
  explicit Client(int port, int timeout_ms = 5000) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("connect failed");
    }
  }
  ~Client() { close(); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // Sends all bytes; false when the server has closed or reset the connection.
  bool send(const std::string& data) {
    std::size_t off = 0;
    while (off < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Reads one full response; throws on timeout or a connection closed before the response ended.
  RawResponse read_response() {
    RawResponse r;
    const std::string head = read_until("\r\n\r\n");
    std::size_t eol = head.find("\r\n");
    const std::string status_line = head.substr(0, eol);
    if (status_line.rfind("HTTP/1.1 ", 0) != 0) throw std::runtime_error("bad status line: " + status_line);
    r.status = std::stoi(status_line.substr(9, 3));
    while (eol + 2 < head.size()) {
      const std::size_t next = head.find("\r\n", eol + 2);
      const std::string line = head.substr(eol + 2, next - eol - 2);
      eol = next;
      if (line.empty()) break;
      const std::size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    if (r.header("transfer-encoding") == "chunked") {
      r.body = read_chunked();
    } else if (!r.header("content-length").empty()) {
      r.body = read_exact(std::stoul(r.header("content-length")));
    } else {
      r.body = read_to_eof();
    }
    return r;
  }

  // Reads just the response head (for tests that drop the connection mid-body).
  std::string read_head() { return read_until("\r\n\r\n"); }

  // True when the server closed the connection (recv returns 0) within the timeout.
  bool closed_by_server() {
    if (!buf_.empty()) return false;
    char c;
    const ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0;
  }

 private:
  void fill() {
    char chunk[8192];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0) throw std::runtime_error("recv timed out or failed");
    if (n == 0) throw std::runtime_error("connection closed by the server");
    buf_.append(chunk, static_cast<std::size_t>(n));
  }
  std::string read_until(const std::string& delim) {
    std::size_t pos;
    while ((pos = buf_.find(delim)) == std::string::npos) fill();
    std::string out = buf_.substr(0, pos + delim.size());
    buf_.erase(0, pos + delim.size());
    return out;
  }
  std::string read_exact(std::size_t n) {
    while (buf_.size() < n) fill();
    std::string out = buf_.substr(0, n);
    buf_.erase(0, n);
    return out;
  }
  std::string read_chunked() {
    std::string body;
    for (;;) {
      const std::string size_line = read_until("\r\n");
      const std::size_t size = std::stoul(size_line, nullptr, 16);
      body += read_exact(size);
      if (read_exact(2) != "\r\n") throw std::runtime_error("chunk not followed by CRLF");
      if (size == 0) return body;
    }
  }
  std::string read_to_eof() {
    for (;;) {
      char chunk[8192];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0) throw std::runtime_error("recv timed out before EOF");
      if (n == 0) break;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
    std::string out;
    out.swap(buf_);
    return out;
  }

  int fd_ = -1;
  std::string buf_;
};

// The `data:` payloads of an SSE body, in order; throws on anything but `data:` lines + blank lines.
inline std::vector<std::string> sse_events(const std::string& body) {
  std::vector<std::string> events;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const std::size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) throw std::runtime_error("unterminated SSE event: " + body.substr(pos));
    const std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) != 0) throw std::runtime_error("SSE event without data: " + event);
    events.push_back(event.substr(6));
    pos = end + 2;
  }
  return events;
}

inline std::string post(const std::string& path, const std::string& body, const std::string& extra_headers = "") {
  return "POST " + path + " HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

inline std::string get(const std::string& path, const std::string& extra_headers = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: test\r\n" + extra_headers + "\r\n";
}

}  // namespace lloco::http::test
