#include "compress/store.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/safetensors.h"
#include "compress/manifest_json.h"

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

uint64_t fnv1a(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

uint64_t fnv1a_tensor(uint64_t h, const Tensor& t) {
  const Tensor host = t.to(cpu()).contiguous();
  return fnv1a(h, host.data_ptr(), host.nbytes());
}

// The documents' chunks: whole documents, or spans of chunk_tokens tokens.
std::vector<StoredChunk> plan_chunks(const TokenizedDoc& d, int64_t chunk_tokens) {
  const auto n = static_cast<int64_t>(d.ids.size());
  if (chunk_tokens <= 0) return {StoredChunk{d.id, d.id, d.group, 0, n, 0, ""}};
  std::vector<StoredChunk> chunks;
  for (int64_t b = 0, k = 0; b < n || (n == 0 && k == 0); b += chunk_tokens, ++k)
    chunks.push_back(StoredChunk{d.id + "#" + std::to_string(k), d.id, d.group, b, std::min(n, b + chunk_tokens), 0, ""});
  return chunks;
}

}  // namespace

StoreManifest StoreManifest::read(const std::string& path) {
  return manifest_from_json(read_json_file(path, "StoreManifest"), path);
}

std::string StoreManifest::to_json() const { return manifest_to_json(*this).dump(1) + "\n"; }

const StoredChunk& StoreManifest::chunk(const std::string& id) const {
  for (const StoredChunk& c : chunks)
    if (c.id == id) return c;
  LLOCO_FAIL("StoreManifest", "no chunk '", id, "' in the store of encoder ", encoder);
}

std::string encoder_fingerprint(const AutoCompressor& encoder) {
  const models::LlamaConfig& c = encoder.model().config;
  const int64_t shape[] = {c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads,
                           c.intermediate_size, c.vocab_size, encoder.summary_length()};
  uint64_t h = fnv1a(1469598103934665603ull, shape, sizeof(shape));
  h = fnv1a_tensor(h, encoder.embed_summary());
  h = fnv1a_tensor(h, encoder.model().norm);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

StoreManifest compress_corpus(const AutoCompressor& encoder, const std::vector<TokenizedDoc>& docs,
                              const std::string& dir, const CorpusOptions& o) {
  const char* op = "compress_corpus";
  LLOCO_CHECK(o.docs_per_shard >= 1, op, "docs_per_shard must be >= 1, got ", o.docs_per_shard);
  LLOCO_CHECK(o.chunk_tokens >= 0, op, "chunk_tokens must be >= 0, got ", o.chunk_tokens);
  std::set<std::string> ids;
  for (const TokenizedDoc& d : docs) LLOCO_CHECK(ids.insert(d.id).second, op, "document id '", d.id, "' repeats");

  StoreManifest want;
  want.encoder = o.encoder_name;
  want.encoder_fingerprint = encoder_fingerprint(encoder);
  want.summary_length = encoder.summary_length();
  want.segment_length = o.compress.segment_length;
  want.hidden_size = encoder.model().config.hidden_size;
  want.chunk_tokens = o.chunk_tokens;
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
    if (!m.encoder_fingerprint.empty()) same("encoder_fingerprint", m.encoder_fingerprint, want.encoder_fingerprint);
    m.encoder_fingerprint = want.encoder_fingerprint;  // a version-1 store learns it
    same("summary_length", m.summary_length, want.summary_length);
    same("segment_length", m.segment_length, want.segment_length);
    same("hidden_size", m.hidden_size, want.hidden_size);
    same("chunk_tokens", m.chunk_tokens, want.chunk_tokens);
    same("accumulate_summary", m.accumulate_summary, want.accumulate_summary);
    same("summarize_last_segment", m.summarize_last_segment, want.summarize_last_segment);
    same("dtype", m.dtype, want.dtype);
  }
  std::map<std::string, std::string> done;  // document -> its stored group
  std::set<std::string> shards;
  for (const StoredChunk& c : m.chunks) {
    done[c.doc] = c.group;
    shards.insert(c.shard);
  }
  std::vector<const TokenizedDoc*> todo;
  int64_t todo_tokens = 0;
  for (const TokenizedDoc& d : docs) {
    const auto it = done.find(d.id);
    if (it != done.end()) {
      LLOCO_CHECK(it->second == d.group, op, manifest_path, ": document '", d.id, "' is stored in group '", it->second,
                  "' but this run puts it in '", d.group, "'");
      continue;
    }
    todo.push_back(&d);
    todo_tokens += static_cast<int64_t>(d.ids.size());
  }
  if (!o.quiet && !done.empty())
    std::fprintf(stderr, "%s: %zu documents already compressed, %zu to go\n", dir.c_str(), done.size(), todo.size());

  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens_done = 0;
  size_t pending_docs = 0;
  std::vector<std::pair<std::string, Tensor>> pending;
  std::vector<StoredChunk> pending_chunks;
  std::string pending_texts;  // texts-NNNNN.jsonl lines
  auto flush = [&] {
    if (pending.empty()) return;
    const std::string shard = shard_name(shards.size());
    // Texts and vectors first, the manifest that lists them last.
    const fs::path texts = fs::path(dir) / texts_file_of(shard);
    if (!pending_texts.empty()) write_file_atomic(texts.string(), pending_texts);
    else fs::remove(texts);  // left by a run that stopped before listing its shard
    save_safetensors((fs::path(dir) / shard).string(), pending, {{"format", "lloco-summaries-1"}});
    shards.insert(shard);
    for (StoredChunk& c : pending_chunks) {
      c.shard = shard;
      if (!c.group.empty() && !m.groups.count(c.group)) m.groups[c.group] = GroupInfo{"", o.group_dataset};
      m.chunks.push_back(c);
    }
    write_file_atomic(manifest_path, m.to_json());
    pending.clear();
    pending_chunks.clear();
    pending_texts.clear();
    pending_docs = 0;
  };
  for (size_t i = 0; i < todo.size(); ++i) {
    const TokenizedDoc& d = *todo[i];
    for (StoredChunk& c : plan_chunks(d, o.chunk_tokens)) {
      const std::vector<int32_t> span(d.ids.begin() + c.begin, d.ids.begin() + c.end);
      const Tensor s = encoder.compress(span, o.compress);
      c.vectors = s.size(0);
      const std::string text = o.chunk_tokens <= 0 ? d.text : (o.decode ? o.decode(span) : "");
      if (!text.empty()) pending_texts += json{{"id", c.id}, {"text", text}}.dump() + "\n";
      pending.emplace_back(c.id, s);
      pending_chunks.push_back(std::move(c));
    }
    tokens_done += static_cast<int64_t>(d.ids.size());
    if (static_cast<int64_t>(++pending_docs) == o.docs_per_shard) flush();
    if (!o.quiet) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double tok_s = secs > 0 ? tokens_done / secs : 0;
      std::fprintf(stderr, "\rcompressed %zu/%zu documents  %.0f tokens/s  ETA %.0f s   ", i + 1, todo.size(), tok_s,
                   tok_s > 0 ? (todo_tokens - tokens_done) / tok_s : 0.0);
    }
  }
  flush();
  if (!o.quiet && !todo.empty()) std::fprintf(stderr, "\n");
  if (!fs::exists(manifest_path) || todo.empty()) write_file_atomic(manifest_path, m.to_json());
  return m;
}

