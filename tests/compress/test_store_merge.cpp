// Merging compressed stores (compress/store_merge.h): per-rank stores compressed by the real
// compress_corpus on the tiny fixture encoder merge into the store one run over every document
// writes, byte for byte; an existing store is a part; conflicts are refused naming the field, both
// values and both directories, before anything is written; a stopped merge leaves a valid store that
// a rerun completes; move mode gives the same store and removes the inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "compress/store.h"
#include "compress/store_merge.h"
#include "tests/compress/tiny_store.h"
#include "core/atomic_file.h"
#include "core/error.h"

namespace lloco::compress {
namespace {

namespace fs = std::filesystem;

using testing::fresh;
using testing::kAcDir;

// The tiny corpus in groups "a", "b" and none, with texts.
std::vector<TokenizedDoc> corpus(int n) {
  std::vector<TokenizedDoc> docs = testing::tiny_corpus(n);
  for (size_t d = 0; d < docs.size(); ++d) {
    docs[d].group = d % 3 == 0 ? "a" : d % 3 == 1 ? "b" : "";
    docs[d].text = "the text of " + docs[d].id;
  }
  return docs;
}

// Chunks of 4 tokens with texts, as `lloco compress --chunk-tokens` writes them.
CorpusOptions options() {
  CorpusOptions o = testing::tiny_options();
  o.chunk_tokens = 4;
  o.group_dataset = "qmsum";
  o.decode = [](const std::vector<int32_t>& ids) {
    std::string t;
    for (int32_t id : ids) {
      t += 'w';
      t += std::to_string(id);
      t += ' ';
    }
    return t;
  };
  return o;
}

MergeOptions quiet_merge(bool move = false) {
  MergeOptions m;
  m.move = move;
  m.quiet = true;
  return m;
}

std::vector<TokenizedDoc> pick(const std::vector<TokenizedDoc>& docs, std::initializer_list<int> which) {
  std::vector<TokenizedDoc> out;
  for (int i : which) out.push_back(docs[static_cast<size_t>(i)]);
  return out;
}

// Sharded compression: rank r of `ranks` compresses every ranks-th document into its own store.
std::vector<std::string> compress_ranks(const AutoCompressor& ac, const std::vector<TokenizedDoc>& docs,
                                        const fs::path& store, int ranks) {
  std::vector<std::string> dirs;
  for (int r = 0; r < ranks; ++r) {
    std::vector<TokenizedDoc> mine;
    for (size_t i = static_cast<size_t>(r); i < docs.size(); i += static_cast<size_t>(ranks)) mine.push_back(docs[i]);
    dirs.push_back(rank_store_dir(store.string(), r));
    compress_corpus(ac, mine, dirs.back(), options());
  }
  return dirs;
}

std::string bytes_of(const Tensor& t) {
  const Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

// Every chunk of `part` is in `merged` with the same document, group, span, vector bytes and text.
void expect_holds(const fs::path& merged, const fs::path& part) {
  const StoreManifest m = read_store(merged.string()), p = read_store(part.string());
  const std::map<std::string, std::string> mt = load_chunk_texts(merged.string(), m),
                                           pt = load_chunk_texts(part.string(), p);
  for (const StoredChunk& c : p.chunks) {
    const StoredChunk& got = m.chunk(c.id);
    EXPECT_EQ(got.doc, c.doc) << c.id;
    EXPECT_EQ(got.group, c.group) << c.id;
    EXPECT_EQ(got.begin, c.begin) << c.id;
    EXPECT_EQ(got.end, c.end) << c.id;
    EXPECT_EQ(got.vectors, c.vectors) << c.id;
    EXPECT_EQ(bytes_of(load_summary(merged.string(), m, c.id)), bytes_of(load_summary(part.string(), p, c.id))) << c.id;
    EXPECT_EQ(mt.count(c.id), pt.count(c.id)) << c.id;
    if (pt.count(c.id)) {
      EXPECT_EQ(mt.at(c.id), pt.at(c.id)) << c.id;
    }
  }
  for (const StoredChunk& c : p.chunks)
    EXPECT_EQ(bytes_of(load_document_summary(merged.string(), m, c.doc)),
              bytes_of(load_document_summary(part.string(), p, c.doc))) << c.doc;
}

// Same chunks, groups, vectors and texts (shard names may differ).
void expect_same_store(const fs::path& a, const fs::path& b) {
  const StoreManifest ma = read_store(a.string()), mb = read_store(b.string());
  std::set<std::string> ids_a, ids_b;
  for (const StoredChunk& c : ma.chunks) ids_a.insert(c.id);
  for (const StoredChunk& c : mb.chunks) ids_b.insert(c.id);
  EXPECT_EQ(ids_a, ids_b);
  ASSERT_EQ(ma.chunks.size(), ids_a.size());
  EXPECT_EQ(ma.groups.size(), mb.groups.size());
  for (const auto& [name, g] : mb.groups) {
    ASSERT_TRUE(ma.groups.count(name)) << name;
    EXPECT_EQ(ma.groups.at(name).adapter, g.adapter) << name;
    EXPECT_EQ(ma.groups.at(name).dataset, g.dataset) << name;
  }
  expect_holds(a, b);
}

// The shards a store lists are summaries-00000.. without gaps (what a resumed compress continues).
void expect_gap_free_shards(const fs::path& dir) {
  std::set<std::string> shards;
  for (const StoredChunk& c : read_store(dir.string()).chunks) shards.insert(c.shard);
  size_t i = 0;
  for (const std::string& s : shards) {
    char want[40];
    std::snprintf(want, sizeof(want), "summaries-%05zu.safetensors", i++);
    EXPECT_EQ(s, want);
  }
}

TEST(StoreMerge, RankStoresMergeIntoTheStoreOfOneRun) {
  EXPECT_EQ(rank_store_dir("s", 2), (fs::path("s") / "ranks" / "rank-2").string());
  EXPECT_THROW(rank_store_dir("s", -1), Error);
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const std::vector<TokenizedDoc> docs = corpus(7);
  const fs::path root = fresh("lloco_merge_ranks");
  const fs::path whole = root / "whole", store = root / "store";
  compress_corpus(ac, docs, whole.string(), options());
  const std::vector<std::string> ranks = compress_ranks(ac, docs, store, 3);

  const StoreManifest m = merge_stores(ranks, store.string(), quiet_merge());
  EXPECT_EQ(m.to_json(), read_store(store.string()).to_json());
  std::set<std::string> ids;
  for (const StoredChunk& c : m.chunks) EXPECT_TRUE(ids.insert(c.id).second) << c.id << " listed twice";
  EXPECT_EQ(m.groups.at("a").dataset, "qmsum");
  for (const std::string& r : ranks) expect_holds(store, r);
  expect_same_store(store, whole);
  expect_gap_free_shards(store);
  EXPECT_GT(store_file_bytes(store.string(), m), 0);

  // A later compress run continues the merged store without overwriting a merged shard.
  const std::vector<TokenizedDoc> more = corpus(9);
  compress_corpus(ac, more, store.string(), options());
  compress_corpus(ac, more, whole.string(), options());
  expect_same_store(store, whole);
  fs::remove_all(root);
}

TEST(StoreMerge, AnExistingStoreIsAPartAndRerunsAddNothing) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const std::vector<TokenizedDoc> docs = corpus(7);
  const fs::path root = fresh("lloco_merge_existing");
  const fs::path whole = root / "whole", out = root / "out", a = root / "a", b = root / "b", overlap = root / "overlap";
  compress_corpus(ac, docs, whole.string(), options());
  compress_corpus(ac, pick(docs, {0, 1, 2}), out.string(), options());
  compress_corpus(ac, pick(docs, {3, 4}), a.string(), options());
  compress_corpus(ac, pick(docs, {5, 6}), b.string(), options());
  const size_t before = read_store(out.string()).chunks.size();
  merge_stores({a.string(), b.string()}, out.string(), quiet_merge());
  expect_same_store(out, whole);
  expect_gap_free_shards(out);
  EXPECT_GT(read_store(out.string()).chunks.size(), before);
  const std::string merged = read_text(out / "manifest.json");

  // Identical copies of chunks already merged (the same inputs again, or a store overlapping them)
  // are kept once.
  compress_corpus(ac, pick(docs, {2, 3}), overlap.string(), options());
  merge_stores({a.string(), b.string(), overlap.string()}, out.string(), quiet_merge());
  EXPECT_EQ(read_text(out / "manifest.json"), merged);
  fs::remove_all(root);
}

TEST(StoreMerge, AStoppedMergeLeavesAValidStoreAndARerunCompletesIt) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const std::vector<TokenizedDoc> docs = corpus(7);
  const fs::path root = fresh("lloco_merge_stopped");
  const fs::path whole = root / "whole", out = root / "out", a = root / "a", b = root / "b";
  compress_corpus(ac, docs, whole.string(), options());
  compress_corpus(ac, pick(docs, {0, 1}), out.string(), options());
  compress_corpus(ac, pick(docs, {2, 3, 4}), a.string(), options());
  CorpusOptions no_texts = options();
  no_texts.decode = nullptr;  // b's shards have no texts files
  compress_corpus(ac, pick(docs, {5, 6}), b.string(), no_texts);
  const std::string before = read_text(out / "manifest.json");
  const StoreManifest old = read_store(out.string());
  const fs::path out_before = root / "out_before";
  fs::copy(out, out_before, fs::copy_options::recursive);
  auto expect_complete = [&](const fs::path& dir) {
    EXPECT_EQ(read_store(dir.string()).chunks.size(),
              old.chunks.size() + read_store(a.string()).chunks.size() + read_store(b.string()).chunks.size());
    expect_holds(dir, a);
    expect_holds(dir, b);
    expect_holds(dir, out_before);
  };

