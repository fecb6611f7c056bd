// Streaming JSON/JSONL input, field accessors and the atomic writer; see io.h.
#include "eval/io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "eval/error.h"

namespace lloco::eval {
namespace {

constexpr size_t kKeptSkipReasons = 5;

std::ifstream open_or_throw(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_at(path, 0, std::string("cannot open: ") + std::strerror(errno));
  return in;
}

bool is_blank(const std::string& s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return false;
  return true;
}

size_t line_of_byte(const std::string& path, size_t byte) {
  std::ifstream in(path, std::ios::binary);
  size_t line = 1, pos = 0;
  char c;
  while (pos + 1 < byte && in.get(c)) {
    if (c == '\n') ++line;
    ++pos;
  }
  return line;
}

}  // namespace

void for_each_jsonl(const std::string& path, bool skip_bad, DatasetFile& out,
                    const std::function<void(const json&, size_t)>& fn) {
  std::ifstream in = open_or_throw(path);
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (is_blank(line)) continue;
    std::string reason;
    try {
      const json record = json::parse(line);
      fn(record, line_no);
      continue;
    } catch (const json::parse_error& e) {
      reason = std::string("invalid JSON: ") + e.what();
    } catch (const json::exception& e) {
      reason = e.what();
    } catch (const EvalError& e) {
      reason = e.what();
    }
    if (!skip_bad) fail_at(path, line_no, reason);
    ++out.skipped;
    if (out.skip_reasons.size() < kKeptSkipReasons) out.skip_reasons.push_back(at_line(path, line_no, reason));
  }
  if (in.bad()) fail_at(path, line_no, "read error");
}

void for_each_json_record(const std::string& path,
                          const std::function<void(const json&, const std::string&, size_t)>& on_record) {
  std::ifstream in = open_or_throw(path);
  std::string key;
  size_t index = 0;
  json::parser_callback_t cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth != 1) return true;
    if (event == json::parse_event_t::key) {
      key = parsed.get<std::string>();
      return true;
    }
    if (event == json::parse_event_t::object_end || event == json::parse_event_t::array_end ||
        event == json::parse_event_t::value) {
      on_record(parsed, key, index++);
      return false;  // discard: keep memory bounded by one record
    }
    return true;
  };
  try {
    const json rest = json::parse(in, cb);  // every record was discarded; only the shell remains
    (void)rest;
  } catch (const json::parse_error& e) {
    fail_at(path, line_of_byte(path, e.byte), std::string("invalid JSON: ") + e.what());
  }
}

std::string type_name(const json& v) { return v.type_name(); }

const json& field(const json& obj, const char* name) {
  if (!obj.is_object()) throw EvalError(std::string("expected a JSON object holding '") + name + "', got " + type_name(obj));
  auto it = obj.find(name);
  if (it == obj.end()) throw EvalError(std::string("missing field '") + name + "'");
  return *it;
}

std::string get_string(const json& obj, const char* name) {
  const json& v = field(obj, name);
  if (!v.is_string()) throw EvalError(std::string("field '") + name + "': expected string, got " + type_name(v));
  return v.get<std::string>();
}

const json& get_array(const json& obj, const char* name) {
  const json& v = field(obj, name);
  if (!v.is_array()) throw EvalError(std::string("field '") + name + "': expected array, got " + type_name(v));
  return v;
}

const json& get_object(const json& obj, const char* name) {
  const json& v = field(obj, name);
  if (!v.is_object()) throw EvalError(std::string("field '") + name + "': expected object, got " + type_name(v));
  return v;
}

std::vector<std::string> get_string_array(const json& obj, const char* name) {
  const json& arr = get_array(obj, name);
  std::vector<std::string> out;
  for (size_t i = 0; i < arr.size(); ++i) {
    if (!arr[i].is_string())
      throw EvalError(std::string("field '") + name + "[" + std::to_string(i) + "]': expected string, got " +
                      type_name(arr[i]));
    out.push_back(arr[i].get<std::string>());
  }
  return out;
}

std::string file_stem(const std::string& path) { return std::filesystem::path(path).stem().string(); }

std::string first_nonblank_line(const std::string& path) {
  std::ifstream in = open_or_throw(path);
  std::string line;
  while (std::getline(in, line))
    if (!is_blank(line)) return line;
  return {};
}

char first_nonspace_char(const std::string& path) {
  std::ifstream in = open_or_throw(path);
  char c;
  while (in.get(c))
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') return c;
  return '\0';
}

void write_file_atomic(const std::string& path, const std::string& content) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail_at(tmp, 0, std::string("cannot create: ") + std::strerror(errno));
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string err = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      fail_at(tmp, 0, "write failed: " + err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    fail_at(tmp, 0, "fsync/close failed: " + err);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    fail_at(path, 0, "rename failed: " + err);
  }
  // Persist the rename itself.
  const std::string dir = target.has_parent_path() ? target.parent_path().string() : ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace lloco::eval
