#include "models/wordpiece.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace lloco::models {
namespace wp_unicode {

struct ClassStart {
  char32_t first;
  uint8_t cls;
};
struct LowerRun {
  char32_t first, last;
  uint32_t stride;
  int32_t delta;
};
struct Decomposition {
  char32_t cp, first, second;  // second == 0: singleton
  uint8_t composes;            // 1: a primary composite, which NFC recomposes
};
struct CombiningRun {
  char32_t first, last;
  uint8_t ccc;
};

#include "models/wordpiece_tables.inc"

}  // namespace wp_unicode

namespace {

namespace fs = std::filesystem;
using namespace wp_unicode;

// Values as written by models/gen_wordpiece_tables.py.
enum class CharClass : uint8_t { kOther, kControl, kSpace, kPunct, kMark, kSplitSpace };

constexpr char32_t kReplacement = 0xFFFD;
constexpr char32_t kHangulS = 0xAC00, kHangulL = 0x1100, kHangulV = 0x1161, kHangulT = 0x11A7;
constexpr char32_t kHangulLCount = 19, kHangulVCount = 21, kHangulTCount = 28;
constexpr char32_t kHangulNCount = kHangulVCount * kHangulTCount, kHangulSCount = kHangulLCount * kHangulNCount;

CharClass char_class(char32_t c) {
  const auto it = std::upper_bound(std::begin(kClassStarts), std::end(kClassStarts), c,
                                   [](char32_t v, const ClassStart& s) { return v < s.first; });
  return static_cast<CharClass>(std::prev(it)->cls);
}

// Python's str.isspace(): the cleaned space classes plus the controls that clean_text drops anyway.
bool is_py_space(char32_t c) {
  const CharClass k = char_class(c);
  return k == CharClass::kSpace || k == CharClass::kSplitSpace || c == 0x0B || c == 0x0C ||
         (c >= 0x1C && c <= 0x1F) || c == 0x85;
}

// BasicTokenizer._is_chinese_char: the CJK Unified Ideograph blocks, not kana or Hangul.
bool is_cjk(char32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// str.lower() of one code point (U+0130 is the only one that lowers to two).
void append_lower(char32_t c, std::u32string& out) {
  if (c == 0x130) {
    out.push_back(U'i');
    out.push_back(0x307);
    return;
  }
  const auto it = std::upper_bound(std::begin(kLowerRuns), std::end(kLowerRuns), c,
                                   [](char32_t v, const LowerRun& r) { return v < r.first; });
  if (it != std::begin(kLowerRuns)) {
    const LowerRun& r = *std::prev(it);
    if (c <= r.last && (c - r.first) % r.stride == 0) {
      out.push_back(static_cast<char32_t>(static_cast<int64_t>(c) + r.delta));
      return;
    }
  }
  out.push_back(c);
}

uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;
  const auto it = std::upper_bound(std::begin(kCombiningRuns), std::end(kCombiningRuns), c,
                                   [](char32_t v, const CombiningRun& r) { return v < r.first; });
  if (it == std::begin(kCombiningRuns)) return 0;
  const CombiningRun& r = *std::prev(it);
  return c <= r.last ? r.ccc : 0;
}

const Decomposition* find_decomposition(char32_t c) {
  const auto it = std::lower_bound(std::begin(kDecompositions), std::end(kDecompositions), c,
                                   [](const Decomposition& d, char32_t v) { return d.cp < v; });
  return it != std::end(kDecompositions) && it->cp == c ? it : nullptr;
}

void append_decomposed(char32_t c, std::u32string& out) {
  if (c >= kHangulS && c < kHangulS + kHangulSCount) {
    const char32_t s = c - kHangulS;
    out.push_back(kHangulL + s / kHangulNCount);
    out.push_back(kHangulV + (s % kHangulNCount) / kHangulTCount);
    if (s % kHangulTCount != 0) out.push_back(kHangulT + s % kHangulTCount);
    return;
  }
  if (const Decomposition* d = find_decomposition(c)) {
    append_decomposed(d->first, out);
    if (d->second != 0) append_decomposed(d->second, out);
    return;
  }
  out.push_back(c);
}

// NFD: full canonical decomposition, then the canonical ordering of each run of non-starters.
std::u32string nfd(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (char32_t c : s) append_decomposed(c, out);
  std::vector<uint8_t> ccc(out.size());
  for (size_t i = 0; i < out.size(); ++i) ccc[i] = combining_class(out[i]);
  for (size_t i = 1; i < out.size(); ++i) {
    for (size_t j = i; j > 0 && ccc[j] != 0 && ccc[j - 1] > ccc[j]; --j) {
      std::swap(out[j], out[j - 1]);
      std::swap(ccc[j], ccc[j - 1]);
    }
  }
  return out;
}

// Primary composite of (starter, next), or 0.
char32_t compose_pair(char32_t a, char32_t b) {
  if (a >= kHangulL && a < kHangulL + kHangulLCount && b >= kHangulV && b < kHangulV + kHangulVCount)
    return kHangulS + ((a - kHangulL) * kHangulVCount + (b - kHangulV)) * kHangulTCount;
  if (a >= kHangulS && a < kHangulS + kHangulSCount && (a - kHangulS) % kHangulTCount == 0 && b > kHangulT &&
      b < kHangulT + kHangulTCount)
    return a + (b - kHangulT);
  static const std::unordered_map<uint64_t, char32_t> pairs = [] {
    std::unordered_map<uint64_t, char32_t> m;
    for (const Decomposition& d : kDecompositions)
      if (d.composes) m.emplace((static_cast<uint64_t>(d.first) << 32) | d.second, d.cp);
    return m;
  }();
  const auto it = pairs.find((static_cast<uint64_t>(a) << 32) | b);
  return it == pairs.end() ? 0 : it->second;
}

// NFC (unicodedata.normalize("NFC")): NFD, then each character joins the last starter unless a
// character of the same or higher combining class stands between them.
std::u32string nfc(std::u32string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x300; })) return std::u32string(s);
  const std::u32string d = nfd(s);
  std::u32string out;
  out.reserve(d.size());
  size_t starter = std::u32string::npos;
  int last_ccc = 0;
  for (char32_t c : d) {
    const int ccc = combining_class(c);
    if (starter != std::u32string::npos && (last_ccc < ccc || last_ccc == 0)) {
      if (const char32_t composite = compose_pair(out[starter], c)) {
        out[starter] = composite;
        continue;
      }
    }
    if (ccc == 0) starter = out.size();
    last_ccc = ccc;
    out.push_back(c);
  }
  return out;
}

