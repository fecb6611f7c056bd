#include "compress/store_merge.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <system_error>

#include "compress/manifest_json.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace lloco::compress {

namespace fs = std::filesystem;

namespace {

constexpr const char* kOp = "merge_stores";
constexpr const char* kManifest = "manifest.json";

struct Part {
  std::string dir;
  StoreManifest manifest;
};

// Where a chunk's bytes lie before the merge writes anything: its first holder among the parts.
struct Source {
  const Part* part;
  const StoredChunk* chunk;
};

struct InputPlan {
  std::vector<StoredChunk> added;                          // the input's new chunks, shard renamed
  std::vector<std::pair<std::string, std::string>> files;  // (input shard, its name in out)
  std::map<std::string, GroupInfo> groups;                 // out's groups once this input is merged
  size_t duplicates = 0;                                   // chunks out already holds identically
};

const char* bool_name(bool b) { return b ? "true" : "false"; }

std::string shard_name(int64_t index) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "summaries-%05lld.safetensors", static_cast<long long>(index));
  return buf;
}

// One past the highest summaries-NNNNN the manifest lists (at least the number of shards it lists),
// so new names neither collide with listed shards nor leave the gap-free numbering compress_corpus
// continues from.
int64_t next_shard_index(const StoreManifest& m) {
  std::set<std::string> shards;
  int64_t next = 0;
  for (const StoredChunk& c : m.chunks) {
    shards.insert(c.shard);
    const std::string prefix = "summaries-", suffix = ".safetensors";
    if (c.shard.size() <= prefix.size() + suffix.size() || c.shard.rfind(prefix, 0) != 0 ||
        c.shard.compare(c.shard.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    const std::string digits = c.shard.substr(prefix.size(), c.shard.size() - prefix.size() - suffix.size());
    if (digits.size() > 12 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    next = std::max<int64_t>(next, std::stoll(digits) + 1);
  }
  return std::max<int64_t>(next, static_cast<int64_t>(shards.size()));
}

void check_same_settings(const Part& ref, const Part& in) {
  auto same = [&](const char* field, const auto& want, const auto& have) {
    LLOCO_CHECK(have == want, kOp, in.dir, ": field '", field, "' is ", have, " but ", ref.dir, " has ", want);
  };
  const StoreManifest &r = ref.manifest, &m = in.manifest;
  same("summary_length", r.summary_length, m.summary_length);
  same("segment_length", r.segment_length, m.segment_length);
  same("hidden_size", r.hidden_size, m.hidden_size);
  same("chunk_tokens", r.chunk_tokens, m.chunk_tokens);
  same("accumulate_summary", std::string(bool_name(r.accumulate_summary)), std::string(bool_name(m.accumulate_summary)));
  same("summarize_last_segment", std::string(bool_name(r.summarize_last_segment)),
       std::string(bool_name(m.summarize_last_segment)));
  same("dtype", r.dtype, m.dtype);
  // The fingerprint is the encoder's identity; version-1 stores have none, only the path.
  if (!r.encoder_fingerprint.empty() && !m.encoder_fingerprint.empty())
    same("encoder_fingerprint", r.encoder_fingerprint, m.encoder_fingerprint);
  else
    same("encoder", r.encoder, m.encoder);
}

// Mapped shards and loaded texts of the parts, shared by the checks of one merge.
class PartFiles {
 public:
  const SafetensorsFile& shard(const Part& p, const std::string& name) {
    const std::string path = (fs::path(p.dir) / name).string();
    auto it = shards_.find(path);
    if (it == shards_.end()) it = shards_.emplace(path, load_safetensors(path)).first;
    return it->second;
  }
  const std::map<std::string, std::string>& texts(const Part& p) {
    auto it = texts_.find(&p);
    if (it == texts_.end()) it = texts_.emplace(&p, load_chunk_texts(p.dir, p.manifest)).first;
    return it->second;
  }

 private:
  std::map<std::string, SafetensorsFile> shards_;
  std::map<const Part*, std::map<std::string, std::string>> texts_;
};

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const Tensor ca = a.contiguous(), cb = b.contiguous();
  return std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) == 0;
}

// "" when the two copies of a chunk id are the same chunk; otherwise what differs.
std::string chunk_difference(const Source& a, const Source& b, PartFiles& files) {
  const StoredChunk &x = *a.chunk, &y = *b.chunk;
  if (x.doc != y.doc) return detail::concat("document '", x.doc, "' vs '", y.doc, "'");
  if (x.group != y.group) return detail::concat("group '", x.group, "' vs '", y.group, "'");
  if (x.begin != y.begin || x.end != y.end)
    return detail::concat("span [", x.begin, ", ", x.end, ") vs [", y.begin, ", ", y.end, ")");
  if (x.vectors != y.vectors) return detail::concat(x.vectors, " vs ", y.vectors, " vectors");
  const Tensor tx = summary_from_shard(files.shard(*a.part, x.shard), x, a.part->manifest);
  const Tensor ty = summary_from_shard(files.shard(*b.part, y.shard), y, b.part->manifest);
  if (!same_bytes(tx, ty)) return "other summary vectors";
  const auto& texts_x = files.texts(*a.part);
  const auto& texts_y = files.texts(*b.part);
  const auto ix = texts_x.find(x.id), iy = texts_y.find(y.id);
  const bool has_x = ix != texts_x.end(), has_y = iy != texts_y.end();
  if (has_x != has_y) return detail::concat("a text in ", has_x ? a.part->dir : b.part->dir, " only");
  if (has_x && ix->second != iy->second) return "other texts";
  return "";
}

// Unites `in`'s groups into `groups`; `from` remembers which part gave each non-empty value.
void merge_groups(std::map<std::string, GroupInfo>& groups, std::map<std::string, std::string>& adapter_from,
                  std::map<std::string, std::string>& dataset_from, const Part& in) {
  auto unite = [&](const std::string& group, const char* field, std::string& have, const std::string& add,
                   std::map<std::string, std::string>& from) {
    if (add.empty()) return;
    if (have.empty()) {
      have = add;
      from[group] = in.dir;
      return;
    }
    LLOCO_CHECK(have == add, kOp, "group '", group, "' has ", field, " '", have, "' in ", from[group], " but '", add,
                "' in ", in.dir);
  };
  for (const auto& [name, info] : in.manifest.groups) {
    GroupInfo& g = groups[name];
    unite(name, "adapter", g.adapter, info.adapter, adapter_from);
    unite(name, "dataset", g.dataset, info.dataset, dataset_from);
  }
}

void copy_file_atomic(const std::string& src, const std::string& dst) {
  std::ifstream in(src, std::ios::binary);
  LLOCO_CHECK(in.good(), kOp, src, ": cannot open");
  AtomicFile out(dst);
  std::vector<char> buf(size_t{8} << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) out.write(buf.data(), static_cast<size_t>(in.gcount()));
  }
  LLOCO_CHECK(!in.bad(), kOp, src, ": read error");
  out.commit();
}

