// BERT WordPiece tokenizer (bert-base-uncased / facebook/contriever, the vocabulary of LLoCO's dense
// retriever). Ids equal transformers' slow BertTokenizer (BasicTokenizer + WordpieceTokenizer,
// transformers 4.46.3) on CPython 3.11 / Unicode 14.0.0 data (models/wordpiece_tables.inc):
//   1. if do_lower_case, every code point outside a special-token match is lowered on its own
//      (PreTrainedTokenizer.tokenize's regex pass; so Greek final sigma never applies);
//   2. the text is split around literal special tokens ([CLS] [SEP] [PAD] [UNK] [MASK]);
//   3. each other piece: drop U+0000, U+FFFD and category C* except \t\n\r; \t\n\r and Zs become
//      " "; spaces around CJK ideographs; NFC; split on Python whitespace; per word (special-token
//      spellings are kept whole): lower + strip accents (NFD, drop Mn) as configured, split off
//      punctuation (ASCII non-alphanumerics and P*);
//   4. greedy longest-match-first WordPiece with "##" continuations; a word over
//      max_input_chars_per_word code points or with no match is [UNK].
// Input is UTF-8; an ill-formed byte sequence reads as U+FFFD (like Python's errors="replace"),
// which step 3 then drops: invalid bytes vanish without joining or splitting their neighbours, except
// that (as in Python) one inside a special-token spelling keeps it from matching in step 2.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lloco::models {

struct WordPieceConfig {
  bool do_lower_case = true;
  std::optional<bool> strip_accents;  // unset: strip exactly when lowering (original BERT)
  bool tokenize_chinese_chars = true;
  // Length cap used by callers that truncate to the model (0 = none); never applied implicitly.
  int64_t model_max_length = 512;
  int32_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string cls_token = "[CLS]";
  std::string mask_token = "[MASK]";

  // Defaults overridden by the keys present in a transformers tokenizer_config.json
  // (do_lower_case, strip_accents, tokenize_chinese_chars, model_max_length, *_token).
  static WordPieceConfig from_json_file(const std::string& path);
};

// A padded batch, row-major [batch, seq_len]; padding is on the right with pad_id.
struct WordPieceBatch {
  int32_t batch = 0;
  int32_t seq_len = 0;
  std::vector<int32_t> input_ids;       // [batch, seq_len]
  std::vector<int32_t> attention_mask;  // [batch, seq_len], 1 = real token, 0 = padding
};

class WordPieceTokenizer {
 public:
  // <dir>/vocab.txt plus <dir>/tokenizer_config.json when that file exists.
  static WordPieceTokenizer from_dir(const std::string& dir);
  // vocab.txt: one token per line, id = 0-based line number; duplicates and empty lines are errors.
  WordPieceTokenizer(const std::string& vocab_path, WordPieceConfig config);

  // WordPiece tokens of `text` (no [CLS]/[SEP]), e.g. "unaffable" -> {"un", "##aff", "##able"}.
  std::vector<std::string> tokenize(std::string_view text) const;
  // Ids of `text`, wrapped in [CLS] ... [SEP] when add_special_tokens. max_length > 0 truncates
  // the text ids from the right so that the whole result has at most max_length ids; it must leave
  // room for at least one text id.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true,
                              int32_t max_length = 0) const;
  // encode() of each text, padded to the longest.
  WordPieceBatch encode_batch(std::span<const std::string> texts, bool add_special_tokens = true,
                              int32_t max_length = 0) const;

  std::vector<std::string> convert_ids_to_tokens(std::span<const int32_t> ids) const;
  // BertTokenizer.decode: tokens joined by spaces, "##" continuations glued on, English
  // clean-up of spaces before punctuation/contractions (clean_up_tokenization_spaces=True).
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  // Token text of `id`; throws on an out-of-range id.
  const std::string& piece(int32_t id) const;
  // Inverse of piece(); -1 when the vocabulary has no such token.
  int32_t id_of(std::string_view token) const;
  bool is_special(int32_t id) const;
  int32_t unk_id() const { return unk_id_; }
  int32_t sep_id() const { return sep_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t cls_id() const { return cls_id_; }
  int32_t mask_id() const { return mask_id_; }
  const WordPieceConfig& config() const { return config_; }

 private:
  void wordpiece(std::u32string_view word, std::vector<int32_t>& out) const;
  void tokenize_piece(std::u32string_view text, std::vector<int32_t>& out) const;
  std::vector<int32_t> tokenize_ids(std::string_view text) const;

  std::string path_;
  WordPieceConfig config_;
  std::vector<std::string> pieces_;
  std::unordered_map<std::string, int32_t> ids_;
  int32_t max_piece_chars_ = 0;  // longest token in code points, "##" excluded: bounds the search
  int32_t unk_id_ = -1, sep_id_ = -1, pad_id_ = -1, cls_id_ = -1, mask_id_ = -1;
  std::vector<std::u32string> special_tokens_;  // the five above, as code points
  std::vector<int32_t> special_ids_;            // their ids, in the same order
};

}  // namespace lloco::models
