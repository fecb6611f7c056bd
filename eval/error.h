// Errors raised by the eval library. Messages name the file, line and field involved so that a
// bad record in a 10 MB dataset can be found without a debugger.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <string>

namespace lloco::eval {

class EvalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "path:line: message" (line 0 = no line, e.g. a file that cannot be opened).
inline std::string at_line(const std::string& path, size_t line, const std::string& message) {
  if (line == 0) return path + ": " + message;
  return path + ":" + std::to_string(line) + ": " + message;
}

[[noreturn]] inline void fail_at(const std::string& path, size_t line, const std::string& message) {
  throw EvalError(at_line(path, line, message));
}

}  // namespace lloco::eval