// Puts src's bytes at dst atomically: a hard link renamed into place when moving (the input keeps
// its own link until it is removed), a copy otherwise or where linking fails (another filesystem).
void place_file(const std::string& src, const std::string& dst, bool move) {
  if (move) {
    const std::string tmp = dst + ".link." + std::to_string(::getpid());
    std::error_code ec;
    fs::remove(tmp, ec);
    fs::create_hard_link(src, tmp, ec);
    if (!ec) {
      fs::rename(tmp, dst, ec);
      LLOCO_CHECK(!ec, kOp, "cannot rename ", tmp, " to ", dst, ": ", ec.message());
      fs::remove(tmp, ec);  // still there when dst already was this very file (rename then does nothing)
      return;
    }
  }
  copy_file_atomic(src, dst);
}

// Hard links are directory entries only: make them durable before the manifest that lists them.
void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  LLOCO_CHECK(fd >= 0, kOp, dir, ": cannot open the directory to sync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  LLOCO_CHECK(rc == 0, kOp, dir, ": fsync failed: ", std::strerror(err));
}

// Move mode, after out's manifest lists the input's chunks: the manifest goes first so that the
// input never lists files it lacks.
void remove_store(const Part& p) {
  const fs::path dir(p.dir);
  fs::remove(dir / kManifest);
  std::set<std::string> shards;
  for (const StoredChunk& c : p.manifest.chunks) shards.insert(c.shard);
  for (const std::string& s : shards) {
    fs::remove(dir / s);
    fs::remove(dir / texts_file_of(s));
  }
  fs::remove_all(dir / "retrieval");
  if (fs::is_empty(dir)) fs::remove(dir);
}

}  // namespace

std::string rank_store_dir(const std::string& store, int rank) {
  LLOCO_CHECK(rank >= 0, "rank_store_dir", "rank must be >= 0, got ", rank);
  return (fs::path(store) / "ranks" / ("rank-" + std::to_string(rank))).string();
}

int64_t store_file_bytes(const std::string& dir, const StoreManifest& manifest) {
  std::set<std::string> shards;
  for (const StoredChunk& c : manifest.chunks) shards.insert(c.shard);
  int64_t bytes = 0;
  for (const std::string& s : shards) {
    bytes += static_cast<int64_t>(fs::file_size(fs::path(dir) / s));
    const fs::path texts = fs::path(dir) / texts_file_of(s);
    if (fs::exists(texts)) bytes += static_cast<int64_t>(fs::file_size(texts));
  }
  return bytes;
}

