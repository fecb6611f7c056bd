// The compressed store (compress/store.h): shards + manifest round-trip to the encoder's own
// output, a stopped run resumes from what the manifest lists (an orphan shard is rewritten), other
// settings or a bad manifest fail naming the field. (LLoCO's sliced tokenization is
// models::encode_long_document, tested against Python in tests/models/test_tokenizer.cpp.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "compress/store.h"
#include "tests/compress/tiny_store.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace lloco::compress {
namespace {

namespace fs = std::filesystem;

using testing::fresh;
using testing::kAcDir;
std::vector<TokenizedDoc> corpus(int n) { return testing::tiny_corpus(n); }
CorpusOptions options() { return testing::tiny_options(); }

void expect_store_matches(const fs::path& dir, const AutoCompressor& ac, const std::vector<TokenizedDoc>& docs) {
  const StoreManifest m = StoreManifest::read((dir / "manifest.json").string());
  ASSERT_EQ(m.chunks.size(), docs.size());
  for (const TokenizedDoc& d : docs) {
    const Tensor want = ac.compress(d.ids, options().compress);
    const Tensor got = load_summary(dir.string(), m, d.id);
    EXPECT_EQ(got.to_vector<float>(), want.to_vector<float>()) << d.id;
  }
}

TEST(CompressedStore, ShardsAndManifestRoundTrip) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const fs::path dir = fresh("lloco_store_roundtrip");
  const std::vector<TokenizedDoc> docs = corpus(5);
  const StoreManifest m = compress_corpus(ac, docs, dir.string(), options());
  ASSERT_EQ(m.chunks.size(), 5u);
  EXPECT_EQ(m.summary_length, 4);
  EXPECT_EQ(m.segment_length, 5);
  EXPECT_EQ(m.dtype, "f32");
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(m.chunks[i].id, docs[i].id);
    EXPECT_EQ(m.chunks[i].tokens(), static_cast<int64_t>(docs[i].ids.size()));
    EXPECT_EQ(m.chunks[i].vectors, ac.num_vectors(m.chunks[i].tokens(), options().compress));
    EXPECT_EQ(m.chunks[i].shard, "summaries-0000" + std::to_string(i / 2) + ".safetensors");
  }
  expect_store_matches(dir, ac, docs);
  EXPECT_THROW(load_summary(dir.string(), m, "doc-9"), Error);
  fs::remove_all(dir);
}

TEST(CompressedStore, StoppedRunResumesFromTheManifest) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const fs::path dir = fresh("lloco_store_resume");
  const std::vector<TokenizedDoc> all = corpus(5);
  compress_corpus(ac, std::vector<TokenizedDoc>(all.begin(), all.begin() + 3), dir.string(), options());
  // A crash after writing the next shard but before the manifest: the shard is not listed.
  save_safetensors((dir / "summaries-00002.safetensors").string(), {{"junk", zeros({1, 1})}});
  const StoreManifest m = compress_corpus(ac, all, dir.string(), options());
  ASSERT_EQ(m.chunks.size(), 5u);
  EXPECT_EQ(m.chunks[3].shard, "summaries-00002.safetensors");
  EXPECT_FALSE(load_safetensors((dir / "summaries-00002.safetensors").string()).contains("junk"));
  expect_store_matches(dir, ac, all);
  fs::remove_all(dir);
}

TEST(CompressedStore, OtherSettingsAndBadManifestsFailNamingTheField) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const fs::path dir = fresh("lloco_store_bad");
  compress_corpus(ac, corpus(2), dir.string(), options());
  CorpusOptions other = options();
  other.compress.segment_length = 6;
  try {
    compress_corpus(ac, corpus(3), dir.string(), other);
    ADD_FAILURE() << "ran with another segment length";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'segment_length' is 5 but this run has 6"), std::string::npos) << msg;
  }
  std::vector<TokenizedDoc> twice = corpus(2);
  twice.push_back(twice[0]);
  EXPECT_THROW(compress_corpus(ac, twice, fresh("lloco_store_dup").string(), options()), Error);

  const std::string manifest = (dir / "manifest.json").string();
  auto expect_read_error = [&](const std::string& text, const std::string& needle) {
    write_file_atomic(manifest, text);
    try {
      StoreManifest::read(manifest);
      ADD_FAILURE() << "read " << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("manifest.json"), std::string::npos) << e.what();
    }
  };
  expect_read_error("{\"schema_version\": 1, \"encoder\": ", "invalid JSON");
  expect_read_error("{\"schema_version\": 3}", "schema_version 3");
  expect_read_error("{\"schema_version\": 1, \"encoder\": \"x\"}", "'summary_length'");
  expect_read_error(
      "{\"schema_version\": 1, \"encoder\": \"x\", \"summary_length\": \"4\", \"segment_length\": 5, "
      "\"hidden_size\": 32, \"accumulate_summary\": true, \"summarize_last_segment\": true, \"dtype\": \"f32\", "
      "\"docs\": []}",
      "'summary_length' has the wrong type");
  fs::remove_all(dir);
}