StoreManifest read_store(const std::string& dir) { return StoreManifest::read((fs::path(dir) / kManifest).string()); }

std::set<std::string> stored_ids(const std::string& dir) {
  std::set<std::string> ids;
  if (fs::exists(fs::path(dir) / kManifest))
    for (const StoredChunk& c : read_store(dir).chunks) ids.insert(c.doc);
  return ids;
}

void register_adapter(const std::string& dir, const std::string& group, const std::string& adapter_dir) {
  const std::string manifest_path = (fs::path(dir) / kManifest).string();
  StoreManifest m = StoreManifest::read(manifest_path);
  const auto it = m.groups.find(group);
  if (it == m.groups.end()) {
    std::string have;
    for (const auto& [name, info] : m.groups) have += (have.empty() ? "'" : ", '") + name + "'";
    LLOCO_FAIL("register_adapter", manifest_path, ": no group '", group, "' (the store has ",
               have.empty() ? "none" : have, ")");
  }
  it->second.adapter = fs::weakly_canonical(fs::absolute(adapter_dir)).string();
  write_file_atomic(manifest_path, m.to_json());
}

Tensor summary_from_shard(const SafetensorsFile& shard, const StoredChunk& c, const StoreManifest& manifest) {
  const Tensor t = shard.get(c.id);
  LLOCO_CHECK(t.dim() == 2 && t.size(0) == c.vectors && t.size(1) == manifest.hidden_size, "load_summary",
              shard.path(), ": '", c.id, "' has shape ", shape_str(t.shape()), ", the manifest says [", c.vectors,
              ", ", manifest.hidden_size, "]");
  return t;
}

Tensor load_summary(const std::string& dir, const StoreManifest& manifest, const std::string& id) {
  const StoredChunk& c = manifest.chunk(id);
  return summary_from_shard(load_safetensors((fs::path(dir) / c.shard).string()), c, manifest);
}

Tensor load_document_summary(const std::string& dir, const StoreManifest& manifest, const std::string& doc) {
  std::vector<const StoredChunk*> chunks;
  for (const StoredChunk& c : manifest.chunks)
    if (c.doc == doc) chunks.push_back(&c);
  LLOCO_CHECK(!chunks.empty(), "load_document_summary", dir, ": no document '", doc, "' in the manifest");
  std::stable_sort(chunks.begin(), chunks.end(), [](const StoredChunk* a, const StoredChunk* b) { return a->begin < b->begin; });
  std::map<std::string, SafetensorsFile> shards;  // a document's chunks usually share one shard: map it once
  std::vector<Tensor> parts;
  for (const StoredChunk* c : chunks) {
    auto it = shards.find(c->shard);
    if (it == shards.end()) it = shards.emplace(c->shard, load_safetensors((fs::path(dir) / c->shard).string())).first;
    parts.push_back(summary_from_shard(it->second, *c, manifest));
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

std::map<std::string, std::string> load_chunk_texts(const std::string& dir, const StoreManifest& manifest) {
  std::map<std::string, std::set<std::string>> ids_of_shard;
  for (const StoredChunk& c : manifest.chunks) ids_of_shard[c.shard].insert(c.id);
  std::map<std::string, std::string> texts;
  for (const auto& [shard, ids] : ids_of_shard) {
    const fs::path path = fs::path(dir) / texts_file_of(shard);
    if (!fs::exists(path)) continue;
    std::ifstream f(path);
    std::string line;
    for (size_t line_no = 1; std::getline(f, line); ++line_no) {
      if (line.empty()) continue;
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception& e) {
        LLOCO_FAIL("load_chunk_texts", path.string(), ":", line_no, ": invalid JSON: ", e.what());
      }
      LLOCO_CHECK(j.is_object() && j.contains("id") && j["id"].is_string() && j.contains("text") &&
                      j["text"].is_string(),
                  "load_chunk_texts", path.string(), ":", line_no, ": expected {\"id\": string, \"text\": string}");
      const std::string id = j["id"].get<std::string>();
      if (ids.count(id)) texts[id] = j["text"].get<std::string>();  // lines of an unlisted rewrite are ignored
    }
  }
  return texts;
}

}  // namespace lloco::compress
