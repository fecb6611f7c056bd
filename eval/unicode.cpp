// Python str semantics on UTF-8; see unicode.h for what is matched and what is not.
#include "eval/unicode.h"

#include <algorithm>
#include <cstdint>
#include <iterator>

namespace lloco::eval::text {
namespace detail {

struct CodeRange {
  char32_t first, last;
};
struct LowerRun {
  char32_t first, last;
  int32_t stride, delta;
};

#include "eval/unicode_tables.inc"

template <size_t N>
bool in_ranges(const CodeRange (&table)[N], char32_t c) {
  auto it = std::lower_bound(std::begin(table), std::end(table), c,
                             [](const CodeRange& r, char32_t v) { return r.last < v; });
  return it != std::end(table) && it->first <= c;
}

char32_t lower_simple(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  auto it = std::lower_bound(std::begin(kLowerRuns), std::end(kLowerRuns), c,
                             [](const LowerRun& r, char32_t v) { return r.last < v; });
  if (it == std::end(kLowerRuns) || it->first > c) return c;
  if ((c - it->first) % static_cast<char32_t>(it->stride) != 0) return c;
  return static_cast<char32_t>(static_cast<int64_t>(c) + it->delta);
}

bool is_case_ignorable(char32_t c) { return in_ranges(kCaseIgnorableRanges, c); }
bool is_cased(char32_t c) { return in_ranges(kCasedRanges, c); }

// CPython's final-sigma context: cased (case-ignorable)* SIGMA !((case-ignorable)* cased).
bool is_final_sigma(std::u32string_view s, size_t i) {
  size_t j = i;
  while (j > 0 && is_case_ignorable(s[j - 1])) --j;
  if (j == 0 || !is_cased(s[j - 1])) return false;
  size_t k = i + 1;
  while (k < s.size() && is_case_ignorable(s[k])) ++k;
  return k == s.size() || !is_cased(s[k]);
}

}  // namespace detail

namespace {
constexpr char32_t kEscapeBase = 0xDC00;  // surrogateescape: invalid byte b -> U+DC00+b

bool is_escaped_byte(char32_t c) { return c >= 0xDC80 && c <= 0xDCFF; }
}  // namespace

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
      out.push_back(b0);
      ++i;
      continue;
    }
    size_t len = 0;
    char32_t cp = 0, min = 0;
    if (b0 >= 0xC2 && b0 <= 0xDF) len = 2, cp = b0 & 0x1F, min = 0x80;
    else if (b0 >= 0xE0 && b0 <= 0xEF) len = 3, cp = b0 & 0x0F, min = 0x800;
    else if (b0 >= 0xF0 && b0 <= 0xF4) len = 4, cp = b0 & 0x07, min = 0x10000;
    bool ok = len != 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (b & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid UTF-8, as for Python.
    if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (ok) {
      out.push_back(cp);
      i += len;
    } else {
      out.push_back(kEscapeBase + b0);
      ++i;
    }
  }
  return out;
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (is_escaped_byte(c)) {
      out.push_back(static_cast<char>(c - kEscapeBase));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

bool is_space(char32_t c) {
  if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
  return detail::in_ranges(detail::kSpaceRanges, c);
}

bool is_word(char32_t c) {
  if (c < 0x80)
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  return detail::in_ranges(detail::kWordRanges, c);
}

std::u32string lower(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    if (c == 0x130) {  // LATIN CAPITAL LETTER I WITH DOT ABOVE lowercases to two code points
      out.push_back(U'i');
      out.push_back(0x307);
    } else if (c == 0x3A3) {
      out.push_back(detail::is_final_sigma(s, i) ? 0x3C2 : 0x3C3);
    } else {
      out.push_back(detail::lower_simple(c));
    }
  }
  return out;
}

std::string lower(std::string_view s) { return encode_utf8(lower(decode_utf8(s))); }

std::vector<std::u32string> split_ws(std::u32string_view s) {
  std::vector<std::u32string> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.emplace_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

std::vector<std::string> split_ws(std::string_view s) {
  std::vector<std::string> out;
  for (const auto& w : split_ws(decode_utf8(s))) out.push_back(encode_utf8(w));
  return out;
}

size_t count_ws_words(std::string_view s) {
  // Pure-ASCII fast path: documents are long and this runs over every one in `data stats`.
  size_t count = 0;
  bool in_word = false;
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b >= 0x80) break;
    const bool space = (b >= 0x09 && b <= 0x0D) || (b >= 0x1C && b <= 0x20);
    if (!space && !in_word) ++count;
    in_word = !space;
    ++i;
  }
  if (i == s.size()) return count;
  // Re-count the whole string with full decoding once non-ASCII text shows up.
  count = 0;
  in_word = false;
  for (char32_t c : decode_utf8(s)) {
    const bool space = is_space(c);
    if (!space && !in_word) ++count;
    in_word = !space;
  }
  return count;
}

std::string strip_ws(std::string_view s) {
  const std::u32string u = decode_utf8(s);
  size_t b = 0, e = u.size();
  while (b < e && is_space(u[b])) ++b;
  while (e > b && is_space(u[e - 1])) --e;
  return encode_utf8(std::u32string_view(u).substr(b, e - b));
}

std::string lstrip_chars(std::string_view s, char c) {
  size_t b = 0;
  while (b < s.size() && s[b] == c) ++b;
  return std::string(s.substr(b));
}

std::vector<std::string> splitlines(std::string_view s) {
  const std::u32string u = decode_utf8(s);
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  auto is_break = [](char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
           c == 0x85 || c == 0x2028 || c == 0x2029;
  };
  while (i < u.size()) {
    if (is_break(u[i])) {
      out.push_back(encode_utf8(std::u32string_view(u).substr(start, i - start)));
      if (u[i] == '\r' && i + 1 < u.size() && u[i + 1] == '\n') ++i;
      start = ++i;
    } else {
      ++i;
    }
  }
  if (start < u.size()) out.push_back(encode_utf8(std::u32string_view(u).substr(start)));
  return out;
}

const char* unicode_version() { return detail::kUnicodeVersion; }

}  // namespace lloco::eval::text