  // Stopped after writing every shard but before the last manifest: out lists only its own chunks,
  // and the unlisted leftovers (a damaged shard, stale texts) are rewritten or dropped by the rerun.
  merge_stores({a.string(), b.string()}, out.string(), quiet_merge());
  std::set<std::string> old_shards;
  for (const StoredChunk& c : old.chunks) old_shards.insert(c.shard);
  std::set<std::string> leftovers;
  std::string stale_texts;
  for (const StoredChunk& c : read_store(out.string()).chunks) {
    if (!old_shards.count(c.shard)) leftovers.insert(c.shard);
    stale_texts += "{\"id\": \"" + c.id + "\", \"text\": \"stale\"}\n";
  }
  ASSERT_EQ(leftovers.size(), 3u);  // a: 2 shards, b: 1
  write_file_atomic((out / "manifest.json").string(), before);
  for (const std::string& s : leftovers) {
    write_file_atomic((out / s).string(), "not a safetensors file");
    write_file_atomic((out / ("texts-" + s.substr(10, 5) + ".jsonl")).string(), stale_texts);
  }
  EXPECT_EQ(read_store(out.string()).chunks.size(), old.chunks.size());
  expect_holds(whole, out);  // what out lists reads back intact
  merge_stores({a.string(), b.string()}, out.string(), quiet_merge());
  expect_complete(out);
  expect_gap_free_shards(out);