StoreManifest merge_stores(const std::vector<std::string>& inputs, const std::string& out, const MergeOptions& options) {
  LLOCO_CHECK(!inputs.empty(), kOp, "no input stores to merge into ", out);
  auto canonical = [](const std::string& d) { return fs::weakly_canonical(fs::absolute(d)).string(); };
  const std::string out_canonical = canonical(out);
  std::map<std::string, std::string> seen;  // canonical input -> as given
  std::vector<Part> parts(inputs.size());   // never resized: Sources point into it
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string& dir = inputs[i];
    const std::string c = canonical(dir);
    LLOCO_CHECK(c != out_canonical, kOp, "input ", dir, " is the output directory ", out);
    const auto [it, fresh] = seen.emplace(c, dir);
    LLOCO_CHECK(fresh, kOp, "input ", dir, " is given twice (also as ", it->second, ")");
    LLOCO_CHECK(fs::exists(fs::path(dir) / kManifest), kOp, dir,
                ": no manifest.json (not a store, or one that merge-stores --move already merged)");
    parts[i] = Part{dir, read_store(dir)};
  }

  // The reference settings: out's store when there is one, else the first input's.
  Part base{out, {}};
  const bool out_has_store = fs::exists(fs::path(out) / kManifest);
  if (out_has_store) {
    base.manifest = read_store(out);
  } else {
    base.manifest = parts[0].manifest;
    base.manifest.chunks.clear();
    base.manifest.groups.clear();
  }
  const Part& ref = out_has_store ? base : parts[0];
  for (const Part& p : parts) check_same_settings(ref, p);

  // Plan and check everything before the first write.
  PartFiles files;
  std::map<std::string, Source> holder;                          // chunk id -> first holder
  std::map<std::string, std::pair<std::string, std::string>> doc_group;  // doc -> (group, directory)
  auto note_doc = [&](const StoredChunk& c, const std::string& dir) {
    const auto [it, fresh] = doc_group.emplace(c.doc, std::make_pair(c.group, dir));
    LLOCO_CHECK(fresh || it->second.first == c.group, kOp, "document '", c.doc, "' is in group '", it->second.first,
                "' in ", it->second.second, " but in group '", c.group, "' in ", dir);
  };
  for (const StoredChunk& c : base.manifest.chunks) {
    holder.emplace(c.id, Source{&base, &c});
    note_doc(c, base.dir);
  }
  std::map<std::string, GroupInfo> groups = base.manifest.groups;
  std::map<std::string, std::string> adapter_from, dataset_from;
  for (const auto& [name, info] : groups) {
    if (!info.adapter.empty()) adapter_from[name] = base.dir;
    if (!info.dataset.empty()) dataset_from[name] = base.dir;
  }
  int64_t next_shard = next_shard_index(base.manifest);
  std::vector<InputPlan> plans(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const Part& p = parts[i];
    InputPlan& plan = plans[i];
    merge_groups(groups, adapter_from, dataset_from, p);
    plan.groups = groups;
    std::map<std::string, std::string> renamed;  // input shard -> name in out
    for (const StoredChunk& c : p.manifest.chunks) {
      note_doc(c, p.dir);
      const Source source{&p, &c};
      if (const auto it = holder.find(c.id); it != holder.end()) {
        const std::string diff = chunk_difference(it->second, source, files);
        LLOCO_CHECK(diff.empty(), kOp, "chunk id '", c.id, "' is in both ", it->second.part->dir, " and ", p.dir,
                    " with ", diff);
        ++plan.duplicates;
        continue;
      }
      holder.emplace(c.id, source);
      summary_from_shard(files.shard(p, c.shard), c, p.manifest);  // the shard holds it, shaped as listed
      auto named = renamed.find(c.shard);
      if (named == renamed.end()) {
        named = renamed.emplace(c.shard, shard_name(next_shard++)).first;
        plan.files.emplace_back(c.shard, named->second);
      }
      StoredChunk added = c;
      added.shard = named->second;
      plan.added.push_back(std::move(added));
    }
  }
  files = PartFiles();  // unmap before files move

  // Per input: shard files (texts first), then the manifest that lists them.
  fs::create_directories(out);
  const fs::path out_dir(out);
  StoreManifest merged = base.manifest;
  for (const Part& p : parts)
    if (merged.encoder_fingerprint.empty()) merged.encoder_fingerprint = p.manifest.encoder_fingerprint;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Part& p = parts[i];
    const InputPlan& plan = plans[i];
    for (const auto& [from, to] : plan.files) {
      const fs::path texts = fs::path(p.dir) / texts_file_of(from);
      if (fs::exists(texts)) place_file(texts.string(), (out_dir / texts_file_of(to)).string(), options.move);
      else fs::remove(out_dir / texts_file_of(to));  // left by a merge that stopped before listing it
      place_file((fs::path(p.dir) / from).string(), (out_dir / to).string(), options.move);
    }
    if (options.move && !plan.files.empty()) sync_directory(out);
    merged.chunks.insert(merged.chunks.end(), plan.added.begin(), plan.added.end());
    merged.groups = plan.groups;
    write_file_atomic((out_dir / kManifest).string(), merged.to_json());
    if (options.move) remove_store(p);
    if (!options.quiet)
      std::fprintf(stderr, "%s: %s: %zu chunks added to %s in %zu shards, %zu already there%s\n", kOp, p.dir.c_str(),
                   plan.added.size(), out.c_str(), plan.files.size(), plan.duplicates,
                   options.move ? " (input removed)" : "");
  }
  return merged;
}

}  // namespace lloco::compress
