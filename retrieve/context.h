// LLoCO's serving-side retrieval: BM25 over the passages of a compressed store picks the top-k for a
// question; their summary vectors, concatenated best first, become the decoder's prefix, and the
// hits' document group chooses the LoRA adapter (LLoCO assumes one group per query; with a mixed
// top-k the group holding most hits wins, ties going to the better-ranked hit).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compress/store.h"
#include "core/tensor.h"
#include "retrieve/bm25.h"

namespace lloco::retrieve {

struct Passage {
  std::string id;     // the store's document id
  std::string text;   // what BM25 indexes
  std::string group;  // document group (one adapter per group)
};

struct RetrievedContext {
  Tensor prefix;                  // [sum of the hits' vectors, D], best hit first
  std::vector<std::string> ids;   // the hits, best first
  std::vector<double> scores;
  std::string group;              // the chosen group ("" when nothing matched)
  int64_t adapter = -1;           // adapter_of_group[group], -1 when the group has none
};

class ContextRetriever {
 public:
  // Every passage must be in the store's manifest (errors name the id and the store).
  ContextRetriever(std::string store_dir, std::vector<Passage> passages, Bm25Options options = {});

  RetrievedContext retrieve(const std::string& question, int64_t k,
                            const std::map<std::string, int64_t>& adapter_of_group) const;
  const compress::StoreManifest& manifest() const { return manifest_; }

 private:
  std::string dir_;
  compress::StoreManifest manifest_;
  std::vector<Passage> passages_;
  Bm25Index index_;
};

}  // namespace lloco::retrieve