  // Stopped between inputs: out lists the first; the rerun skips it and adds the second.
  const fs::path out2 = root / "out2";
  compress_corpus(ac, pick(docs, {0, 1}), out2.string(), options());
  merge_stores({a.string()}, out2.string(), quiet_merge());
  merge_stores({a.string(), b.string()}, out2.string(), quiet_merge());
  expect_complete(out2);
  expect_gap_free_shards(out2);
  fs::remove_all(root);
}

TEST(StoreMerge, OtherSettingsOrEncodersAreRefusedNamingTheFieldAndBothValues) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const std::vector<TokenizedDoc> docs = corpus(4);
  const fs::path root = fresh("lloco_merge_settings");
  const fs::path a = root / "a", b = root / "b", c = root / "c", d = root / "d", out = root / "out";
  compress_corpus(ac, pick(docs, {0, 1}), a.string(), options());
  CorpusOptions other = options();
  other.compress.segment_length = 6;
  compress_corpus(ac, pick(docs, {2, 3}), b.string(), other);
  std::string msg = error_of([&] { merge_stores({a.string(), b.string()}, out.string(), quiet_merge()); });
  EXPECT_NE(msg.find(b.string() + ": field 'segment_length' is 6 but " + a.string() + " has 5"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out)) << "a refused merge wrote " << out;

