// JSON in the compress layer: reading a JSON file, and the store manifest's JSON form
// (compress/store.h describes the store). Schema 2:
//   {"schema_version": 2, "encoder", "encoder_fingerprint", "summary_length", "segment_length",
//    "hidden_size", "chunk_tokens", "accumulate_summary", "summarize_last_segment", "dtype",
//    "groups": {name: {"adapter", "dataset"}},
//    "chunks": [{"id", "doc", "group", "span": [begin, end], "vectors", "shard"}]}
// Schema 1 (whole documents, no groups: "docs": [{"id", "tokens", "vectors", "shard"}]) is read as
// one ungrouped chunk per document.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "compress/store.h"

namespace lloco::compress {

// The JSON document in `path`; a missing file or invalid JSON throws naming `op` and the path.
nlohmann::json read_json_file(const std::string& path, const char* op);

// Errors name `path` and the field; shard names must be plain file names inside the store.
StoreManifest manifest_from_json(const nlohmann::json& j, const std::string& path);
nlohmann::json manifest_to_json(const StoreManifest& m);

// texts-NNNNN.jsonl for summaries-NNNNN.safetensors.
std::string texts_file_of(const std::string& shard);

}  // namespace lloco::compress
