// Errors: every API/shape failure throws lloco::Error("[op] message with both values").
// LLOCO_CHECK* macros build that message; assert() is reserved for internal invariants.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace lloco {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace lloco

// LLOCO_CHECK(cond, "op", "message parts", ...)
#define LLOCO_CHECK(cond, op, ...)                                                           \
  do {                                                                                       \
    if (!(cond)) throw ::lloco::Error(::lloco::detail::concat("[", op, "] ", __VA_ARGS__)); \
  } while (0)

// LLOCO_CHECK_EQ(a, b, "op", "what") -> "[op] what: expected a == b, got 3 vs 4"
#define LLOCO_CHECK_EQ(a, b, op, what)                                                          \
  do {                                                                                          \
    const auto& lloco_a_ = (a);                                                                 \
    const auto& lloco_b_ = (b);                                                                 \
    if (!(lloco_a_ == lloco_b_))                                                                \
      throw ::lloco::Error(::lloco::detail::concat("[", op, "] ", what, ": expected " #a " == " \
                                                   #b ", got ",                                 \
                                                   lloco_a_, " vs ", lloco_b_));                \
  } while (0)

#define LLOCO_FAIL(op, ...) throw ::lloco::Error(::lloco::detail::concat("[", op, "] ", __VA_ARGS__))