  Tensor table = ac.embed_summary().clone();
  fill_(table, 0.5);
  const AutoCompressor other_encoder(ac.model(), table, ac.accumulate_summary());
  compress_corpus(other_encoder, pick(docs, {2, 3}), c.string(), options());
  msg = error_of([&] { merge_stores({a.string(), c.string()}, out.string(), quiet_merge()); });
  EXPECT_NE(msg.find(c.string() + ": field 'encoder_fingerprint' is " + encoder_fingerprint(other_encoder) + " but " +
                     a.string() + " has " + encoder_fingerprint(ac)),
            std::string::npos) << msg;

  // Against a store already in out, out is the reference.
  compress_corpus(ac, pick(docs, {2, 3}), d.string(), options());
  StoreManifest edited = read_store(d.string());
  edited.summary_length = 8;
  write_file_atomic((d / "manifest.json").string(), edited.to_json());
  compress_corpus(ac, pick(docs, {0}), out.string(), options());
  const std::string before = read_text(out / "manifest.json");
  msg = error_of([&] { merge_stores({d.string()}, out.string(), quiet_merge()); });
  EXPECT_NE(msg.find(d.string() + ": field 'summary_length' is 8 but " + out.string() + " has 4"), std::string::npos)
      << msg;
  EXPECT_EQ(read_text(out / "manifest.json"), before);
  fs::remove_all(root);
}

TEST(StoreMerge, DuplicateChunksMustBeTheSameChunk) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const std::vector<TokenizedDoc> docs = corpus(4);
  const fs::path root = fresh("lloco_merge_duplicates");
  const fs::path a = root / "a", b = root / "b", g = root / "g", out = root / "out";
  compress_corpus(ac, pick(docs, {0, 1}), a.string(), options());
  std::vector<TokenizedDoc> changed = pick(docs, {1, 2});
  changed[0].ids[0] += 1;  // doc-1 again, other tokens
  compress_corpus(ac, changed, b.string(), options());
  std::string msg = error_of([&] { merge_stores({a.string(), b.string()}, out.string(), quiet_merge()); });
  EXPECT_NE(msg.find("chunk id 'doc-1#0' is in both " + a.string() + " and " + b.string() + " with other summary vectors"),
            std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out));

  std::vector<TokenizedDoc> regrouped = pick(docs, {1});
  regrouped[0].group = "a";
  compress_corpus(ac, regrouped, g.string(), options());
  msg = error_of([&] { merge_stores({a.string(), g.string()}, out.string(), quiet_merge()); });
  EXPECT_NE(msg.find("document 'doc-1' is in group 'b' in " + a.string() + " but in group 'a' in " + g.string()),
            std::string::npos) << msg;

  msg = error_of([&] { merge_stores({a.string(), (root / "a" / ".." / "a").string()}, out.string(), quiet_merge()); });
  EXPECT_NE(msg.find("is given twice"), std::string::npos) << msg;
  msg = error_of([&] { merge_stores({a.string()}, a.string(), quiet_merge()); });
  EXPECT_NE(msg.find("is the output directory"), std::string::npos) << msg;
  msg = error_of([&] { merge_stores({(root / "nothing").string()}, out.string(), quiet_merge()); });
  EXPECT_NE(msg.find("nothing: no manifest.json"), std::string::npos) << msg;
  EXPECT_THROW(merge_stores({}, out.string(), quiet_merge()), Error);
  EXPECT_FALSE(fs::exists(out));
  fs::remove_all(root);
}

