// What the decoder reads in front of the question, one function for every system of a run: built the
// same way when an adapter is trained on it (qa_examples) and when answers are generated from it
// (predict_dataset), so a system fine-tuned on its own context (LLoCO's Table 2: LLaMA-2 fine-tuned
// on the uncompressed, truncated document) sees at test time exactly the input it was trained on.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "compress/store.h"
#include "core/tensor.h"
#include "eval/example.h"
#include "models/tokenizer.h"
#include "retrieve/ranker.h"

namespace lloco::apps {

// What precedes LLoCO's prompt: the document's summary vectors (from store_dir), nothing, the
// document as text truncated to text_budget tokens with the prompt (LLoCO's 4k-window baseline), or
// the document's chunks that a retriever ranks best for the question, as text within the same
// budget (LLoCO's "retrieval" baseline: Contriever, see retrieve/dense.h; BM25 by default).
enum class ContextKind { kCompressed, kNone, kTruncatedText, kRetrievedText };

// "compressed", "none", "truncated_text" (or "text"), "retrieved_text"; anything else throws, naming
// `what` (the option or config key) and the accepted names.
ContextKind parse_context_kind(const std::string& name, const std::string& what);
const char* context_kind_name(ContextKind kind);

struct ContextOptions {
  ContextKind context = ContextKind::kCompressed;
  std::string store_dir;        // kCompressed
  int64_t text_budget = 4000;   // kTruncatedText, kRetrievedText: document text + prompt tokens
  int64_t retrieval_chunk_tokens = 512, retrieval_top_k = 5;  // kRetrievedText (LLoCO's setting)
  retrieve::RankerFactory chunk_ranker = retrieve::bm25_ranker_factory();  // kRetrievedText
};

// A document cut into chunks of chunk_tokens LLaMA tokens for the retrieved-text baseline, ranked by
// `make_ranker` over each chunk's decoded text (BM25's Lucene variant by default; Contriever in
// LLoCO). A cut that would split a UTF-8 character spelled in byte tokens moves forward past its
// continuation bytes. `tok` must outlive this.
class RetrievalChunks {
 public:
  RetrievalChunks(std::vector<int32_t> ids, const models::Tokenizer& tok, int64_t chunk_tokens,
                  const retrieve::RankerFactory& make_ranker = retrieve::bm25_ranker_factory());
  int64_t size() const { return static_cast<int64_t>(ranges_.size()); }
  std::pair<int64_t, int64_t> range(int64_t chunk) const { return ranges_.at(static_cast<size_t>(chunk)); }  // [begin, end)
  // Every chunk, best for the question first (retrieve::full_ranking: chunks BM25 does not match
  // follow in document order, so a dense retriever's "always k" is kept).
  std::vector<int64_t> rank(const std::string& question) const;
  // The top_k ranked chunks as text of at most `budget` tokens: taken best first, a chunk that would
  // overflow the budget is skipped; the kept ones appear in document order (reading order, as in a
  // truncated document), contiguous chunks decoded as one span and "\n\n" between spans. When not
  // even the best chunk fits, its truncated beginning.
  std::string select(const std::string& question, int64_t top_k, size_t budget) const;
  // Decoded text of the chunks (any order given; emitted in document order as select describes).
  std::string text(std::vector<int64_t> chunks) const;

 private:
  size_t count_tokens(const std::string& text) const { return tok_.encode(text, false, false).size(); }

  std::vector<int32_t> ids_;
  const models::Tokenizer& tok_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;
  std::unique_ptr<const retrieve::PassageRanker> ranker_;
};

// The decoder's input for one example: summary vectors then the prompt ids.
struct ContextInput {
  Tensor prefix;                // [P, D] on the builder's device; undefined without summary vectors
  std::vector<int32_t> prompt;  // BOS + text prompt for the text contexts; LLoCO's prompt without BOS
                                // after the summary vectors (and for kNone, as LLoCO's no-context runs)
};

// Builds ContextInputs. Predictions keep only the last document's summary vectors or retrieval chunks
// (the readers keep a document's examples together). With keep_all, every document's are kept, so a
// training set that returns to a document (QuALITY: one line per article and writer) loads it once
// and all its examples share one device tensor. `tok` must outlive it.
class ContextBuilder {
 public:
  ContextBuilder(const models::Tokenizer& tok, ContextOptions options, Device device, bool keep_all = false);
  ContextInput build(const eval::Example& ex);
  const ContextOptions& options() const { return options_; }

 private:
  std::vector<int32_t> text_prompt(const eval::Example& ex) const;

  const models::Tokenizer& tok_;
  ContextOptions options_;
  Device device_;
  bool keep_all_;
  compress::StoreManifest manifest_;                // kCompressed
  std::map<std::string, Tensor> summaries_;         // kCompressed: doc id -> [P, D]
  std::map<std::string, RetrievalChunks> chunks_;   // kRetrievedText: doc id -> its chunks
};

}  // namespace lloco::apps
