// The offline half of LLoCO: a corpus compressed into a store directory.
//   manifest.json             schema version, encoder, summary/segment lengths, dtype, and per
//                             document: id, token count, vector count, shard file
//   summaries-NNNNN.safetensors  the documents' summary vectors, one [vectors, D] tensor per id
// Shards and the manifest are each written atomically, the manifest after its shard, so a run that
// stops anywhere resumes from the documents the manifest lists (a shard it does not list is
// rewritten). The retrieval index and group/adapter metadata go on top of this (retrieve/).
#pragma once
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "compress/autocompressor.h"

namespace lloco::compress {

struct StoredDoc {
  std::string id;
  int64_t tokens = 0, vectors = 0;
  std::string shard;  // file name inside the store
};

struct StoreManifest {
  static constexpr int kSchemaVersion = 1;
  std::string encoder;  // what the caller named the encoder (its directory)
  int64_t summary_length = 0, segment_length = 0, hidden_size = 0;
  bool accumulate_summary = true, summarize_last_segment = true;
  std::string dtype;
  std::vector<StoredDoc> docs;

  // Errors name the file and the field; an unknown schema_version is rejected.
  static StoreManifest read(const std::string& path);
  std::string to_json() const;
};

struct TokenizedDoc {
  std::string id;
  std::vector<int32_t> ids;
};

struct CorpusOptions {
  CompressOptions compress;
  std::string encoder_name;     // recorded in the manifest; a resumed run must match it
  int64_t docs_per_shard = 64;
  bool quiet = false;           // progress lines (docs, tokens/s, ETA) on stderr otherwise
};

// Compresses `docs` into `dir` (created if needed), skipping documents its manifest already lists;
// a manifest written with other settings is an error naming the field. Duplicate ids are an error.
StoreManifest compress_corpus(const AutoCompressor& encoder, const std::vector<TokenizedDoc>& docs,
                              const std::string& dir, const CorpusOptions& options);

// Ids of the documents the store in `dir` already holds (none when it has no manifest yet): callers
// skip tokenizing those when a run resumes.
std::set<std::string> stored_ids(const std::string& dir);

// The summary vectors [vectors, D] of document `id` of the store in `dir`.
Tensor load_summary(const std::string& dir, const StoreManifest& manifest, const std::string& id);

}  // namespace lloco::compress