// Chunked documents: each span is compressed on its own (no accumulation across chunks), keeps its
// source document, span and group, and its text comes from the decoder the caller passes.
TEST(CompressedStore, ChunksCarryTheirDocumentSpanGroupAndText) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const fs::path dir = fresh("lloco_store_chunks");
  std::vector<TokenizedDoc> docs = corpus(3);  // 4, 7 and 10 tokens
  docs[0].group = "a";
  docs[1].group = "b";
  docs[2].group = "a";
  CorpusOptions o = options();
  o.chunk_tokens = 4;
  o.group_dataset = "qmsum";
  o.decode = [](const std::vector<int32_t>& ids) {
    std::string t;
    for (int32_t id : ids) t += "w" + std::to_string(id) + " ";
    return t;
  };
  const StoreManifest m = compress_corpus(ac, docs, dir.string(), o);
  const std::vector<std::string> want_ids{"doc-0#0", "doc-1#0", "doc-1#1", "doc-2#0", "doc-2#1", "doc-2#2"};
  ASSERT_EQ(m.chunks.size(), want_ids.size());
  const std::map<std::string, std::string> texts = load_chunk_texts(dir.string(), StoreManifest::read((dir / "manifest.json").string()));
  for (size_t i = 0; i < want_ids.size(); ++i) {
    const StoredChunk& c = m.chunks[i];
    EXPECT_EQ(c.id, want_ids[i]);
    const TokenizedDoc& d = docs[static_cast<size_t>(c.doc.back() - '0')];
    EXPECT_EQ(c.group, d.group);
    const std::vector<int32_t> span(d.ids.begin() + c.begin, d.ids.begin() + c.end);
    EXPECT_EQ(c.begin % 4, 0);
    EXPECT_EQ(c.end, std::min<int64_t>(c.begin + 4, static_cast<int64_t>(d.ids.size())));
    EXPECT_EQ(load_summary(dir.string(), m, c.id).to_vector<float>(), ac.compress(span, o.compress).to_vector<float>())
        << c.id;
    EXPECT_EQ(texts.at(c.id), o.decode(span)) << c.id;
  }
  EXPECT_EQ(m.groups.size(), 2u);
  EXPECT_EQ(m.groups.at("a").dataset, "qmsum");
  EXPECT_EQ(stored_ids(dir.string()), (std::set<std::string>{"doc-0", "doc-1", "doc-2"}));

  // Resuming with another chunk size, or moving a stored document to another group, is refused.
  CorpusOptions other = o;
  other.chunk_tokens = 5;
  EXPECT_THROW(compress_corpus(ac, docs, dir.string(), other), Error);
  docs[1].group = "a";
  try {
    compress_corpus(ac, docs, dir.string(), o);
    ADD_FAILURE() << "moved doc-1 to another group";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'doc-1' is stored in group 'b' but this run puts it in 'a'"),
              std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

TEST(CompressedStore, AdaptersAreRegisteredPerGroup) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const fs::path dir = fresh("lloco_store_adapters");
  std::vector<TokenizedDoc> docs = corpus(2);
  docs[0].group = "meetings";
  docs[0].text = "the first meeting";
  compress_corpus(ac, docs, dir.string(), options());
  register_adapter(dir.string(), "meetings", (dir / "adapter").string());
  const StoreManifest m = read_store(dir.string());
  EXPECT_EQ(m.groups.at("meetings").adapter, fs::weakly_canonical(dir / "adapter").string());
  EXPECT_EQ(m.chunk("doc-1").group, "");
  // Whole-document chunks keep the document's own text; a document without text has none.
  const std::map<std::string, std::string> texts = load_chunk_texts(dir.string(), m);
  EXPECT_EQ(texts.at("doc-0"), "the first meeting");
  EXPECT_FALSE(texts.count("doc-1"));
  try {
    register_adapter(dir.string(), "stories", "x");
    ADD_FAILURE() << "registered an unknown group";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no group 'stories' (the store has 'meetings')"), std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

// Other weights at the same path are another encoder; a version-1 store still reads and resumes.
TEST(CompressedStore, FingerprintGuardsTheEncoderAndVersionOneStoresStillRead) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  const fs::path dir = fresh("lloco_store_fingerprint");
  compress_corpus(ac, corpus(2), dir.string(), options());
  Tensor table = ac.embed_summary().clone();
  fill_(table, 0.5);
  const AutoCompressor other(ac.model(), table, ac.accumulate_summary());
  EXPECT_NE(encoder_fingerprint(other), encoder_fingerprint(ac));
  try {
    compress_corpus(other, corpus(3), dir.string(), options());
    ADD_FAILURE() << "resumed with other weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'encoder_fingerprint'"), std::string::npos) << e.what();
  }

  const std::string v1 =
      "{\"schema_version\": 1, \"encoder\": \"tests/fixtures/compress/tiny_ac\", \"summary_length\": 4, "
      "\"segment_length\": 5, \"hidden_size\": " + std::to_string(ac.model().config.hidden_size) +
      ", \"accumulate_summary\": " + (ac.accumulate_summary() ? "true" : "false") +
      ", \"summarize_last_segment\": true, \"dtype\": \"f32\", \"docs\": [{\"id\": \"doc-0\", \"tokens\": 4, "
      "\"vectors\": " + std::to_string(ac.num_vectors(4, options().compress)) + ", \"shard\": \"summaries-00000.safetensors\"}]}";
  write_file_atomic((dir / "manifest.json").string(), v1);
  const StoreManifest old = read_store(dir.string());
  ASSERT_EQ(old.chunks.size(), 1u);
  EXPECT_EQ(old.chunks[0].doc, "doc-0");
  EXPECT_EQ(old.chunks[0].tokens(), 4);
  const StoreManifest resumed = compress_corpus(ac, corpus(3), dir.string(), options());
  EXPECT_EQ(resumed.chunks.size(), 3u);
  EXPECT_EQ(read_store(dir.string()).encoder_fingerprint, encoder_fingerprint(ac));
  expect_store_matches(dir, ac, corpus(3));
  fs::remove_all(dir);
}

