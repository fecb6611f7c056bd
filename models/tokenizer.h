// Tokenizers for the LLaMA-2 vocabulary: SentencePiece (tokenizer.model, the reference) and the
// llama2.c binary format (tokenizer.bin / tok512.bin). Both expose pieces in SentencePiece spelling
// ("▁Hello", "<s>", "<0x0A>") and decode with SentencePiece's rules, so they are interchangeable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace lloco::models {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual std::vector<int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const = 0;
  // SentencePiece decoding: control tokens vanish, the first real piece loses its dummy-prefix
  // space, runs of byte tokens become UTF-8 with one U+FFFD per invalid byte, <unk> is " ⁇ ".
  virtual std::string decode(std::span<const int32_t> ids) const;
  // Text of `id` when it follows `prev_id` (-1 at the start of a stream). The leading space is
  // dropped at the start or after BOS; byte tokens come back as one raw byte, so a caller that
  // prints must hold back incomplete UTF-8 (see utf8_complete_prefix).
  virtual std::string decode_piece(int32_t prev_id, int32_t id) const;

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  virtual int32_t unk_id() const = 0;
  // SentencePiece spelling of a piece ("▁the", "<s>", "<0xFF>"); throws on an out-of-range id.
  virtual std::string piece(int32_t id) const = 0;
  // Inverse of piece(); -1 when no piece has that spelling.
  virtual int32_t id_of(std::string_view piece) const = 0;
  // Control tokens (BOS/EOS) and <unk>.
  virtual bool is_special(int32_t id) const = 0;
  // Byte-fallback tokens <0x00>..<0xFF>.
  virtual bool is_byte(int32_t id) const = 0;

 protected:
  void check_id(int32_t id, const char* op) const;
};

// LLaMA-2 tokenizer.model through libsentencepiece: ids identical to Python's sentencepiece.
class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const override;
  std::string decode(std::span<const int32_t> ids) const override;
  int32_t vocab_size() const override { return vocab_size_; }
  int32_t bos_id() const override { return bos_id_; }
  int32_t eos_id() const override { return eos_id_; }
  int32_t unk_id() const override { return unk_id_; }
  std::string piece(int32_t id) const override;
  int32_t id_of(std::string_view piece) const override;
  bool is_special(int32_t id) const override;
  bool is_byte(int32_t id) const override;

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int32_t vocab_size_ = 0, bos_id_ = -1, eos_id_ = -1, unk_id_ = -1;
};

// llama2.c tokenizer.bin: int32 max_token_length, then per token {float score, int32 len, bytes}.
// Ids 0/1/2 are <unk>/<s>/</s> (stored as "\n<s>\n", "\n</s>\n"), spaces are stored as 0x20.
// Encoding is llama2.c's greedy merge of the best-scoring adjacent pair (with a heap, so long
// texts stay O(n log n)); byte and special pieces are kept out of the piece lookup, so input text
// can never turn into them, and invalid UTF-8 bytes read as U+FFFD as in sentencepiece. Ids equal
// sentencepiece's except where the input holds a literal U+2581, which sentencepiece reads as a
// space and tokenizer.bin (spelling spaces as 0x20) does not.
class Llama2cTokenizer final : public Tokenizer {
 public:
  // vocab_size 0 reads tokens up to the end of the file; otherwise exactly that many are read.
  explicit Llama2cTokenizer(const std::string& path, int32_t vocab_size = 0);

  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool add_eos) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(raw_.size()); }
  int32_t bos_id() const override { return 1; }
  int32_t eos_id() const override { return 2; }
  int32_t unk_id() const override { return 0; }
  std::string piece(int32_t id) const override;
  int32_t id_of(std::string_view piece) const override;
  bool is_special(int32_t id) const override { return id >= 0 && id <= 2; }
  bool is_byte(int32_t id) const override;

  // The bytes exactly as stored in the file (e.g. " the", "\n<s>\n").
  const std::string& raw_piece(int32_t id) const;
  float score(int32_t id) const;
  int32_t max_token_length() const { return max_token_length_; }
  bool has_byte_fallback() const { return byte_fallback_; }

 private:
  std::string path_;
  int32_t max_token_length_ = 0;
  std::vector<std::string> raw_;
  std::vector<float> scores_;
  bool byte_fallback_ = false;
  // raw spelling -> id for ordinary pieces only (merge candidates and single characters).
  std::unordered_map<std::string, int32_t> lookup_;
};

// LLoCO's encoder-side document tokenization: no BOS/EOS; texts longer than slice_chars Unicode
// codepoints are encoded slice by slice (each slice gets its own dummy prefix) and concatenated.
// max_tokens > 0 truncates the result (LLoCO caps at 122,880 = 80 segments of 1536).
std::vector<int32_t> encode_long_document(const Tokenizer& tok, std::string_view text,
                                          size_t slice_chars = 10000, size_t max_tokens = 0);

// Length of the longest prefix of `s` that does not end inside an incomplete-but-so-far-valid
// UTF-8 sequence: streaming output can print that much and keep the rest for the next piece.
size_t utf8_complete_prefix(std::string_view s);

}  // namespace lloco::models
