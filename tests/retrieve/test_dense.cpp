// Dense retrieval end to end against tests/fixtures/gen_dense_fixtures.py: a Contriever-shaped tiny
// BERT (float16 weights, 1000-token WordPiece vocabulary) embeds 16 HotpotQA paragraphs and 8
// questions as facebook/contriever's README does (slow BertTokenizer, truncation to M = 64 tokens,
// mean pooling over the attention mask, float64 reference), and faiss IndexFlatIP ranks them. Checked
// here: the encoder's embeddings, the ranker's ordering and scores, the store's cached index
// (<store>/retrieval/dense.{faiss,json}: written, reused, extended, rebuilt) and the context retriever.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "compress/store.h"
#include "core/error.h"
#include "core/ops.h"
#include "retrieve/dense.h"
#include "retrieve/vector_index.h"

namespace lloco::retrieve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Our float32 forward against the float64 reference (transformers' own float32 forward is ~4e-7 off).
constexpr double kEmbedTol = 1e-5;
// Scores are ~10..30; consecutive reference scores differ by > 1e-4 relative, far above this.
constexpr double kScoreRelTol = 1e-5;

const std::string kModelDir = std::string(LLOCO_FIXTURES_DIR) + "/dense/contriever_tiny";

const json& fixture() {
  static const json fx = [] {
    std::ifstream f(std::string(LLOCO_FIXTURES_DIR) + "/dense/expected.json");
    return json::parse(f);
  }();
  return fx;
}

std::vector<std::string> passages() { return fixture()["passages"].get<std::vector<std::string>>(); }
std::vector<std::string> queries() { return fixture()["queries"].get<std::vector<std::string>>(); }
std::vector<int64_t> ranking(size_t q) { return fixture()["rankings"][q]["ids"].get<std::vector<int64_t>>(); }
std::vector<double> ranking_scores(size_t q) {
  return fixture()["rankings"][q]["scores"].get<std::vector<double>>();
}

std::shared_ptr<const DenseEncoder> encoder(int64_t batch_size = 3) {
  DenseEncoderOptions o;
  o.max_tokens = fixture()["max_tokens"].get<int32_t>();
  o.batch_size = batch_size;
  return DenseEncoder::load(kModelDir, cpu(), DType::F32, o);
}

// Rows [first, first + rows) of `got` ([N, D] row-major) against the reference rows.
void expect_rows(const std::vector<float>& got, const json& want, size_t first, size_t rows, const std::string& what) {
  const size_t dim = want.at(0).size();
  ASSERT_GE(got.size(), (first + rows) * dim) << what;
  for (size_t r = 0; r < rows; ++r)
    for (size_t d = 0; d < dim; ++d)
      ASSERT_NEAR(got[(first + r) * dim + d], want[r][d].get<double>(), kEmbedTol)
          << what << " row " << first + r << " dim " << d;
}

void expect_embeddings(const Tensor& got, const json& want, const std::string& what) {
  ASSERT_EQ(got.shape(), (Shape{static_cast<int64_t>(want.size()), static_cast<int64_t>(want.at(0).size())})) << what;
  expect_rows(got.to_vector<float>(), want, 0, want.size(), what);
}

// The ranker's top-k for every query: ids exactly the reference's, scores close.
void expect_reference_ranking(const PassageRanker& ranker, int64_t k) {
  const std::vector<std::string> qs = queries();
  for (size_t q = 0; q < qs.size(); ++q) {
    const std::vector<Hit> hits = ranker.search(qs[q], k);
    const std::vector<int64_t> want = ranking(q);
    const std::vector<double> want_scores = ranking_scores(q);
    ASSERT_EQ(hits.size(), std::min<size_t>(static_cast<size_t>(k), want.size())) << "query " << q << " k " << k;
    for (size_t i = 0; i < hits.size(); ++i) {
      EXPECT_EQ(hits[i].passage, want[i]) << "query " << q << " rank " << i << " k " << k;
      EXPECT_NEAR(hits[i].score, want_scores[i], kScoreRelTol * std::max(1.0, std::abs(want_scores[i])))
          << "query " << q << " rank " << i;
    }
  }
}

json passage_embeddings_reversed() {
  json rows = fixture()["passage_embeddings"];
  std::reverse(rows.begin(), rows.end());
  return rows;
}

FlatIndex index_of(const json& rows) {
  FlatIndex index(static_cast<int64_t>(rows.at(0).size()), VectorMetric::InnerProduct);
  std::vector<float> flat;
  for (const json& row : rows)
    for (const json& x : row) flat.push_back(x.get<float>());
  index.add(std::span<const float>(flat));
  return index;
}

json read_json(const fs::path& path) {
  std::ifstream f(path);
  return json::parse(f);
}

void write_json(const fs::path& path, const json& j) { std::ofstream(path) << j.dump(1); }

// One whole-document chunk per fixture passage ("p00".."p15"), in three groups, compressed by the
// tiny AutoCompressor; the chunk texts are the passages.
const std::vector<std::string> kGroups{"bridge", "comparison", "misc"};
std::string passage_id(size_t i) { return (i < 10 ? "p0" : "p") + std::to_string(i); }
std::string passage_group(size_t i) { return kGroups[i % kGroups.size()]; }

compress::StoreManifest make_store(const fs::path& dir) {
  const compress::AutoCompressor ac =
      compress::AutoCompressor::load(std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac");
  fs::remove_all(dir);
  const std::vector<std::string> texts = passages();
  std::vector<compress::TokenizedDoc> docs;
  for (size_t i = 0; i < texts.size(); ++i)
    docs.push_back(
        {passage_id(i), std::vector<int32_t>(4 + i % 5, static_cast<int32_t>(5 + i)), passage_group(i), texts[i]});
  compress::CorpusOptions co;
  co.compress.segment_length = 5;
  co.quiet = true;
  return compress::compress_corpus(ac, docs, dir.string(), co);
}

std::vector<Passage> fixture_passages() {
  const std::vector<std::string> texts = passages();
  std::vector<Passage> out;
  for (size_t i = 0; i < texts.size(); ++i) out.push_back({passage_id(i), texts[i], passage_group(i)});
  return out;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::path(::testing::TempDir()) / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TEST(DenseEncoder, EmbeddingsMatchTheContrieverReference) {
  const auto enc = encoder(3);  // 16 passages in 6 batches of different padded lengths (64 ... 39)
  EXPECT_EQ(enc->dim(), 32);
  EXPECT_EQ(enc->dir(), kModelDir);
  expect_embeddings(enc->embed(passages()), fixture()["passage_embeddings"], "passages");
  expect_embeddings(enc->embed(queries()), fixture()["query_embeddings"], "queries");
}

TEST(DenseEncoder, BatchingDoesNotChangeTheEmbeddingsOrTheirOrder) {
  const std::vector<float> one = encoder(1)->embed(passages()).to_vector<float>();
  for (int64_t batch : {int64_t{5}, int64_t{16}, int64_t{64}}) {
    const std::vector<float> got = encoder(batch)->embed(passages()).to_vector<float>();
    expect_rows(got, fixture()["passage_embeddings"], 0, passages().size(), "batch " + std::to_string(batch));
    ASSERT_EQ(got.size(), one.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], one[i], 1e-6) << "batch " << batch << " value " << i;
  }
  // A text embeds the same alone and among others of other lengths.
  const std::vector<std::string> qs = queries();
  const std::vector<float> alone = encoder(4)->embed({qs[2]}).to_vector<float>();
  const std::vector<float> mixed = encoder(4)->embed({qs[0], passages()[0], qs[2]}).to_vector<float>();
  for (size_t d = 0; d < alone.size(); ++d) EXPECT_NEAR(mixed[2 * alone.size() + d], alone[d], 1e-6);
}

TEST(DenseEncoder, FingerprintNamesTheWeightsAndTheOptions) {
  EXPECT_EQ(encoder(3)->fingerprint(), encoder(7)->fingerprint());  // batching does not change embeddings
  DenseEncoderOptions o;
  o.max_tokens = 32;
  EXPECT_NE(DenseEncoder::load(kModelDir, cpu(), DType::F32, o)->fingerprint(), encoder()->fingerprint());
  o.max_tokens = fixture()["max_tokens"].get<int32_t>();
  o.pooling = DenseEncoderOptions::Pooling::kCls;
  EXPECT_NE(DenseEncoder::load(kModelDir, cpu(), DType::F32, o)->fingerprint(), encoder()->fingerprint());
}

TEST(DenseRanker, RanksLikeFaissIndexFlatIP) {
  const auto ranker = DenseRanker::build(encoder(), passages());
  EXPECT_EQ(ranker->size(), 16);
  EXPECT_EQ(ranker->name(), "dense");
  expect_rows(ranker->index().vectors(), fixture()["passage_embeddings"], 0, 16, "index");
  for (int64_t k : {int64_t{1}, int64_t{5}, int64_t{16}, int64_t{40}}) expect_reference_ranking(*ranker, k);
  const std::vector<std::string> qs = queries();
  for (size_t q = 0; q < qs.size(); ++q) EXPECT_EQ(full_ranking(*ranker, qs[q]), ranking(q)) << "query " << q;
  EXPECT_TRUE(ranker->search(qs[0], 0).empty());
  EXPECT_THROW(ranker->search(qs[0], -1), Error);
  EXPECT_TRUE(DenseRanker::build(encoder(), {})->search(qs[0], 5).empty());
}

TEST(DenseRanker, FactoryBuildsItBehindThePassageRankerInterface) {
  const RankerFactory factory = dense_ranker_factory(encoder());
  const std::unique_ptr<const PassageRanker> ranker = factory(passages());
  ASSERT_NE(ranker, nullptr);
  EXPECT_EQ(ranker->name(), "dense");
  EXPECT_EQ(ranker->size(), 16);
  expect_reference_ranking(*ranker, 5);
}

TEST(StoreDenseRanker, WritesTheIndexThenReusesIt) {
  const fs::path dir = fs::path(::testing::TempDir()) / "lloco_dense_store";
  const compress::StoreManifest m = make_store(dir);
  ASSERT_EQ(m.chunks.size(), 16u);
  const auto enc = encoder();
  const std::vector<Passage> ps = ContextRetriever::store_passages(dir.string());
  ASSERT_EQ(ps.size(), 16u);
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(ps[i].id, passage_id(i));
    EXPECT_EQ(ps[i].text, passages()[i]);
  }

  const auto built = store_dense_ranker(dir.string(), ps, enc);
  expect_reference_ranking(*built, 5);
  const fs::path faiss = dir / "retrieval" / "dense.faiss", meta = dir / "retrieval" / "dense.json";
  ASSERT_TRUE(fs::exists(faiss));
  ASSERT_TRUE(fs::exists(meta));
  const json j = read_json(meta);
  EXPECT_EQ(j["encoder"], enc->fingerprint());
  EXPECT_EQ(j["dim"], 32);
  EXPECT_EQ(j["metric"], "inner_product");
  std::vector<std::string> ids;
  for (size_t i = 0; i < 16; ++i) ids.push_back(passage_id(i));
  EXPECT_EQ(j["chunks"].get<std::vector<std::string>>(), ids);
  const FlatIndex on_disk = FlatIndex::read_faiss(faiss.string());
  EXPECT_EQ(on_disk.size(), 16);
  EXPECT_EQ(on_disk.dim(), 32);
  EXPECT_EQ(on_disk.metric(), VectorMetric::InnerProduct);
  expect_rows(on_disk.vectors(), fixture()["passage_embeddings"], 0, 16, "dense.faiss");

  // A second call reads the file instead of embedding: swap in the reference vectors in reverse
  // order and the ranking follows them (passage i now holds passage 15 - i's key).
  index_of(passage_embeddings_reversed()).write_faiss(faiss.string());
  const auto reused = store_dense_ranker(dir.string(), ps, enc);
  expect_rows(reused->index().vectors(), passage_embeddings_reversed(), 0, 16, "reused index");
  const std::vector<std::string> qs = queries();
  for (size_t q = 0; q < qs.size(); ++q) {
    const std::vector<Hit> hits = reused->search(qs[q], 16);
    ASSERT_EQ(hits.size(), 16u);
    for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].passage, 15 - ranking(q)[i]) << "query " << q;
  }
  fs::remove_all(dir);
}

