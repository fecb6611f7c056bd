#include "retrieve/context.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/ops.h"

namespace lloco::retrieve {

namespace {

std::vector<std::string> texts_of(const std::vector<Passage>& passages) {
  std::vector<std::string> texts;
  texts.reserve(passages.size());
  for (const Passage& p : passages) texts.push_back(p.text);
  return texts;
}

}  // namespace

ContextRetriever::ContextRetriever(std::string store_dir, std::vector<Passage> passages, Bm25Options options)
    : ContextRetriever(store_dir, passages, std::make_unique<const Bm25Ranker>(texts_of(passages), options)) {}

ContextRetriever::ContextRetriever(std::string store_dir, std::vector<Passage> passages,
                                   std::unique_ptr<const PassageRanker> ranker)
    : dir_(std::move(store_dir)), passages_(std::move(passages)), ranker_(std::move(ranker)) {
  LLOCO_CHECK(ranker_ != nullptr, "ContextRetriever", "no ranker for the store ", dir_);
  LLOCO_CHECK_EQ(ranker_->size(), static_cast<int64_t>(passages_.size()), "ContextRetriever",
                 "passages indexed by the " + ranker_->name() + " ranker vs passages given");
  manifest_ = compress::read_store(dir_);
  std::map<std::string, size_t> stored;
  for (size_t i = 0; i < manifest_.chunks.size(); ++i) stored[manifest_.chunks[i].id] = i;
  std::set<std::string> seen;
  for (const Passage& p : passages_) {
    const auto it = stored.find(p.id);
    LLOCO_CHECK(it != stored.end(), "ContextRetriever", "passage '", p.id, "' is not in the store ", dir_);
    LLOCO_CHECK(seen.insert(p.id).second, "ContextRetriever", "passage '", p.id, "' is listed twice");
    chunk_index_.push_back(it->second);
  }
}

std::vector<Passage> ContextRetriever::store_passages(const std::string& store_dir) {
  const compress::StoreManifest m = compress::read_store(store_dir);
  const std::map<std::string, std::string> texts = compress::load_chunk_texts(store_dir, m);
  std::vector<Passage> passages;
  for (const compress::StoredChunk& c : m.chunks) {
    const auto it = texts.find(c.id);
    LLOCO_CHECK(it != texts.end(), "ContextRetriever", store_dir, ": chunk '", c.id,
                "' has no text to retrieve it by (compress it from text, or with a tokenizer when chunking)");
    passages.push_back(Passage{c.id, it->second, c.group});
  }
  return passages;
}

ContextRetriever ContextRetriever::from_store(const std::string& store_dir, Bm25Options options) {
  return ContextRetriever(store_dir, store_passages(store_dir), options);
}

const compress::StoredChunk& ContextRetriever::chunk_of(int64_t passage) const {
  return manifest_.chunks[chunk_index_[static_cast<size_t>(passage)]];
}

Tensor ContextRetriever::summary(const compress::StoredChunk& chunk) const {
  std::lock_guard<std::mutex> lock(shards_->mutex);
  auto it = shards_->files.find(chunk.shard);
  if (it == shards_->files.end())
    it = shards_->files.emplace(chunk.shard, load_safetensors((std::filesystem::path(dir_) / chunk.shard).string())).first;
  return compress::summary_from_shard(it->second, chunk, manifest_);
}

RetrievedContext ContextRetriever::assemble(const std::vector<std::pair<int64_t, double>>& ranked, int64_t max_vectors,
                                            const std::map<std::string, int64_t>& adapter_of_group) const {
  RetrievedContext ctx;
  std::map<std::string, int64_t> votes;
  std::vector<Tensor> parts;
  int64_t vectors = 0;
  for (const auto& [passage, score] : ranked) {
    const compress::StoredChunk& c = chunk_of(passage);
    if (max_vectors > 0 && vectors + c.vectors > max_vectors) {
      ctx.skipped.push_back(c.id);
      continue;
    }
    vectors += c.vectors;
    ctx.ids.push_back(c.id);
    ctx.scores.push_back(score);
    ++votes[passages_[static_cast<size_t>(passage)].group];
    parts.push_back(summary(c));
  }
  if (parts.empty()) return ctx;
  // Most hits wins; among equals, the group of the better-ranked hit (hits are best first).
  const std::string* best = nullptr;
  for (const auto& [passage, score] : ranked) {
    const std::string& g = passages_[static_cast<size_t>(passage)].group;
    if (votes.count(g) && (!best || votes[g] > votes[*best])) best = &g;
  }
  ctx.group = *best;
  const auto it = adapter_of_group.find(ctx.group);
  ctx.adapter = it == adapter_of_group.end() ? -1 : it->second;
  ctx.prefix = parts.size() == 1 ? parts[0] : concat(parts, 0);
  return ctx;
}

RetrievedContext ContextRetriever::retrieve(const std::string& question, const RetrieveOptions& o,
                                            const std::map<std::string, int64_t>& adapter_of_group) const {
  LLOCO_CHECK(o.k >= 0, "ContextRetriever", "k must be >= 0, got ", o.k);
  const std::set<std::string> docs(o.docs.begin(), o.docs.end());
  const bool filtered = !o.group.empty() || !docs.empty();
  // A filter is applied to the full ranking, so the k best admissible chunks are found.
  const std::vector<Hit> hits = ranker_->search(question, filtered ? ranker_->size() : o.k);
  std::vector<std::pair<int64_t, double>> ranked;
  for (const Hit& h : hits) {
    if (static_cast<int64_t>(ranked.size()) == o.k) break;
    const compress::StoredChunk& c = chunk_of(h.passage);
    if (!o.group.empty() && passages_[static_cast<size_t>(h.passage)].group != o.group) continue;
    if (!docs.empty() && !docs.count(c.doc)) continue;
    ranked.emplace_back(h.passage, h.score);
  }
  return assemble(ranked, o.max_vectors, adapter_of_group);
}

RetrievedContext ContextRetriever::documents(const std::vector<std::string>& doc_ids, int64_t max_vectors,
                                             const std::map<std::string, int64_t>& adapter_of_group) const {
  std::vector<std::pair<int64_t, double>> ranked;
  for (const std::string& doc : doc_ids) {
    const size_t before = ranked.size();
    for (size_t p = 0; p < passages_.size(); ++p)
      if (chunk_of(static_cast<int64_t>(p)).doc == doc) ranked.emplace_back(static_cast<int64_t>(p), 0.0);
    LLOCO_CHECK(ranked.size() > before, "ContextRetriever", dir_, ": no indexed chunk of document '", doc, "'");
    std::stable_sort(ranked.begin() + static_cast<std::ptrdiff_t>(before), ranked.end(),
                     [&](const auto& a, const auto& b) { return chunk_of(a.first).begin < chunk_of(b.first).begin; });
  }
  return assemble(ranked, max_vectors, adapter_of_group);
}

}  // namespace lloco::retrieve
