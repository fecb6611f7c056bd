#include "compress/store.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace lloco::compress {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kManifest = "manifest.json";

std::string shard_name(size_t index) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "summaries-%05zu.safetensors", index);
  return buf;
}

template <typename T>
T required(const json& j, const char* field, const std::string& path) {
  LLOCO_CHECK(j.contains(field), "StoreManifest", path, ": missing field '", field, "'");
  try {
    return j[field].get<T>();
  } catch (const json::exception&) {
    LLOCO_FAIL("StoreManifest", path, ": field '", field, "' has the wrong type: ", j[field].dump());
  }
}

}  // namespace

StoreManifest StoreManifest::read(const std::string& path) {
  std::ifstream f(path);
  LLOCO_CHECK(f.good(), "StoreManifest", path, ": cannot open");
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    LLOCO_FAIL("StoreManifest", path, ": invalid JSON: ", e.what());
  }
  LLOCO_CHECK(j.is_object(), "StoreManifest", path, ": the top level must be an object");
  const int version = required<int>(j, "schema_version", path);
  LLOCO_CHECK(version == kSchemaVersion, "StoreManifest", path, ": schema_version ", version, ", this build reads ",
              kSchemaVersion);
  StoreManifest m;
  m.encoder = required<std::string>(j, "encoder", path);
  m.summary_length = required<int64_t>(j, "summary_length", path);
  m.segment_length = required<int64_t>(j, "segment_length", path);
  m.hidden_size = required<int64_t>(j, "hidden_size", path);
  m.accumulate_summary = required<bool>(j, "accumulate_summary", path);
  m.summarize_last_segment = required<bool>(j, "summarize_last_segment", path);
  m.dtype = required<std::string>(j, "dtype", path);
  LLOCO_CHECK(j.contains("docs") && j["docs"].is_array(), "StoreManifest", path, ": field 'docs' must be a list");
  for (const json& d : j["docs"]) {
    LLOCO_CHECK(d.is_object(), "StoreManifest", path, ": a 'docs' entry is not an object: ", d.dump());
    m.docs.push_back(StoredDoc{required<std::string>(d, "id", path), required<int64_t>(d, "tokens", path),
                               required<int64_t>(d, "vectors", path), required<std::string>(d, "shard", path)});
  }
  return m;
}

std::string StoreManifest::to_json() const {
  json docs_j = json::array();
  for (const StoredDoc& d : docs)
    docs_j.push_back({{"id", d.id}, {"tokens", d.tokens}, {"vectors", d.vectors}, {"shard", d.shard}});
  const json j = {{"schema_version", kSchemaVersion},
                  {"encoder", encoder},
                  {"summary_length", summary_length},
                  {"segment_length", segment_length},
                  {"hidden_size", hidden_size},
                  {"accumulate_summary", accumulate_summary},
                  {"summarize_last_segment", summarize_last_segment},
                  {"dtype", dtype},
                  {"docs", docs_j}};
  return j.dump(1) + "\n";
}