TEST(StoreDenseRanker, EmbedsOnlyTheChunksAddedSinceTheIndexWasBuilt) {
  const fs::path dir = fresh_dir("lloco_dense_extend");
  const auto enc = encoder();
  const std::vector<Passage> all = fixture_passages();
  const std::vector<Passage> first(all.begin(), all.begin() + 10);
  store_dense_ranker(dir.string(), first, enc);
  const fs::path faiss = dir / "retrieval" / "dense.faiss";
  // Mark the cached rows (reversed reference rows 6..15) so that re-embedding them would show.
  const json reversed = passage_embeddings_reversed();
  const json marked(reversed.begin(), reversed.begin() + 10);
  index_of(marked).write_faiss(faiss.string());

  const auto grown = store_dense_ranker(dir.string(), all, enc);
  ASSERT_EQ(grown->size(), 16);
  expect_rows(grown->index().vectors(), marked, 0, 10, "kept rows");
  const json added(fixture()["passage_embeddings"].begin() + 10, fixture()["passage_embeddings"].end());
  std::vector<float> tail(grown->index().vectors().begin() + 10 * 32, grown->index().vectors().end());
  expect_rows(tail, added, 0, 6, "new rows");
  const json j = read_json(dir / "retrieval" / "dense.json");
  EXPECT_EQ(j["chunks"].size(), 16u);
  EXPECT_EQ(j["chunks"].back(), passage_id(15));
  const FlatIndex on_disk = FlatIndex::read_faiss(faiss.string());
  EXPECT_EQ(on_disk.vectors(), grown->index().vectors());
  fs::remove_all(dir);
}

