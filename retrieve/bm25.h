// BM25 over passages (the retriever of LLoCO's serving path: a question picks the passages whose
// compressed summaries are prepended). Two scoring variants, each matching a reference package:
//   Lucene: idf = ln(1 + (N - n + 0.5) / (n + 0.5)), tf part tf / (tf + k1 (1 - b + b dl / avgdl))
//           (Lucene / Pyserini, bm25s method "lucene"; Pyserini's defaults k1 = 0.9, b = 0.4)
//   Okapi:  idf = ln((N - n + 0.5) / (n + 0.5)), negative values floored at epsilon * mean idf, tf
//           part tf (k1 + 1) / (tf + k1 (1 - b + b dl / avgdl)) (rank_bm25's BM25Okapi, which
//           LangChain's BM25Retriever uses; k1 = 1.5, b = 0.75, epsilon = 0.25)
// A query's terms are summed with their multiplicity; terms not in the index add nothing.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lloco::retrieve {

// Lowercased runs of ASCII letters and digits; everything else (punctuation, non-ASCII bytes)
// separates terms.
std::vector<std::string> bm25_tokenize(std::string_view text);

enum class Bm25Variant { Lucene, Okapi };

struct Bm25Options {
  Bm25Variant variant = Bm25Variant::Lucene;
  double k1 = 0.9, b = 0.4;
  double epsilon = 0.25;  // Okapi only: the floor for negative idf, as a fraction of the mean idf
  static Bm25Options okapi() { return {Bm25Variant::Okapi, 1.5, 0.75, 0.25}; }
};

struct Hit {
  int64_t passage = 0;  // index in insertion order
  double score = 0;
};

class Bm25Index {
 public:
  explicit Bm25Index(Bm25Options options = {});
  // Appends a passage (its terms); returns its index.
  int64_t add(const std::vector<std::string>& terms);
  int64_t size() const { return static_cast<int64_t>(doc_len_.size()); }

  // Score of every passage for the query terms.
  std::vector<double> scores(const std::vector<std::string>& query) const;
  // The k best passages with a score > 0, best first (ties: lower index first).
  std::vector<Hit> search(const std::vector<std::string>& query, int64_t k) const;

 private:
  double idf(int64_t df) const;  // before Okapi's floor
  double mean_idf() const;        // over every indexed term

  Bm25Options opts_;
  std::unordered_map<std::string, std::vector<std::pair<int64_t, int32_t>>> postings_;  // term -> (passage, tf)
  std::vector<int64_t> doc_len_;
  int64_t total_len_ = 0;
};

}  // namespace lloco::retrieve
