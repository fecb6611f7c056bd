// The compressed store (compress/store.h): shards + manifest round-trip to the encoder's own
// output, a stopped run resumes from what the manifest lists (an orphan shard is rewritten), other
// settings or a bad manifest fail naming the field. (LLoCO's sliced tokenization is
// models::encode_long_document, tested against Python in tests/models/test_tokenizer.cpp.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "compress/store.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/safetensors.h"

namespace lloco::compress {
namespace {

namespace fs = std::filesystem;

const std::string kAcDir = std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac";

std::vector<TokenizedDoc> corpus(int n) {
  std::vector<TokenizedDoc> docs;
  for (int d = 0; d < n; ++d) {
    TokenizedDoc doc{"doc-" + std::to_string(d), {}};
    for (int i = 0; i < 4 + 3 * d; ++i) doc.ids.push_back(3 + (d * 13 + i * 7) % 60);
    docs.push_back(doc);
  }
  return docs;
}

CorpusOptions options() {
  CorpusOptions o;
  o.compress.segment_length = 5;
  o.encoder_name = "tests/fixtures/compress/tiny_ac";
  o.docs_per_shard = 2;
  o.quiet = true;
  return o;
}

fs::path fresh(const std::string& name) {
  const fs::path d = fs::path(::testing::TempDir()) / name;
  fs::remove_all(d);
  return d;
}

void expect_store_matches(const fs::path& dir, const AutoCompressor& ac, const std::vector<TokenizedDoc>& docs) {
  const StoreManifest m = StoreManifest::read((dir / "manifest.json").string());
  ASSERT_EQ(m.docs.size(), docs.size());
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
  ASSERT_EQ(m.docs.size(), 5u);
  EXPECT_EQ(m.summary_length, 4);
  EXPECT_EQ(m.segment_length, 5);
  EXPECT_EQ(m.dtype, "f32");
  for (size_t i = 0; i < docs.size(); ++i) {
    EXPECT_EQ(m.docs[i].id, docs[i].id);
    EXPECT_EQ(m.docs[i].tokens, static_cast<int64_t>(docs[i].ids.size()));
    EXPECT_EQ(m.docs[i].vectors, ac.num_vectors(m.docs[i].tokens, options().compress));
    EXPECT_EQ(m.docs[i].shard, "summaries-0000" + std::to_string(i / 2) + ".safetensors");
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
  ASSERT_EQ(m.docs.size(), 5u);
  EXPECT_EQ(m.docs[3].shard, "summaries-00002.safetensors");
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
  expect_read_error("{\"schema_version\": 2}", "schema_version 2");
  expect_read_error("{\"schema_version\": 1, \"encoder\": \"x\"}", "'summary_length'");
  expect_read_error(
      "{\"schema_version\": 1, \"encoder\": \"x\", \"summary_length\": \"4\", \"segment_length\": 5, "
      "\"hidden_size\": 32, \"accumulate_summary\": true, \"summarize_last_segment\": true, \"dtype\": \"f32\", "
      "\"docs\": []}",
      "'summary_length' has the wrong type");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lloco::compress
