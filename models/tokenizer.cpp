#include "models/tokenizer.h"

#include <sentencepiece_processor.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <queue>

#include "core/error.h"

namespace lloco::models {
namespace {

constexpr std::string_view kSpaceSymbol = "\xE2\x96\x81";         // U+2581 LOWER ONE EIGHTH BLOCK
constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";     // U+FFFD
constexpr std::string_view kUnknownSurface = " \xE2\x81\x87 ";    // " ⁇ ", SentencePiece's <unk>

// Length of the well-formed UTF-8 character at s[pos] (RFC 3629: no overlongs, no surrogates,
// nothing above U+10FFFF), or 0 when the bytes there are not one.
size_t utf8_valid_len(std::string_view s, size_t pos) {
  const size_t n = s.size() - pos;
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[pos + k]); };
  const auto cont = [&](size_t k) { return k < n && (b(k) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    const uint32_t cp = ((c & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu);
    return (cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF)) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    const uint32_t cp = ((c & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) |
                        (b(3) & 0x3Fu);
    return (cp >= 0x10000 && cp <= 0x10FFFF) ? 4 : 0;
  }
  return 0;
}

// One "character" for splitting text: a valid codepoint, or a single stray byte.
size_t utf8_char_len(std::string_view s, size_t pos) {
  const size_t len = utf8_valid_len(s, pos);
  return len == 0 ? 1 : len;
}

// Bytes from a run of byte tokens -> text, one U+FFFD per byte that starts no valid character
// (what SentencePiece's decoder does).
void append_bytes_as_utf8(const std::string& bytes, std::string* out) {
  size_t pos = 0;
  while (pos < bytes.size()) {
    const size_t len = utf8_valid_len(bytes, pos);
    if (len == 0) {
      out->append(kReplacementChar);
      ++pos;
    } else {
      out->append(bytes, pos, len);
      pos += len;
    }
  }
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

std::string byte_piece_name(int byte) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "<0x%02X>", byte);
  return buf;
}

}  // namespace

// ---- Tokenizer (shared SentencePiece-style decoding) ---------------------------------------------

void Tokenizer::check_id(int32_t id, const char* op) const {
  LLOCO_CHECK(id >= 0 && id < vocab_size(), op, "token id ", id, " out of range [0, ",
              vocab_size(), ")");
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  bool first = true;  // the first non-control piece loses its dummy-prefix space
  size_t i = 0;
  while (i < ids.size()) {
    const int32_t id = ids[i];
    check_id(id, "Tokenizer::decode");
    if (is_byte(id)) {
      std::string bytes;
      for (; i < ids.size() && ids[i] >= 0 && ids[i] < vocab_size() && is_byte(ids[i]); ++i)
        bytes.push_back(static_cast<char>(decode_piece(-1, ids[i])[0]));
      append_bytes_as_utf8(bytes, &out);
      first = false;
      continue;
    }
    ++i;
    if (id == unk_id()) {
      out.append(kUnknownSurface);
      first = false;
    } else if (!is_special(id)) {
      std::string text = replace_all(piece(id), kSpaceSymbol, " ");
      out.append(first && !text.empty() && text[0] == ' ' ? text.substr(1) : text);
      first = false;
    }
  }
  return out;
}