std::u32string strip_accents(std::u32string_view s) {
  std::u32string out = nfd(s);
  std::erase_if(out, [](char32_t c) { return char_class(c) == CharClass::kMark; });
  return out;
}

// Length of the well-formed UTF-8 character at s[pos] (no overlongs, surrogates or values above
// U+10FFFF), or 0.
size_t utf8_char_len(std::string_view s, size_t pos) {
  const size_t n = s.size() - pos;
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[pos + k]); };
  const auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
    return k < n && b(k) >= lo && b(k) <= hi;
  };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (c >= 0xE1 && c <= 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

// An ill-formed byte becomes one U+FFFD and decoding resumes at the next byte, so a valid
// character is never swallowed (clean_text drops the U+FFFDs, so their count does not matter).
std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    const size_t len = utf8_char_len(s, pos);
    if (len == 0) {
      out.push_back(kReplacement);
      ++pos;
      continue;
    }
    char32_t c = static_cast<unsigned char>(s[pos]);
    if (len > 1) c &= (0x7F >> len);
    for (size_t k = 1; k < len; ++k) c = (c << 6) | (static_cast<unsigned char>(s[pos + k]) & 0x3F);
    out.push_back(c);
    pos += len;
  }
  return out;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
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

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(c, out);
  return out;
}

// Python's str.replace(from, to): every non-overlapping occurrence, left to right.
void replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

std::string read_token_field(const nlohmann::json& j, const char* key, const std::string& path) {
  const nlohmann::json& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  LLOCO_CHECK(v.is_object() && v.contains("content") && v["content"].is_string(), "WordPieceConfig", path,
              ": \"", key, "\" must be a string or an object with a string \"content\", got ", v.dump());
  return v["content"].get<std::string>();
}

}  // namespace

