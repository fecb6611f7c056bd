#include "compress/manifest_json.h"

#include <fstream>
#include <set>

#include "core/error.h"

namespace lloco::compress {

using json = nlohmann::json;

namespace {

template <typename T>
T required(const json& j, const char* field, const std::string& path) {
  LLOCO_CHECK(j.contains(field), "StoreManifest", path, ": missing field '", field, "'");
  try {
    return j[field].get<T>();
  } catch (const json::exception&) {
    LLOCO_FAIL("StoreManifest", path, ": field '", field, "' has the wrong type: ", j[field].dump());
  }
}

const json& required_list(const json& j, const char* field, const std::string& path) {
  LLOCO_CHECK(j.contains(field) && j[field].is_array(), "StoreManifest", path, ": field '", field, "' must be a list");
  return j[field];
}

// A shard is read from inside the store: a name with a directory part would escape it.
std::string shard_field(const json& c, const std::string& path) {
  const std::string shard = required<std::string>(c, "shard", path);
  LLOCO_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..",
              "StoreManifest", path, ": shard '", shard, "' is not a file name inside the store");
  return shard;
}

void read_chunks_v1(const json& j, const std::string& path, StoreManifest& m) {
  for (const json& d : required_list(j, "docs", path)) {
    LLOCO_CHECK(d.is_object(), "StoreManifest", path, ": a 'docs' entry is not an object: ", d.dump());
    const std::string id = required<std::string>(d, "id", path);
    m.chunks.push_back(StoredChunk{id, id, "", 0, required<int64_t>(d, "tokens", path),
                                   required<int64_t>(d, "vectors", path), shard_field(d, path)});
  }
}

void read_chunks_v2(const json& j, const std::string& path, StoreManifest& m) {
  m.encoder_fingerprint = required<std::string>(j, "encoder_fingerprint", path);
  m.chunk_tokens = required<int64_t>(j, "chunk_tokens", path);
  LLOCO_CHECK(j.contains("groups") && j["groups"].is_object(), "StoreManifest", path,
              ": field 'groups' must be an object");
  for (const auto& [name, g] : j["groups"].items()) {
    LLOCO_CHECK(g.is_object(), "StoreManifest", path, ": group '", name, "' is not an object: ", g.dump());
    m.groups[name] = GroupInfo{required<std::string>(g, "adapter", path), required<std::string>(g, "dataset", path)};
  }
  for (const json& c : required_list(j, "chunks", path)) {
    LLOCO_CHECK(c.is_object(), "StoreManifest", path, ": a 'chunks' entry is not an object: ", c.dump());
    StoredChunk chunk;
    chunk.id = required<std::string>(c, "id", path);
    chunk.doc = required<std::string>(c, "doc", path);
    chunk.group = required<std::string>(c, "group", path);
    const auto span = required<std::vector<int64_t>>(c, "span", path);
    LLOCO_CHECK(span.size() == 2 && span[0] >= 0 && span[0] <= span[1], "StoreManifest", path, ": chunk '",
                chunk.id, "' has span ", c["span"].dump(), ", expected [begin, end] with 0 <= begin <= end");
    chunk.begin = span[0];
    chunk.end = span[1];
    chunk.vectors = required<int64_t>(c, "vectors", path);
    chunk.shard = shard_field(c, path);
    LLOCO_CHECK(chunk.group.empty() || m.groups.count(chunk.group), "StoreManifest", path, ": chunk '", chunk.id,
                "' is in group '", chunk.group, "', which 'groups' does not list");
    m.chunks.push_back(std::move(chunk));
  }
}

}  // namespace

nlohmann::json read_json_file(const std::string& path, const char* op) {
  std::ifstream f(path);
  LLOCO_CHECK(f.good(), op, path, ": cannot open");
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    LLOCO_FAIL(op, path, ": invalid JSON: ", e.what());
  }
}

StoreManifest manifest_from_json(const json& j, const std::string& path) {
  LLOCO_CHECK(j.is_object(), "StoreManifest", path, ": the top level must be an object");
  const int version = required<int>(j, "schema_version", path);
  LLOCO_CHECK(version == 1 || version == StoreManifest::kSchemaVersion, "StoreManifest", path, ": schema_version ",
              version, ", this build reads 1 and ", StoreManifest::kSchemaVersion);
  StoreManifest m;
  m.encoder = required<std::string>(j, "encoder", path);
  m.summary_length = required<int64_t>(j, "summary_length", path);
  m.segment_length = required<int64_t>(j, "segment_length", path);
  m.hidden_size = required<int64_t>(j, "hidden_size", path);
  m.accumulate_summary = required<bool>(j, "accumulate_summary", path);
  m.summarize_last_segment = required<bool>(j, "summarize_last_segment", path);
  m.dtype = required<std::string>(j, "dtype", path);
  if (version == 1) read_chunks_v1(j, path, m);
  else read_chunks_v2(j, path, m);
  std::set<std::string> ids;
  for (const StoredChunk& c : m.chunks) {
    LLOCO_CHECK(ids.insert(c.id).second, "StoreManifest", path, ": chunk id '", c.id, "' is listed twice");
    LLOCO_CHECK(c.vectors >= 0, "StoreManifest", path, ": chunk '", c.id, "' has ", c.vectors, " vectors");
  }
  return m;
}

json manifest_to_json(const StoreManifest& m) {
  json groups = json::object();
  for (const auto& [name, g] : m.groups) groups[name] = {{"adapter", g.adapter}, {"dataset", g.dataset}};
  json chunks = json::array();
  for (const StoredChunk& c : m.chunks)
    chunks.push_back({{"id", c.id},
                      {"doc", c.doc},
                      {"group", c.group},
                      {"span", {c.begin, c.end}},
                      {"vectors", c.vectors},
                      {"shard", c.shard}});
  return {{"schema_version", StoreManifest::kSchemaVersion},
          {"encoder", m.encoder},
          {"encoder_fingerprint", m.encoder_fingerprint},
          {"summary_length", m.summary_length},
          {"segment_length", m.segment_length},
          {"hidden_size", m.hidden_size},
          {"chunk_tokens", m.chunk_tokens},
          {"accumulate_summary", m.accumulate_summary},
          {"summarize_last_segment", m.summarize_last_segment},
          {"dtype", m.dtype},
          {"groups", groups},
          {"chunks", chunks}};
}

std::string texts_file_of(const std::string& shard) {
  const std::string prefix = "summaries-", suffix = ".safetensors";
  std::string stem = shard;
  if (stem.rfind(prefix, 0) == 0) stem = stem.substr(prefix.size());
  if (stem.size() > suffix.size() && stem.compare(stem.size() - suffix.size(), suffix.size(), suffix) == 0)
    stem.resize(stem.size() - suffix.size());
  return "texts-" + stem + ".jsonl";
}

}  // namespace lloco::compress