std::string Tokenizer::decode_piece(int32_t prev_id, int32_t id) const {
  check_id(id, "Tokenizer::decode_piece");
  if (id == unk_id()) return std::string(kUnknownSurface);
  if (is_special(id)) return {};
  const std::string name = piece(id);
  if (is_byte(id)) {
    // "<0xAB>" -> the byte 0xAB
    return std::string(1, static_cast<char>(std::stoi(name.substr(3, 2), nullptr, 16)));
  }
  std::string text = replace_all(name, kSpaceSymbol, " ");
  const bool at_start = prev_id < 0 || prev_id == bos_id();
  if (at_start && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

// ---- SentencePieceTokenizer ----------------------------------------------------------------------

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_path)
    : path_(model_path), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  std::error_code ec;
  LLOCO_CHECK(std::filesystem::is_regular_file(model_path, ec), "SentencePieceTokenizer",
              "cannot open tokenizer model '", model_path, "': no such file");
  const auto status = sp_->Load(model_path);
  LLOCO_CHECK(status.ok(), "SentencePieceTokenizer", "'", model_path,
              "' is not a valid SentencePiece model: ", status.ToString());
  vocab_size_ = sp_->GetPieceSize();
  LLOCO_CHECK(vocab_size_ > 0, "SentencePieceTokenizer", "'", model_path, "' has no pieces");
  bos_id_ = sp_->bos_id();
  eos_id_ = sp_->eos_id();
  unk_id_ = sp_->unk_id();
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;

std::vector<int32_t> SentencePieceTokenizer::encode(std::string_view text, bool add_bos,
                                                    bool add_eos) const {
  std::vector<int> ids;
  const auto status = sp_->Encode(text, &ids);
  LLOCO_CHECK(status.ok(), "SentencePieceTokenizer::encode", "encoding with '", path_,
              "' failed: ", status.ToString());
  std::vector<int32_t> out;
  out.reserve(ids.size() + 2);
  if (add_bos) {
    LLOCO_CHECK(bos_id_ >= 0, "SentencePieceTokenizer::encode", "'", path_, "' defines no BOS");
    out.push_back(bos_id_);
  }
  out.insert(out.end(), ids.begin(), ids.end());
  if (add_eos) {
    LLOCO_CHECK(eos_id_ >= 0, "SentencePieceTokenizer::encode", "'", path_, "' defines no EOS");
    out.push_back(eos_id_);
  }
  return out;
}

std::string SentencePieceTokenizer::decode(std::span<const int32_t> ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  for (const int32_t id : ids) {
    check_id(id, "SentencePieceTokenizer::decode");
    v.push_back(id);
  }
  std::string out;
  const auto status = sp_->Decode(v, &out);
  LLOCO_CHECK(status.ok(), "SentencePieceTokenizer::decode", "decoding with '", path_,
              "' failed: ", status.ToString());
  return out;
}

std::string SentencePieceTokenizer::piece(int32_t id) const {
  check_id(id, "SentencePieceTokenizer::piece");
  return sp_->IdToPiece(id);
}

int32_t SentencePieceTokenizer::id_of(std::string_view piece) const {
  const int id = sp_->PieceToId(piece);
  // PieceToId answers <unk>'s id for unknown spellings; only a true round trip counts.
  if (id < 0 || id >= vocab_size_ || sp_->IdToPiece(id) != piece) return -1;
  return id;
}

bool SentencePieceTokenizer::is_special(int32_t id) const {
  check_id(id, "SentencePieceTokenizer::is_special");
  return sp_->IsControl(id) || sp_->IsUnknown(id);
}

bool SentencePieceTokenizer::is_byte(int32_t id) const {
  check_id(id, "SentencePieceTokenizer::is_byte");
  return sp_->IsByte(id);
}

// ---- Llama2cTokenizer ----------------------------------------------------------------------------

Llama2cTokenizer::Llama2cTokenizer(const std::string& path, int32_t vocab_size) : path_(path) {
  const char* op = "Llama2cTokenizer";
  LLOCO_CHECK(vocab_size == 0 || vocab_size >= 3, op, "'", path, "': vocab_size ", vocab_size,
              " must be 0 (read to end of file) or at least 3");
  std::ifstream in(path, std::ios::binary);
  LLOCO_CHECK(in.good(), op, "cannot open tokenizer file '", path, "'");
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  LLOCO_CHECK(!in.bad(), op, "read error on '", path, "'");

  size_t pos = 0;
  const auto read_i32 = [&]() {
    int32_t v;
    std::memcpy(&v, data.data() + pos, 4);
    pos += 4;
    return v;
  };
  LLOCO_CHECK(data.size() >= 4, op, "'", path, "' is ", data.size(),
              " bytes, too short for the int32 max_token_length header");
  max_token_length_ = read_i32();
  LLOCO_CHECK(max_token_length_ > 0 && max_token_length_ <= (1 << 16), op, "'", path,
              "': max_token_length ", max_token_length_, " is not in [1, 65536]");

  for (int32_t i = 0; vocab_size > 0 ? i < vocab_size : pos < data.size(); ++i) {
    LLOCO_CHECK(data.size() - pos >= 8, op, "'", path, "' is truncated at token ", i,
                ": needs 8 bytes for score and length at offset ", pos, ", file has ",
                data.size(), " bytes");
    float score;
    std::memcpy(&score, data.data() + pos, 4);
    pos += 4;
    const int32_t len = read_i32();
    LLOCO_CHECK(!std::isnan(score), op, "'", path, "': token ", i, " has a NaN score");
    LLOCO_CHECK(len >= 0, op, "'", path, "': token ", i, " has negative length ", len);
    LLOCO_CHECK(len <= max_token_length_, op, "'", path, "': token ", i, " has length ", len,
                " > max_token_length ", max_token_length_);
    LLOCO_CHECK(static_cast<size_t>(len) <= data.size() - pos, op, "'", path,
                "' is truncated at token ", i, ": piece needs ", len, " bytes at offset ", pos,
                ", only ", data.size() - pos, " left");
    raw_.emplace_back(data, pos, static_cast<size_t>(len));
    scores_.push_back(score);
    pos += static_cast<size_t>(len);
  }
  LLOCO_CHECK(raw_.size() >= 3, op, "'", path, "' holds ", raw_.size(),
              " tokens; need at least <unk>, <s>, </s>");

  byte_fallback_ = raw_.size() >= 259;
  for (int b = 0; byte_fallback_ && b < 256; ++b) byte_fallback_ = raw_[3 + b] == byte_piece_name(b);
  for (size_t id = 3; id < raw_.size(); ++id) {
    if (is_byte(static_cast<int32_t>(id))) continue;
    lookup_.emplace(raw_[id], static_cast<int32_t>(id));  // first id wins on duplicates
  }
}

bool Llama2cTokenizer::is_byte(int32_t id) const {
  return byte_fallback_ && id >= 3 && id < 259;
}

const std::string& Llama2cTokenizer::raw_piece(int32_t id) const {
  check_id(id, "Llama2cTokenizer::raw_piece");
  return raw_[static_cast<size_t>(id)];
}

float Llama2cTokenizer::score(int32_t id) const {
  check_id(id, "Llama2cTokenizer::score");
  return scores_[static_cast<size_t>(id)];
}

std::string Llama2cTokenizer::piece(int32_t id) const {
  check_id(id, "Llama2cTokenizer::piece");
  if (id == 0) return "<unk>";
  if (id == 1) return "<s>";
  if (id == 2) return "</s>";
  if (is_byte(id)) return raw_[static_cast<size_t>(id)];
  return replace_all(raw_[static_cast<size_t>(id)], " ", kSpaceSymbol);
}

int32_t Llama2cTokenizer::id_of(std::string_view piece) const {
  if (piece == "<unk>") return 0;
  if (piece == "<s>") return 1;
  if (piece == "</s>") return 2;
  if (byte_fallback_ && piece.size() == 6 && piece.substr(0, 3) == "<0x" && piece[5] == '>') {
    for (int b = 0; b < 256; ++b)
      if (piece == byte_piece_name(b)) return 3 + b;
  }
  const auto it = lookup_.find(replace_all(piece, kSpaceSymbol, " "));
  return it == lookup_.end() ? -1 : it->second;
}

std::vector<int32_t> Llama2cTokenizer::encode(std::string_view text, bool add_bos,
                                              bool add_eos) const {
  std::vector<int32_t> out;
  if (add_bos) out.push_back(bos_id());
  if (!text.empty()) {
    // Symbols form a doubly linked list; a merge keeps the left symbol and unlinks the right.
    struct Sym {
      int32_t id, prev, next;
      bool mergeable;
    };
    std::vector<Sym> syms;
    syms.reserve(text.size() + 1);
    const auto push = [&](int32_t id, bool mergeable) {
      const auto n = static_cast<int32_t>(syms.size());
      syms.push_back({id, n - 1, -1, mergeable});
      if (n > 0) syms[static_cast<size_t>(n - 1)].next = n;
    };
    // Dummy prefix: SentencePiece prepends "▁", which llama2.c stores as " ".
    if (const auto it = lookup_.find(" "); it != lookup_.end()) push(it->second, true);
    std::string ch;
    for (size_t pos = 0; pos < text.size();) {
      // Like sentencepiece's normalizer, each byte that starts no valid character becomes U+FFFD.
      const size_t valid = utf8_valid_len(text, pos);
      const size_t len = valid == 0 ? 1 : valid;
      ch.assign(valid == 0 ? kReplacementChar : text.substr(pos, len));
      if (const auto it = lookup_.find(ch); it != lookup_.end()) {
        push(it->second, true);
      } else if (byte_fallback_) {
        for (const char c : ch) push(3 + static_cast<unsigned char>(c), false);
      } else {
        push(unk_id(), false);
      }
      pos += len;
    }

    // Best pair first: highest merged-piece score, leftmost on ties (llama2.c's linear scan).
    struct Cand {
      float score;
      int32_t left, right, left_id, right_id, merged;
    };
    const auto worse = [](const Cand& a, const Cand& b) {
      return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> heap(worse);
    std::string key;
    const auto consider = [&](int32_t l, int32_t r) {
      if (l < 0 || r < 0) return;
      const Sym& a = syms[static_cast<size_t>(l)];
      const Sym& b = syms[static_cast<size_t>(r)];
      if (!a.mergeable || !b.mergeable) return;
      key = raw_[static_cast<size_t>(a.id)];
      key += raw_[static_cast<size_t>(b.id)];
      const auto it = lookup_.find(key);
      if (it == lookup_.end()) return;
      heap.push({scores_[static_cast<size_t>(it->second)], l, r, a.id, b.id, it->second});
    };
    for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i, i + 1);
    while (!heap.empty()) {
      const Cand c = heap.top();
      heap.pop();
      Sym& a = syms[static_cast<size_t>(c.left)];
      Sym& b = syms[static_cast<size_t>(c.right)];
      // Stale when either side has merged since: ids only change by growing, so compare them.
      if (a.next != c.right || a.id != c.left_id || b.id != c.right_id) continue;
      a.id = c.merged;
      a.next = b.next;
      if (b.next >= 0) syms[static_cast<size_t>(b.next)].prev = c.left;
      b.id = -1;
      b.prev = b.next = -1;
      consider(a.prev, c.left);
      consider(c.left, a.next);
    }
    for (int32_t i = 0; i >= 0; i = syms[static_cast<size_t>(i)].next)
      out.push_back(syms[static_cast<size_t>(i)].id);
  }
  if (add_eos) out.push_back(eos_id());
  return out;
}

// ---- free functions ------------------------------------------------------------------------------

std::vector<int32_t> encode_long_document(const Tokenizer& tok, std::string_view text,
                                          size_t slice_chars, size_t max_tokens) {
  LLOCO_CHECK(slice_chars > 0, "encode_long_document", "slice_chars must be positive");
  std::vector<int32_t> out;
  size_t start = 0, pos = 0, chars = 0;
  while (pos < text.size()) {
    pos += utf8_char_len(text, pos);
    if (++chars == slice_chars || pos == text.size()) {
      const auto ids = tok.encode(text.substr(start, pos - start), false, false);
      out.insert(out.end(), ids.begin(), ids.end());
      start = pos;
      chars = 0;
      if (max_tokens > 0 && out.size() >= max_tokens) break;
    }
  }
  if (max_tokens > 0 && out.size() > max_tokens) out.resize(max_tokens);
  return out;
}

size_t utf8_complete_prefix(std::string_view s) {
  const size_t n = s.size();
  for (size_t k = 1; k <= 3 && k <= n; ++k) {
    const auto c = static_cast<unsigned char>(s[n - k]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead byte
    const size_t need = (c >= 0xF0 && c <= 0xF4) ? 4 : (c >= 0xE0 && c <= 0xEF) ? 3
                        : (c >= 0xC2 && c <= 0xDF) ? 2 : 1;
    return need > k ? n - k : n;
  }
  return n;
}

}  // namespace lloco::models