WordPieceConfig WordPieceConfig::from_json_file(const std::string& path) {
  constexpr const char* op = "WordPieceConfig";
  std::ifstream in(path);
  LLOCO_CHECK(in.good(), op, "cannot open ", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    LLOCO_CHECK(false, op, path, ": invalid JSON: ", e.what());
  }
  LLOCO_CHECK(j.is_object(), op, path, ": expected a JSON object, got ", j.type_name());
  WordPieceConfig c;
  const auto read_bool = [&](const char* key, bool& field) {
    if (!j.contains(key)) return;
    LLOCO_CHECK(j[key].is_boolean(), op, path, ": \"", key, "\" must be true or false, got ", j[key].dump());
    field = j[key].get<bool>();
  };
  read_bool("do_lower_case", c.do_lower_case);
  read_bool("tokenize_chinese_chars", c.tokenize_chinese_chars);
  if (j.contains("strip_accents") && !j["strip_accents"].is_null()) {
    bool strip = false;
    read_bool("strip_accents", strip);
    c.strip_accents = strip;
  }
  if (j.contains("model_max_length")) {
    const nlohmann::json& v = j["model_max_length"];
    LLOCO_CHECK(v.is_number() && v.get<double>() > 0, op, path,
                ": \"model_max_length\" must be a positive number, got ", v.dump());
    // transformers writes int(1e30) when the model sets no limit.
    c.model_max_length = v.get<double>() >= 1e18 ? 0 : v.get<int64_t>();
  }
  for (auto [key, field] : {std::pair{"unk_token", &c.unk_token}, std::pair{"sep_token", &c.sep_token},
                            std::pair{"pad_token", &c.pad_token}, std::pair{"cls_token", &c.cls_token},
                            std::pair{"mask_token", &c.mask_token}}) {
    if (j.contains(key)) *field = read_token_field(j, key, path);
  }
  return c;
}

WordPieceTokenizer WordPieceTokenizer::from_dir(const std::string& dir) {
  const fs::path config_path = fs::path(dir) / "tokenizer_config.json";
  WordPieceConfig config =
      fs::exists(config_path) ? WordPieceConfig::from_json_file(config_path.string()) : WordPieceConfig{};
  return WordPieceTokenizer((fs::path(dir) / "vocab.txt").string(), std::move(config));
}

WordPieceTokenizer::WordPieceTokenizer(const std::string& vocab_path, WordPieceConfig config)
    : path_(vocab_path), config_(std::move(config)) {
  constexpr const char* op = "WordPieceTokenizer";
  LLOCO_CHECK(config_.max_input_chars_per_word > 0, op, "max_input_chars_per_word must be positive, got ",
              config_.max_input_chars_per_word);
  std::ifstream in(vocab_path, std::ios::binary);
  LLOCO_CHECK(in.good(), op, "cannot open vocabulary ", vocab_path);
  // load_vocab: a line minus its trailing "\n" is the token, its 0-based line number the id.
  for (std::string line; std::getline(in, line);) {
    const size_t line_no = pieces_.size() + 1;
    LLOCO_CHECK(!line.empty(), op, vocab_path, ":", line_no, ": empty token");
    const auto [it, inserted] = ids_.emplace(line, static_cast<int32_t>(pieces_.size()));
    LLOCO_CHECK(inserted, op, vocab_path, ":", line_no, ": duplicate token \"", line, "\" (first on line ",
                it->second + 1, ")");
    max_piece_chars_ = std::max(max_piece_chars_, static_cast<int32_t>(decode_utf8(line).size()));
    pieces_.push_back(std::move(line));
  }
  LLOCO_CHECK(!pieces_.empty(), op, vocab_path, ": empty vocabulary");
  for (auto [field, token, id] : {std::tuple{"unk_token", &config_.unk_token, &unk_id_},
                                  std::tuple{"sep_token", &config_.sep_token, &sep_id_},
                                  std::tuple{"pad_token", &config_.pad_token, &pad_id_},
                                  std::tuple{"cls_token", &config_.cls_token, &cls_id_},
                                  std::tuple{"mask_token", &config_.mask_token, &mask_id_}}) {
    LLOCO_CHECK(!token->empty(), op, field, " is empty");
    *id = id_of(*token);
    LLOCO_CHECK(*id >= 0, op, field, " \"", *token, "\" is not in the vocabulary ", vocab_path);
    special_tokens_.push_back(decode_utf8(*token));
    special_ids_.push_back(*id);
  }
}