TEST(StoreMerge, GroupsUniteAndTheirAdaptersMustAgree) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const std::vector<TokenizedDoc> docs = corpus(6);  // groups a, b, -, a, b, -
  const fs::path root = fresh("lloco_merge_groups");
  const fs::path a = root / "a", b = root / "b", c = root / "c", out = root / "out", out2 = root / "out2";
  compress_corpus(ac, pick(docs, {0, 1, 2}), a.string(), options());
  compress_corpus(ac, pick(docs, {3, 4}), b.string(), options());
  compress_corpus(ac, pick(docs, {5}), c.string(), options());
  register_adapter(a.string(), "a", (root / "adapter-a").string());
  register_adapter(b.string(), "b", (root / "adapter-b").string());
  const StoreManifest m = merge_stores({a.string(), b.string(), c.string()}, out.string(), quiet_merge());
  EXPECT_EQ(m.groups.size(), 2u);
  EXPECT_EQ(m.groups.at("a").adapter, fs::weakly_canonical(root / "adapter-a").string());  // from a; b has none
  EXPECT_EQ(m.groups.at("b").adapter, fs::weakly_canonical(root / "adapter-b").string());  // from b; a has none

  register_adapter(b.string(), "a", (root / "other-adapter").string());
  const std::string msg = error_of([&] { merge_stores({a.string(), b.string()}, out2.string(), quiet_merge()); });
  EXPECT_NE(msg.find("group 'a' has adapter '" + fs::weakly_canonical(root / "adapter-a").string() + "' in " +
                     a.string() + " but '" + fs::weakly_canonical(root / "other-adapter").string() + "' in " +
                     b.string()),
            std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out2));
  fs::remove_all(root);
}

TEST(StoreMerge, MoveModeGivesTheSameStoreAndRemovesTheInputs) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const std::vector<TokenizedDoc> docs = corpus(6);
  const fs::path root = fresh("lloco_merge_move");
  const fs::path copied = root / "copied", moved = root / "moved";
  const std::vector<std::string> for_copy = compress_ranks(ac, docs, root / "copy_ranks", 2);
  merge_stores(for_copy, copied.string(), quiet_merge());
  const std::vector<std::string> ranks = compress_ranks(ac, docs, moved, 2);
  fs::create_directories(fs::path(ranks[0]) / "retrieval");  // a derived cache goes with its store
  write_file_atomic((fs::path(ranks[0]) / "retrieval" / "dense.json").string(), "{}");
  merge_stores(ranks, moved.string(), quiet_merge(/*move=*/true));
  for (const std::string& r : ranks) EXPECT_FALSE(fs::exists(r)) << r;
  expect_same_store(moved, copied);
  expect_gap_free_shards(moved);

  // Stopped after out listed the inputs but before removing them: the rerun finds identical copies
  // and only removes the inputs.
  const std::string before = read_text(copied / "manifest.json");
  merge_stores(for_copy, copied.string(), quiet_merge(/*move=*/true));
  for (const std::string& r : for_copy) EXPECT_FALSE(fs::exists(r)) << r;
  EXPECT_EQ(read_text(copied / "manifest.json"), before);
  expect_same_store(copied, moved);
  fs::remove_all(root);
}

}  // namespace
}  // namespace lloco::compress
