// Ranking a fixed list of passages for a query: the one interface behind LLoCO's two retrievers.
// BM25 scores term overlap; a dense ranker (Contriever in LLoCO's retrieval baseline, see dense.h)
// scores the inner product of query and passage embeddings. ContextRetriever (serving) and the
// retrieved-text baseline both rank through it, so either retriever serves both.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "retrieve/bm25.h"

namespace lloco::retrieve {

class PassageRanker {
 public:
  virtual ~PassageRanker() = default;
  virtual int64_t size() const = 0;
  // The k best passages for the query, best first, ties going to the lower index. BM25 leaves out
  // passages that share no term with the query; a dense ranker always returns min(k, size()).
  virtual std::vector<Hit> search(const std::string& query, int64_t k) const = 0;
  virtual std::string name() const = 0;  // "bm25" or "dense"
};

// Every passage, best first: the ranker's hits, then the passages it left out in index order (so a
// caller that needs k chunks always gets them, as with a dense retriever).
std::vector<int64_t> full_ranking(const PassageRanker& ranker, const std::string& query);

class Bm25Ranker final : public PassageRanker {
 public:
  explicit Bm25Ranker(const std::vector<std::string>& texts, Bm25Options options = {});
  int64_t size() const override { return index_.size(); }
  std::vector<Hit> search(const std::string& query, int64_t k) const override;
  std::string name() const override { return "bm25"; }

 private:
  Bm25Index index_;
};

// Builds a ranker over passage texts, in their order (what a retriever of a document's chunks needs).
using RankerFactory = std::function<std::unique_ptr<const PassageRanker>(const std::vector<std::string>& texts)>;
RankerFactory bm25_ranker_factory(Bm25Options options = {});

}  // namespace lloco::retrieve