const std::string& WordPieceTokenizer::piece(int32_t id) const {
  LLOCO_CHECK(id >= 0 && id < vocab_size(), "WordPieceTokenizer::piece", "id ", id, " out of range [0, ",
              vocab_size(), ")");
  return pieces_[static_cast<size_t>(id)];
}

int32_t WordPieceTokenizer::id_of(std::string_view token) const {
  const auto it = ids_.find(std::string(token));
  return it == ids_.end() ? -1 : it->second;
}

bool WordPieceTokenizer::is_special(int32_t id) const {
  return id == unk_id_ || id == sep_id_ || id == pad_id_ || id == cls_id_ || id == mask_id_;
}

// WordpieceTokenizer.tokenize of one word: greedy longest match first, "##" after the first piece.
void WordPieceTokenizer::wordpiece(std::u32string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (word.size() > static_cast<size_t>(config_.max_input_chars_per_word)) {
    out.push_back(unk_id_);
    return;
  }
  std::string utf8;
  std::vector<size_t> offset{0};  // byte offset of each code point, plus the end
  for (char32_t c : word) {
    append_utf8(c, utf8);
    offset.push_back(utf8.size());
  }
  const size_t first_piece = out.size();
  std::string key;
  for (size_t start = 0; start < word.size();) {
    int32_t found = -1;
    size_t end = std::min(word.size(), start + static_cast<size_t>(max_piece_chars_));
    for (; end > start; --end) {
      key.assign(start > 0 ? "##" : "");
      key.append(utf8, offset[start], offset[end] - offset[start]);
      const auto it = ids_.find(key);
      if (it != ids_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {
      out.resize(first_piece);
      out.push_back(unk_id_);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

// BasicTokenizer.tokenize + WordPiece on text that holds no special-token match.
void WordPieceTokenizer::tokenize_piece(std::u32string_view text, std::vector<int32_t>& out) const {
  std::u32string cleaned;
  cleaned.reserve(text.size());
  for (char32_t c : text) {
    const CharClass k = char_class(c);
    if (c == 0 || c == kReplacement || k == CharClass::kControl) continue;
    if (k == CharClass::kSpace) {
      cleaned.push_back(U' ');
    } else if (config_.tokenize_chinese_chars && is_cjk(c)) {
      cleaned.append({U' ', c, U' '});
    } else {
      cleaned.push_back(c);
    }
  }
  const std::u32string normalized = nfc(cleaned);
  const bool strip = config_.strip_accents.value_or(config_.do_lower_case);
  std::u32string word;
  for (size_t pos = 0; pos < normalized.size();) {
    if (is_py_space(normalized[pos])) {
      ++pos;
      continue;
    }
    size_t end = pos;
    while (end < normalized.size() && !is_py_space(normalized[end])) ++end;
    const std::u32string_view raw(normalized.data() + pos, end - pos);
    pos = end;
    if (std::find(special_tokens_.begin(), special_tokens_.end(), raw) != special_tokens_.end()) {
      wordpiece(raw, out);  // never_split: no lowering, accent stripping or punctuation split
      continue;
    }
    word.clear();
    if (config_.do_lower_case) {
      for (char32_t c : raw) append_lower(c, word);
    } else {
      word.assign(raw);
    }
    if (strip) word = strip_accents(word);
    // Every punctuation character is a word of its own.
    size_t run = 0;
    for (size_t i = 0; i < word.size(); ++i) {
      if (char_class(word[i]) != CharClass::kPunct) continue;
      wordpiece(std::u32string_view(word).substr(run, i - run), out);
      wordpiece(std::u32string_view(word).substr(i, 1), out);
      run = i + 1;
    }
    wordpiece(std::u32string_view(word).substr(run), out);
  }
}

std::vector<int32_t> WordPieceTokenizer::tokenize_ids(std::string_view text) const {
  std::u32string s = decode_utf8(text);
  // Length of the special token spelled at s[pos], or 0 (none is a prefix of another's spelling
  // in BERT vocabularies; the longest wins otherwise, like transformers' trie).
  const auto special_at = [&](size_t pos) -> std::pair<size_t, int32_t> {
    std::pair<size_t, int32_t> best{0, -1};
    for (size_t k = 0; k < special_tokens_.size(); ++k) {
      const std::u32string& t = special_tokens_[k];
      if (t.size() > best.first && std::u32string_view(s).substr(pos, t.size()) == t)
        best = {t.size(), special_ids_[k]};
    }
    return best;
  };
  if (config_.do_lower_case) {
    // PreTrainedTokenizer.tokenize lowers each code point outside special tokens on its own.
    std::u32string lowered;
    lowered.reserve(s.size());
    for (size_t pos = 0; pos < s.size();) {
      if (const size_t len = special_at(pos).first) {
        lowered.append(s, pos, len);
        pos += len;
      } else {
        append_lower(s[pos++], lowered);
      }
    }
    s = std::move(lowered);
  }
  std::vector<int32_t> ids;
  size_t piece_start = 0;
  for (size_t pos = 0; pos < s.size();) {
    const auto [len, id] = special_at(pos);
    if (len == 0) {
      ++pos;
      continue;
    }
    tokenize_piece(std::u32string_view(s).substr(piece_start, pos - piece_start), ids);
    ids.push_back(id);
    pos += len;
    piece_start = pos;
  }
  tokenize_piece(std::u32string_view(s).substr(piece_start), ids);
  return ids;
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  return convert_ids_to_tokens(tokenize_ids(text));
}

std::vector<int32_t> WordPieceTokenizer::encode(std::string_view text, bool add_special_tokens,
                                                int32_t max_length) const {
  std::vector<int32_t> ids = tokenize_ids(text);
  const int32_t reserved = add_special_tokens ? 2 : 0;
  // transformers refuses (logs an error and returns the ids untruncated) when nothing would be left.
  LLOCO_CHECK(max_length == 0 || max_length > reserved, "WordPieceTokenizer::encode", "max_length ",
              max_length, " leaves no room for text beside the ", reserved, " special tokens");
  if (max_length > 0 && ids.size() > static_cast<size_t>(max_length - reserved))
    ids.resize(static_cast<size_t>(max_length - reserved));
  if (add_special_tokens) {
    ids.insert(ids.begin(), cls_id_);
    ids.push_back(sep_id_);
  }
  return ids;
}

WordPieceBatch WordPieceTokenizer::encode_batch(std::span<const std::string> texts, bool add_special_tokens,
                                                int32_t max_length) const {
  std::vector<std::vector<int32_t>> rows;
  rows.reserve(texts.size());
  size_t longest = 0;
  for (const std::string& t : texts) {
    rows.push_back(encode(t, add_special_tokens, max_length));
    longest = std::max(longest, rows.back().size());
  }
  WordPieceBatch b;
  b.batch = static_cast<int32_t>(rows.size());
  b.seq_len = static_cast<int32_t>(longest);
  b.input_ids.assign(rows.size() * longest, pad_id_);
  b.attention_mask.assign(rows.size() * longest, 0);
  for (size_t r = 0; r < rows.size(); ++r) {
    std::copy(rows[r].begin(), rows[r].end(), b.input_ids.begin() + static_cast<std::ptrdiff_t>(r * longest));
    std::fill_n(b.attention_mask.begin() + static_cast<std::ptrdiff_t>(r * longest), rows[r].size(), 1);
  }
  return b;
}

std::vector<std::string> WordPieceTokenizer::convert_ids_to_tokens(std::span<const int32_t> ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) tokens.push_back(piece(id));
  return tokens;
}

std::string WordPieceTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string text;
  bool first = true;
  for (int32_t id : ids) {
    const std::string& p = piece(id);
    if (skip_special_tokens && is_special(id)) continue;
    if (!first) text.push_back(' ');
    text.append(p);
    first = false;
  }
  // convert_tokens_to_string: glue "##" continuations on, then str.strip().
  replace_all(text, " ##", "");
  std::u32string chars = decode_utf8(text);
  const auto not_space = [](char32_t c) { return !is_py_space(c); };
  const auto begin = std::find_if(chars.begin(), chars.end(), not_space);
  const auto end = std::find_if(chars.rbegin(), chars.rend(), not_space).base();
  text = begin < end ? encode_utf8(std::u32string_view(&*begin, static_cast<size_t>(end - begin))) : "";
  // clean_up_tokenization, in transformers' order.
  for (auto [from, to] : {std::pair{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                          {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
    replace_all(text, from, to);
  return text;
}

}  // namespace lloco::models