// Each way the cache stops describing the passages: the index is rebuilt from the reference
// embeddings (the marked file's reversed rows are gone) and the JSON rewritten.
using Damage = std::function<void(const fs::path& faiss, const fs::path& meta)>;
void expect_rebuilt_after(const std::string& name, const Damage& damage, const std::vector<Passage>& passages_after) {
  SCOPED_TRACE(name);
  std::string slug = name;  // one directory per case: ctest -j runs the tests as parallel processes
  std::replace_if(slug.begin(), slug.end(), [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
  const fs::path dir = fresh_dir("lloco_dense_rebuild_" + slug);
  const auto enc = encoder();
  const std::vector<Passage> all = fixture_passages();
  store_dense_ranker(dir.string(), all, enc);
  const fs::path faiss = dir / "retrieval" / "dense.faiss", meta = dir / "retrieval" / "dense.json";
  index_of(passage_embeddings_reversed()).write_faiss(faiss.string());
  damage(faiss, meta);
  const auto r = store_dense_ranker(dir.string(), passages_after, enc);
  const size_t n = passages_after.size();
  ASSERT_EQ(r->size(), static_cast<int64_t>(n));
  expect_rows(r->index().vectors(), fixture()["passage_embeddings"], 0, n, "rebuilt index");
  expect_rows(FlatIndex::read_faiss(faiss.string()).vectors(), fixture()["passage_embeddings"], 0, n, "rewritten file");
  const json j = read_json(meta);
  EXPECT_EQ(j["encoder"], enc->fingerprint());
  ASSERT_EQ(j["chunks"].size(), n);
  for (size_t i = 0; i < n; ++i) EXPECT_EQ(j["chunks"][i], passages_after[i].id);
  fs::remove_all(dir);
}

TEST(StoreDenseRanker, RebuildsForAnotherEncoderOrOtherChunks) {
  const std::vector<Passage> all = fixture_passages();
  expect_rebuilt_after("another encoder", [](const fs::path&, const fs::path& meta) {
    json j = read_json(meta);
    j["encoder"] = "0123456789abcdef-mean-64";
    write_json(meta, j);
  }, all);
  expect_rebuilt_after("a chunk id changed", [](const fs::path&, const fs::path& meta) {
    json j = read_json(meta);
    j["chunks"][3] = "p03-old";
    write_json(meta, j);
  }, all);
  expect_rebuilt_after("the store lost chunks", [](const fs::path&, const fs::path&) {},
                       std::vector<Passage>(all.begin(), all.begin() + 12));
  expect_rebuilt_after("the JSON is not JSON", [](const fs::path&, const fs::path& meta) {
    std::ofstream(meta) << "{\"encoder\": ";
  }, all);
  expect_rebuilt_after("the index file is missing", [](const fs::path& faiss, const fs::path&) {
    fs::remove(faiss);
  }, all);
  expect_rebuilt_after("the index holds fewer rows than the JSON names", [](const fs::path& faiss, const fs::path&) {
    const json rows = passage_embeddings_reversed();
    index_of(json(rows.begin(), rows.begin() + 15)).write_faiss(faiss.string());
  }, all);
}

// RECOMMENDED BEHAVIOUR (needs the change to store_dense_ranker reported with this test): the index
// is a cache, so a damaged dense.faiss next to a matching dense.json, or a dense.json of the wrong
// shape, is rebuilt rather than making every retrieval over the store fail until someone deletes the
// file by hand.
TEST(StoreDenseRanker, RebuildsATruncatedOrCorruptIndexFile) {
  const std::vector<Passage> all = fixture_passages();
  expect_rebuilt_after("truncated dense.faiss", [](const fs::path& faiss, const fs::path&) {
    fs::resize_file(faiss, fs::file_size(faiss) / 2);
  }, all);
  expect_rebuilt_after("garbage dense.faiss", [](const fs::path& faiss, const fs::path&) {
    std::ofstream(faiss, std::ios::binary | std::ios::trunc) << "not a faiss index";
  }, all);
  expect_rebuilt_after("a dense.json whose encoder is not a string", [](const fs::path&, const fs::path& meta) {
    json j = read_json(meta);
    j["encoder"] = 7;
    write_json(meta, j);
  }, all);
}

// The retriever over the store ranks chunks as the reference does; the group and adapter follow the
// hits (the group holding most of them, ties to the better-ranked hit) and the prefix is their
// summaries, best first.
TEST(DenseContextRetriever, RetrievesTheReferenceTopKFromTheStore) {
  const fs::path dir = fs::path(::testing::TempDir()) / "lloco_dense_context";
  const compress::StoreManifest m = make_store(dir);
  const ContextRetriever r = dense_context_retriever(dir.string(), encoder());
  EXPECT_TRUE(fs::exists(dir / "retrieval" / "dense.faiss"));
  const std::map<std::string, int64_t> adapters{{"bridge", 0}, {"comparison", 1}};
  const std::vector<std::string> qs = queries();
  std::set<std::string> groups_seen;
  for (size_t q = 0; q < qs.size(); ++q) {
    SCOPED_TRACE("query " + std::to_string(q));
    const RetrievedContext c = r.retrieve(qs[q], 5, adapters);
    const std::vector<int64_t> want = ranking(q);
    std::vector<std::string> want_ids;
    std::map<std::string, int64_t> votes;
    for (size_t i = 0; i < 5; ++i) {
      want_ids.push_back(passage_id(static_cast<size_t>(want[i])));
      ++votes[passage_group(static_cast<size_t>(want[i]))];
    }
    EXPECT_EQ(c.ids, want_ids);
    ASSERT_EQ(c.scores.size(), 5u);
    for (size_t i = 0; i < 5; ++i)
      EXPECT_NEAR(c.scores[i], ranking_scores(q)[i], kScoreRelTol * std::max(1.0, std::abs(ranking_scores(q)[i])));
    std::string want_group;
    for (size_t i = 0; i < 5; ++i) {  // best-ranked first, so a tie keeps the earlier group
      const std::string g = passage_group(static_cast<size_t>(want[i]));
      if (want_group.empty() || votes[g] > votes[want_group]) want_group = g;
    }
    EXPECT_EQ(c.group, want_group);
    EXPECT_EQ(c.adapter, adapters.count(want_group) ? adapters.at(want_group) : -1);
    groups_seen.insert(c.group);
    std::vector<Tensor> parts;
    for (const std::string& id : want_ids) parts.push_back(compress::load_summary(dir.string(), m, id));
    EXPECT_EQ(c.prefix.to_vector<float>(), concat(parts, 0).to_vector<float>());

    // Restricted to one group: that group's best chunks in reference order, not a filtered top-5.
    RetrieveOptions o;
    o.k = 3;
    o.group = "misc";
    std::vector<std::string> want_misc;
    for (int64_t p : want)
      if (passage_group(static_cast<size_t>(p)) == "misc" && want_misc.size() < 3)
        want_misc.push_back(passage_id(static_cast<size_t>(p)));
    const RetrievedContext in_group = r.retrieve(qs[q], o, adapters);
    EXPECT_EQ(in_group.ids, want_misc);
    EXPECT_EQ(in_group.group, "misc");
    EXPECT_EQ(in_group.adapter, -1);
  }
  EXPECT_GE(groups_seen.size(), 2u) << "the fixture should exercise more than one majority group";
  fs::remove_all(dir);
}

fs::path copy_of_model_without(const std::string& file) {
  const fs::path dir = fresh_dir("lloco_dense_missing_" + file);
  for (const auto& e : fs::directory_iterator(kModelDir))
    if (e.path().filename() != file) fs::copy_file(e.path(), dir / e.path().filename());
  return dir;
}

void expect_error_mentions(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    for (const std::string& p : parts)
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what() << "\nmissing: " << p;
  }
}

TEST(DenseEncoder, ErrorsNameTheMissingFileAndTheBadLength) {
  for (const std::string file : {"vocab.txt", "config.json"}) {
    const fs::path dir = copy_of_model_without(file);
    expect_error_mentions([&] { DenseEncoder::load(dir.string()); }, {(dir / file).string()});
    fs::remove_all(dir);
  }
  DenseEncoderOptions o;
  o.max_tokens = 129;  // the fixture has 128 positions
  expect_error_mentions([&] { DenseEncoder::load(kModelDir, cpu(), DType::F32, o); }, {"129", "128"});
  o.max_tokens = 128;
  EXPECT_NO_THROW(DenseEncoder::load(kModelDir, cpu(), DType::F32, o));
}

}  // namespace
}  // namespace lloco::retrieve
