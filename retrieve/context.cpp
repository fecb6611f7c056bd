#include "retrieve/context.h"

#include <filesystem>
#include <set>

#include "core/error.h"
#include "core/ops.h"

namespace lloco::retrieve {

ContextRetriever::ContextRetriever(std::string store_dir, std::vector<Passage> passages, Bm25Options options)
    : dir_(std::move(store_dir)), passages_(std::move(passages)), index_(options) {
  manifest_ = compress::StoreManifest::read((std::filesystem::path(dir_) / "manifest.json").string());
  std::set<std::string> stored, seen;
  for (const compress::StoredDoc& d : manifest_.docs) stored.insert(d.id);
  for (const Passage& p : passages_) {
    LLOCO_CHECK(stored.count(p.id), "ContextRetriever", "passage '", p.id, "' is not in the store ", dir_);
    LLOCO_CHECK(seen.insert(p.id).second, "ContextRetriever", "passage '", p.id, "' is listed twice");
    index_.add(bm25_tokenize(p.text));
  }
}

RetrievedContext ContextRetriever::retrieve(const std::string& question, int64_t k,
                                            const std::map<std::string, int64_t>& adapter_of_group) const {
  RetrievedContext ctx;
  const std::vector<Hit> hits = index_.search(bm25_tokenize(question), k);
  if (hits.empty()) return ctx;
  std::map<std::string, int64_t> votes;
  std::vector<Tensor> parts;
  for (const Hit& h : hits) {
    const Passage& p = passages_[static_cast<size_t>(h.passage)];
    ctx.ids.push_back(p.id);
    ctx.scores.push_back(h.score);
    ++votes[p.group];
    parts.push_back(compress::load_summary(dir_, manifest_, p.id));
  }
  // Most hits wins; among equals, the group of the better-ranked hit (hits are best first).
  const std::string* best = nullptr;
  for (const Hit& h : hits) {
    const std::string& g = passages_[static_cast<size_t>(h.passage)].group;
    if (!best || votes[g] > votes[*best]) best = &g;
  }
  ctx.group = *best;
  const auto it = adapter_of_group.find(ctx.group);
  ctx.adapter = it == adapter_of_group.end() ? -1 : it->second;
  ctx.prefix = parts.size() == 1 ? parts[0] : concat(parts, 0);
  return ctx;
}

}  // namespace lloco::retrieve
