#include "retrieve/bm25.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace lloco::retrieve {

std::vector<std::string> bm25_tokenize(std::string_view text) {
  std::vector<std::string> terms;
  std::string cur;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
      cur.push_back(static_cast<char>(c));
    } else if (c >= 'A' && c <= 'Z') {
      cur.push_back(static_cast<char>(c - 'A' + 'a'));
    } else if (!cur.empty()) {
      terms.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) terms.push_back(std::move(cur));
  return terms;
}

Bm25Index::Bm25Index(Bm25Options options) : opts_(options) {
  LLOCO_CHECK(opts_.k1 >= 0 && opts_.b >= 0 && opts_.b <= 1 && opts_.epsilon >= 0, "Bm25Index",
              "k1 must be >= 0, b in [0, 1] and epsilon >= 0, got k1 ", opts_.k1, ", b ", opts_.b, ", epsilon ",
              opts_.epsilon);
}

int64_t Bm25Index::add(const std::vector<std::string>& terms) {
  const int64_t id = size();
  std::unordered_map<std::string, int32_t> tf;
  for (const std::string& t : terms) ++tf[t];
  for (const auto& [term, n] : tf) postings_[term].emplace_back(id, n);
  doc_len_.push_back(static_cast<int64_t>(terms.size()));
  total_len_ += static_cast<int64_t>(terms.size());
  return id;
}

double Bm25Index::idf(int64_t df) const {
  const double N = static_cast<double>(size()), n = static_cast<double>(df);
  if (opts_.variant == Bm25Variant::Lucene) return std::log(1.0 + (N - n + 0.5) / (n + 0.5));
  return std::log(N - n + 0.5) - std::log(n + 0.5);
}

double Bm25Index::mean_idf() const {
  double sum = 0;
  for (const auto& [term, posting] : postings_) sum += idf(static_cast<int64_t>(posting.size()));
  return postings_.empty() ? 0.0 : sum / static_cast<double>(postings_.size());
}

std::vector<double> Bm25Index::scores(const std::vector<std::string>& query) const {
  std::vector<double> s(static_cast<size_t>(size()), 0.0);
  if (size() == 0) return s;
  const double avgdl = static_cast<double>(total_len_) / static_cast<double>(size());
  const double tf_scale = opts_.variant == Bm25Variant::Okapi ? opts_.k1 + 1.0 : 1.0;
  double okapi_floor = 0;  // epsilon * mean idf, computed once per call when a term needs it
  bool have_floor = false;
  for (const std::string& term : query) {
    const auto it = postings_.find(term);
    if (it == postings_.end()) continue;
    double w = idf(static_cast<int64_t>(it->second.size()));
    if (opts_.variant == Bm25Variant::Okapi && w < 0) {
      if (!have_floor) okapi_floor = opts_.epsilon * mean_idf(), have_floor = true;
      w = okapi_floor;
    }
    for (const auto& [doc, tf] : it->second) {
      const double norm = opts_.k1 * (1.0 - opts_.b + opts_.b * static_cast<double>(doc_len_[doc]) / avgdl);
      s[doc] += w * tf * tf_scale / (tf + norm);
    }
  }
  return s;
}

std::vector<Hit> Bm25Index::search(const std::vector<std::string>& query, int64_t k) const {
  LLOCO_CHECK(k >= 0, "Bm25Index::search", "k must be >= 0, got ", k);
  const std::vector<double> s = scores(query);
  std::vector<Hit> hits;
  for (int64_t i = 0; i < size(); ++i)
    if (s[i] > 0) hits.push_back({i, s[i]});
  const auto better = [](const Hit& a, const Hit& b) { return a.score != b.score ? a.score > b.score : a.passage < b.passage; };
  const size_t keep = std::min(hits.size(), static_cast<size_t>(k));
  std::partial_sort(hits.begin(), hits.begin() + static_cast<std::ptrdiff_t>(keep), hits.end(), better);
  hits.resize(keep);
  return hits;
}

}  // namespace lloco::retrieve
