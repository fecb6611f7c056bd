#include "retrieve/ranker.h"


namespace lloco::retrieve {

std::vector<int64_t> full_ranking(const PassageRanker& ranker, const std::string& query) {
  const std::vector<Hit> hits = ranker.search(query, ranker.size());
  std::vector<char> ranked(static_cast<size_t>(ranker.size()), 0);
  std::vector<int64_t> order;
  order.reserve(ranked.size());
  for (const Hit& h : hits) {
    order.push_back(h.passage);
    ranked[static_cast<size_t>(h.passage)] = 1;
  }
  for (int64_t p = 0; p < ranker.size(); ++p)
    if (!ranked[static_cast<size_t>(p)]) order.push_back(p);
  return order;
}

Bm25Ranker::Bm25Ranker(const std::vector<std::string>& texts, Bm25Options options) : index_(options) {
  for (const std::string& t : texts) index_.add(bm25_tokenize(t));
}

std::vector<Hit> Bm25Ranker::search(const std::string& query, int64_t k) const {
  return index_.search(bm25_tokenize(query), k);
}

RankerFactory bm25_ranker_factory(Bm25Options options) {
  return [options](const std::vector<std::string>& texts) { return std::make_unique<const Bm25Ranker>(texts, options); };
}

}  // namespace lloco::retrieve