StoreManifest compress_corpus(const AutoCompressor& encoder, const std::vector<TokenizedDoc>& docs,
                              const std::string& dir, const CorpusOptions& o) {
  const char* op = "compress_corpus";
  LLOCO_CHECK(o.docs_per_shard >= 1, op, "docs_per_shard must be >= 1, got ", o.docs_per_shard);
  std::set<std::string> ids;
  for (const TokenizedDoc& d : docs) LLOCO_CHECK(ids.insert(d.id).second, op, "document id '", d.id, "' repeats");

  StoreManifest want;
  want.encoder = o.encoder_name;
  want.summary_length = encoder.summary_length();
  want.segment_length = o.compress.segment_length;
  want.hidden_size = encoder.model().config.hidden_size;
  want.accumulate_summary = encoder.accumulate_summary();
  want.summarize_last_segment = o.compress.summarize_last_segment;
  want.dtype = dtype_name(encoder.embed_summary().dtype());

  fs::create_directories(dir);
  const std::string manifest_path = (fs::path(dir) / kManifest).string();
  StoreManifest m = want;
  if (fs::exists(manifest_path)) {
    m = StoreManifest::read(manifest_path);
    auto same = [&](const char* field, const auto& have, const auto& need) {
      LLOCO_CHECK(have == need, op, manifest_path, ": field '", field, "' is ", have, " but this run has ", need,
                  " (use another directory or the same settings)");
    };
    same("encoder", m.encoder, want.encoder);
    same("summary_length", m.summary_length, want.summary_length);
    same("segment_length", m.segment_length, want.segment_length);
    same("hidden_size", m.hidden_size, want.hidden_size);
    same("accumulate_summary", m.accumulate_summary, want.accumulate_summary);
    same("summarize_last_segment", m.summarize_last_segment, want.summarize_last_segment);
    same("dtype", m.dtype, want.dtype);
  }
  std::set<std::string> done;
  std::set<std::string> shards;
  for (const StoredDoc& d : m.docs) {
    done.insert(d.id);
    shards.insert(d.shard);
  }
  std::vector<const TokenizedDoc*> todo;
  int64_t todo_tokens = 0;
  for (const TokenizedDoc& d : docs)
    if (!done.count(d.id)) {
      todo.push_back(&d);
      todo_tokens += static_cast<int64_t>(d.ids.size());
    }
  if (!o.quiet && !done.empty())
    std::fprintf(stderr, "%s: %zu documents already compressed, %zu to go\n", dir.c_str(), done.size(), todo.size());

  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_done = 0;
  std::vector<std::pair<std::string, Tensor>> pending;
  std::vector<StoredDoc> pending_docs;
  auto flush = [&] {
    if (pending.empty()) return;
    const std::string shard = shard_name(shards.size());
    save_safetensors((fs::path(dir) / shard).string(), pending, {{"format", "lloco-summaries-1"}});
    shards.insert(shard);
    for (StoredDoc& d : pending_docs) {
      d.shard = shard;
      m.docs.push_back(d);
    }
    write_file_atomic(manifest_path, m.to_json());
    pending.clear();
    pending_docs.clear();
  };
  for (size_t i = 0; i < todo.size(); ++i) {
    const TokenizedDoc& d = *todo[i];
    const Tensor s = encoder.compress(d.ids, o.compress);
    pending.emplace_back(d.id, s);
    pending_docs.push_back(StoredDoc{d.id, static_cast<int64_t>(d.ids.size()), s.size(0), ""});
    tokens_done += static_cast<int64_t>(d.ids.size());
    if (static_cast<int64_t>(pending.size()) == o.docs_per_shard) flush();
    if (!o.quiet) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tok_s = secs > 0 ? tokens_done / secs : 0;
      std::fprintf(stderr, "\rcompressed %zu/%zu documents  %.0f tokens/s  ETA %.0f s   ", i + 1, todo.size(), tok_s,
                   tok_s > 0 ? (todo_tokens - tokens_done) / tok_s : 0.0);
    }
  }
  flush();
  if (!o.quiet && !todo.empty()) std::fprintf(stderr, "\n");
  if (!fs::exists(manifest_path)) write_file_atomic(manifest_path, m.to_json());  // an empty corpus
  return m;
}

std::set<std::string> stored_ids(const std::string& dir) {
  std::set<std::string> ids;
  const fs::path manifest = fs::path(dir) / kManifest;
  if (fs::exists(manifest))
    for (const StoredDoc& d : StoreManifest::read(manifest.string()).docs) ids.insert(d.id);
  return ids;
}

Tensor load_summary(const std::string& dir, const StoreManifest& manifest, const std::string& id) {
  for (const StoredDoc& d : manifest.docs)
    if (d.id == id) {
      const Tensor t = load_safetensors((fs::path(dir) / d.shard).string()).get(id);
      LLOCO_CHECK(t.dim() == 2 && t.size(0) == d.vectors && t.size(1) == manifest.hidden_size, "load_summary",
                  (fs::path(dir) / d.shard).string(), ": '", id, "' has shape ", shape_str(t.shape()),
                  ", the manifest says [", d.vectors, ", ", manifest.hidden_size, "]");
      return t;
    }
  LLOCO_FAIL("load_summary", dir, ": no document '", id, "' in the manifest");
}

}  // namespace lloco::compress
