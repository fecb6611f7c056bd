// LLoCO's serving-side retrieval: a ranker (BM25, or a dense encoder whose chunk keys are cached in
// the store, see dense.h) over the chunks of a compressed store picks the top-k for a question; their summary vectors, concatenated best first, become the decoder's prefix, and the
// hits' group chooses the LoRA adapter (LLoCO assumes one group per query; with a mixed top-k the
// group holding most hits wins, ties going to the better-ranked hit). A request may instead name
// its documents, or restrict retrieval to one group or to some documents.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "compress/store.h"
#include "core/safetensors.h"
#include "core/tensor.h"
#include "retrieve/bm25.h"
#include "retrieve/ranker.h"

namespace lloco::retrieve {

struct Passage {
  std::string id;     // the store's chunk id
  std::string text;   // what the ranker indexes
  std::string group;  // document group (one adapter per group)
};

struct RetrieveOptions {
  int64_t k = 5;
  int64_t max_vectors = 0;        // > 0: hits that would push the prefix past this are skipped
  std::string group;              // "" = any group, else only this group's chunks
  std::vector<std::string> docs;  // non-empty: only chunks of these documents
};

struct RetrievedContext {
  Tensor prefix;                  // [sum of the hits' vectors, D], best hit first
  std::vector<std::string> ids;   // the chunks used, best first
  std::vector<double> scores;     // their ranker scores (0 for chunks named by the caller)
  std::vector<std::string> skipped;  // hits left out by max_vectors
  std::string group;              // the chosen group ("" when nothing matched)
  int64_t adapter = -1;           // adapter_of_group[group], -1 when the group has none
};

class ContextRetriever {
 public:
  // Every passage must be a chunk of the store (errors name the id and the store).
  ContextRetriever(std::string store_dir, std::vector<Passage> passages, Bm25Options options = {});
  // Any ranker over the passages, in their order (its size must match).
  ContextRetriever(std::string store_dir, std::vector<Passage> passages, std::unique_ptr<const PassageRanker> ranker);
  // The store's own chunk texts and groups (written by compress_corpus); a chunk without text is an
  // error naming it, since it could never be retrieved.
  static ContextRetriever from_store(const std::string& store_dir, Bm25Options options = {});
  // Every chunk of the store with its text and group, in manifest order.
  static std::vector<Passage> store_passages(const std::string& store_dir);

  RetrievedContext retrieve(const std::string& question, const RetrieveOptions& options,
                            const std::map<std::string, int64_t>& adapter_of_group = {}) const;
  RetrievedContext retrieve(const std::string& question, int64_t k,
                            const std::map<std::string, int64_t>& adapter_of_group) const {
    RetrieveOptions o;
    o.k = k;
    return retrieve(question, o, adapter_of_group);
  }
  // Every chunk of the named documents, in document order and span order (no retrieval).
  RetrievedContext documents(const std::vector<std::string>& doc_ids, int64_t max_vectors = 0,
                             const std::map<std::string, int64_t>& adapter_of_group = {}) const;

  const compress::StoreManifest& manifest() const { return manifest_; }
  const std::string& store_dir() const { return dir_; }

 private:
  const compress::StoredChunk& chunk_of(int64_t passage) const;
  // Summary vectors of a chunk; each shard is mapped once and kept.
  Tensor summary(const compress::StoredChunk& chunk) const;
  RetrievedContext assemble(const std::vector<std::pair<int64_t, double>>& ranked, int64_t max_vectors,
                            const std::map<std::string, int64_t>& adapter_of_group) const;

  std::string dir_;
  compress::StoreManifest manifest_;
  std::vector<Passage> passages_;
  std::vector<size_t> chunk_index_;  // passage -> manifest_.chunks index
  std::unique_ptr<const PassageRanker> ranker_;
  struct ShardCache {  // behind a pointer so that the retriever stays movable
    std::mutex mutex;
    std::map<std::string, SafetensorsFile> files;
  };
  std::unique_ptr<ShardCache> shards_ = std::make_unique<ShardCache>();
};

}  // namespace lloco::retrieve
