// The offline half of LLoCO: a corpus compressed into a store directory.
//   manifest.json                schema version, the encoder (path and weight fingerprint), the
//                                compression settings, the groups (one LoRA adapter each), and per
//                                chunk: id, source document, group, token span, vector count, shard
//   summaries-NNNNN.safetensors  the chunks' summary vectors, one [vectors, D] tensor per chunk id
//   texts-NNNNN.jsonl            the chunks' texts ({"id", "text"} lines), what retrievers index
// A chunk is a whole document (chunk_tokens 0, LLoCO's evaluation setting) or a span of
// chunk_tokens tokens of one, compressed on its own (the RAG setting of LLoCO's serving design).
// Each file is written atomically and the manifest last, so a run that stops anywhere resumes from
// the documents the manifest lists (files it does not list are rewritten).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "compress/autocompressor.h"
#include "core/safetensors.h"

namespace lloco::compress {

struct StoredChunk {
  std::string id;     // "<doc>" for whole documents, "<doc>#<k>" for the k-th chunk of one
  std::string doc;    // the source document
  std::string group;  // the document group ("" = none); one adapter per group
  int64_t begin = 0, end = 0;  // token span [begin, end) in the document's encoder tokens
  int64_t vectors = 0;
  std::string shard;  // file name inside the store
  int64_t tokens() const { return end - begin; }
};

struct GroupInfo {
  std::string adapter;  // PEFT adapter directory trained for the group ("" = none yet)
  std::string dataset;  // what prompt template serves it (eval::prompt_kind_for), "" = generic
};

struct StoreManifest {
  static constexpr int kSchemaVersion = 2;  // version 1 (whole documents, no groups) is still read
  std::string encoder;              // the encoder's directory (canonical path)
  std::string encoder_fingerprint;  // hash of its summary table and final norm (encoder_fingerprint())
  int64_t summary_length = 0, segment_length = 0, hidden_size = 0, chunk_tokens = 0;
  bool accumulate_summary = true, summarize_last_segment = true;
  std::string dtype;
  std::map<std::string, GroupInfo> groups;
  std::vector<StoredChunk> chunks;

  // Errors name the file and the field; an unknown schema_version is rejected.
  static StoreManifest read(const std::string& path);
  std::string to_json() const;
  const StoredChunk& chunk(const std::string& id) const;  // throws naming the id
};

struct TokenizedDoc {
  std::string id;
  std::vector<int32_t> ids;
  std::string group;  // "" = none
  std::string text;   // what retrievers index for a whole-document chunk ("" = no text)
};

struct CorpusOptions {
  CompressOptions compress;
  std::string encoder_name;     // recorded in the manifest; a resumed run must match it
  int64_t chunk_tokens = 0;     // 0: one chunk per document; a resumed run must match it
  // Text of a chunk's tokens, for chunked documents (unset: chunks get no text).
  std::function<std::string(const std::vector<int32_t>&)> decode;
  std::string group_dataset;    // GroupInfo::dataset for groups this run creates
  int64_t docs_per_shard = 64;
  bool quiet = false;           // progress lines (docs, tokens/s, ETA) on stderr otherwise
};

// FNV-1a over the encoder's config, summary-token table and final norm: other weights at the same
// path are a different encoder, and a resumed run refuses them.
std::string encoder_fingerprint(const AutoCompressor& encoder);

// Compresses `docs` into `dir` (created if needed), skipping documents its manifest already lists;
// a manifest written with other settings, or a stored document given another group, is an error
// naming the field and both values. Duplicate ids are an error.
StoreManifest compress_corpus(const AutoCompressor& encoder, const std::vector<TokenizedDoc>& docs,
                              const std::string& dir, const CorpusOptions& options);

// Ids of the documents the store in `dir` already holds (none when it has no manifest yet): callers
// skip tokenizing those when a run resumes.
std::set<std::string> stored_ids(const std::string& dir);

// The store's manifest (dir/manifest.json).
StoreManifest read_store(const std::string& dir);

// Records `adapter_dir` (made canonical) as the adapter of `group`, rewriting the manifest
// atomically. The group must hold chunks (the error lists the groups).
void register_adapter(const std::string& dir, const std::string& group, const std::string& adapter_dir);

// The summary vectors [vectors, D] of chunk `id` of the store in `dir`.
Tensor load_summary(const std::string& dir, const StoreManifest& manifest, const std::string& id);

// Chunk c's vectors from its already mapped shard file, checked against the manifest (for callers
// that keep shards mapped).
Tensor summary_from_shard(const SafetensorsFile& shard, const StoredChunk& c, const StoreManifest& manifest);

// A document's summary vectors: its chunks' vectors concatenated in span order (for a store of whole
// documents, the one chunk). Errors name the document and the store.
Tensor load_document_summary(const std::string& dir, const StoreManifest& manifest, const std::string& doc);

// Every chunk's text (chunk id -> text); chunks stored without text are absent.
std::map<std::string, std::string> load_chunk_texts(const std::string& dir, const StoreManifest& manifest);

}  // namespace lloco::compress
