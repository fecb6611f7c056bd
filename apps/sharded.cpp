#include "apps/sharded.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include "compress/store_merge.h"

namespace lloco::apps {

namespace fs = std::filesystem;

namespace {

// Rank stores under DIR/ranks that hold a manifest (finished or partial shares).
std::vector<std::string> rank_stores(const std::string& dir) {
  std::vector<std::string> dirs;
  const fs::path ranks = fs::path(dir) / "ranks";
  if (!fs::is_directory(ranks)) return dirs;
  for (const auto& e : fs::directory_iterator(ranks))
    if (fs::exists(e.path() / "manifest.json")) dirs.push_back(e.path().string());
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

void merge_rank_stores(const std::string& dir, bool quiet) {
  const std::vector<std::string> parts = rank_stores(dir);
  if (parts.empty()) return;
  compress::MergeOptions mo;
  mo.move = true;
  mo.quiet = quiet;
  compress::merge_stores(parts, dir, mo);
  std::error_code ec;
  fs::remove(fs::path(dir) / "ranks", ec);  // only when empty: unlisted leftovers stay for the next run
}

}  // namespace

std::vector<size_t> balanced_share(const std::vector<size_t>& sizes, int rank, int world) {
  std::vector<size_t> order(sizes.size()), mine;
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::vector<size_t> load(static_cast<size_t>(world), 0);
  for (size_t i : order) {
    const auto r = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    load[r] += sizes[i];
    if (static_cast<int>(r) == rank) mine.push_back(i);
  }
  std::sort(mine.begin(), mine.end());
  return mine;
}

compress::StoreManifest compress_sharded(Communicator& comm, const compress::AutoCompressor& encoder,
                                         std::vector<compress::TokenizedDoc> docs, const std::string& dir,
                                         const compress::CorpusOptions& options,
                                         const std::function<std::vector<int32_t>(const std::string&)>& tokenize) {
  const int rank = comm.rank(), world = comm.world_size();
  if (world > 1) {
    if (rank == 0) merge_rank_stores(dir, options.quiet);  // an earlier run's shares, made with any rank count
    comm.barrier();
  }
  const std::set<std::string> stored = compress::stored_ids(dir);
  std::erase_if(docs, [&](const compress::TokenizedDoc& d) { return stored.count(d.id) > 0; });
  std::vector<size_t> sizes;
  for (const compress::TokenizedDoc& d : docs) sizes.push_back(d.ids.empty() ? d.text.size() : d.ids.size());
  std::vector<compress::TokenizedDoc> share;
  for (size_t i : balanced_share(sizes, rank, world)) {
    compress::TokenizedDoc& d = docs[i];
    if (d.ids.empty() && tokenize) d.ids = tokenize(d.text);
    share.push_back(std::move(d));
  }
  if (world == 1) return compress::compress_corpus(encoder, share, dir, options);
  if (docs.empty()) {  // nothing left anywhere: rank 0 checks (or creates) the store alone
    if (rank == 0) compress::compress_corpus(encoder, {}, dir, options);
    comm.barrier();
    return compress::read_store(dir);
  }
  if (!share.empty()) compress::compress_corpus(encoder, share, compress::rank_store_dir(dir, rank), options);
  comm.barrier();
  if (rank == 0) merge_rank_stores(dir, options.quiet);
  comm.barrier();  // every rank reads the whole store from here on
  return compress::read_store(dir);
}

}  // namespace lloco::apps