TEST(CompressedStore, CorruptManifestsAndTextsFailNamingTheField) {
  const fs::path dir = fresh("lloco_store_corrupt");
  fs::create_directories(dir);
  const std::string manifest = (dir / "manifest.json").string();
  const std::string head =
      "{\"schema_version\": 2, \"encoder\": \"x\", \"encoder_fingerprint\": \"f\", \"summary_length\": 4, "
      "\"segment_length\": 5, \"hidden_size\": 8, \"chunk_tokens\": 0, \"accumulate_summary\": true, "
      "\"summarize_last_segment\": true, \"dtype\": \"f32\", \"groups\": {\"g\": {\"adapter\": \"\", \"dataset\": \"\"}}, ";
  auto expect_error = [&](const std::string& chunks, const std::string& needle) {
    write_file_atomic(manifest, head + chunks + "}");
    try {
      read_store(dir.string());
      ADD_FAILURE() << chunks;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string chunk = "{\"id\": \"c\", \"doc\": \"d\", \"group\": \"g\", \"vectors\": 4, ";
  expect_error("\"chunks\": [" + chunk + "\"span\": [0, 5], \"shard\": \"../../etc/passwd\"}]",
               "is not a file name inside the store");
  expect_error("\"chunks\": [" + chunk + "\"span\": [5, 2], \"shard\": \"s\"}]", "has span [5,2]");
  expect_error("\"chunks\": [{\"id\": \"c\", \"doc\": \"d\", \"group\": \"h\", \"vectors\": 4, \"span\": [0, 5], "
               "\"shard\": \"s\"}]", "group 'h', which 'groups' does not list");
  expect_error("\"chunks\": [" + chunk + "\"span\": [0, 5], \"shard\": \"s\"}, " + chunk +
               "\"span\": [0, 5], \"shard\": \"s\"}]", "chunk id 'c' is listed twice");
  write_file_atomic(manifest, head + "\"chunks\": [" + chunk + "\"span\": [0, 5], \"shard\": \"summaries-00000.safetensors\"}]}");
  write_file_atomic((dir / "texts-00000.jsonl").string(), "{\"id\": \"c\", \"text\": \"ok\"}\n{\"id\": 3}\n");
  try {
    load_chunk_texts(dir.string(), read_store(dir.string()));
    ADD_FAILURE() << "read a bad texts line";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("texts-00000.jsonl:2"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lloco::compress
