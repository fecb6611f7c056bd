// FlatIndex against faiss-cpu 1.9.0 (tests/fixtures/gen_vector_index_fixtures.py): faiss's own
// IndexFlatIP / IndexFlatL2 files read back and searched to faiss's ids and distances, our writer's
// bytes identical to faiss.write_index's, ranking rules, and every kind of corrupt file.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <csignal>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/ops.h"
#include "retrieve/vector_index.h"

namespace lloco::retrieve {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kDir = std::string(LLOCO_FIXTURES_DIR) + "/retrieve/";

json fixture() {
  std::ifstream f(kDir + "vector_index.json");
  return json::parse(f);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

std::vector<float> flat(const json& rows) {
  std::vector<float> out;
  for (const json& row : rows)
    for (const json& v : row) out.push_back(v.get<float>());
  return out;
}

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '_');  // parameterized names end in "/0"
    path = fs::temp_directory_path() / ("lloco_vector_index_" + std::to_string(::getpid()) + "_" + test);
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

// Scores are float32 sums of up to 24 products: compare relative to max(1, |faiss|).
void expect_matches_faiss(const FlatIndex& index, const json& fx) {
  const int64_t n = index.size();
  const std::vector<float> queries = flat(fx["queries"]);
  const bool ip = index.metric() == VectorMetric::InnerProduct;
  for (const json& s : fx["searches"]) {
    const int64_t k = s["k"];
    const auto hits = index.search(std::span<const float>(queries), k);
    ASSERT_EQ(hits.size(), s["ids"].size()) << "k " << k;
    for (size_t q = 0; q < hits.size(); ++q) {
      const auto want_ids = s["ids"][q].get<std::vector<int64_t>>();
      const auto want_d = s["distances"][q].get<std::vector<double>>();
      ASSERT_EQ(hits[q].size(), static_cast<size_t>(std::min(k, n))) << "k " << k << " query " << q;
      for (size_t r = 0; r < hits[q].size(); ++r) {
        EXPECT_EQ(hits[q][r].id, want_ids[r]) << "k " << k << " query " << q << " rank " << r;
        EXPECT_NEAR(hits[q][r].score, want_d[r], 1e-5 * std::max(1.0, std::abs(want_d[r])))
            << "k " << k << " query " << q << " rank " << r;
      }
      // faiss pads past ntotal; we return the short list instead (documented in vector_index.h).
      for (size_t r = hits[q].size(); r < want_ids.size(); ++r) {
        EXPECT_EQ(want_ids[r], -1);
        EXPECT_EQ(want_d[r], ip ? -FLT_MAX : FLT_MAX);
      }
    }
  }
}

class FaissFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(FaissFixture, ReadsFaissFileAndSearchesLikeFaiss) {
  const json fx = fixture()[GetParam()];
  const FlatIndex index = FlatIndex::read_faiss(kDir + fx["file"].get<std::string>());
  EXPECT_EQ(index.dim(), fx["d"].get<int64_t>());
  EXPECT_EQ(index.metric(), GetParam() == "ip" ? VectorMetric::InnerProduct : VectorMetric::L2);
  EXPECT_EQ(index.size(), static_cast<int64_t>(fx["vectors"].size()));
  EXPECT_EQ(index.vectors(), flat(fx["vectors"]));
  expect_matches_faiss(index, fx);
}

TEST_P(FaissFixture, BuiltIndexWritesFaissIdenticalBytes) {
  const json fx = fixture()[GetParam()];
  const int64_t d = fx["d"];
  const std::vector<float> vectors = flat(fx["vectors"]);
  const int64_t n = static_cast<int64_t>(vectors.size()) / d;
  FlatIndex index(d, GetParam() == "ip" ? VectorMetric::InnerProduct : VectorMetric::L2);
  // Two adds, one from a tensor and one from a span, must equal one faiss add.
  index.add(from_vector(std::vector<float>(vectors.begin(), vectors.begin() + 5 * d), {5, d}));
  index.add(std::span<const float>(vectors).subspan(static_cast<size_t>(5 * d)));
  ASSERT_EQ(index.size(), n);
  const std::string faiss_file = read_all(kDir + fx["file"].get<std::string>());
  EXPECT_TRUE(index.faiss_bytes() == faiss_file) << "in-memory bytes differ from faiss.write_index's";
  TempDir dir;
  index.write_faiss(dir.file("out.faiss"));
  EXPECT_TRUE(read_all(dir.file("out.faiss")) == faiss_file) << "written file differs from faiss.write_index's";
  EXPECT_EQ(dir.files(), std::vector<std::string>{"out.faiss"});
  expect_matches_faiss(index, fx);
}

TEST_P(FaissFixture, RoundTripsThroughOurOwnFile) {
  const json fx = fixture()[GetParam()];
  const FlatIndex a = FlatIndex::read_faiss(kDir + fx["file"].get<std::string>());
  TempDir dir;
  a.write_faiss(dir.file("a.faiss"));
  const FlatIndex b = FlatIndex::read_faiss(dir.file("a.faiss"));
  EXPECT_EQ(b.dim(), a.dim());
  EXPECT_EQ(b.metric(), a.metric());
  EXPECT_EQ(b.vectors(), a.vectors());
  expect_matches_faiss(b, fx);
}

INSTANTIATE_TEST_SUITE_P(FlatIndex, FaissFixture, ::testing::Values("ip", "l2"));

TEST(FlatIndex, EmptyIndexHasTheFaissHeaderOnlyAndSearchesToNothing) {
  for (VectorMetric m : {VectorMetric::InnerProduct, VectorMetric::L2}) {
    FlatIndex empty(3, m);
    const std::string bytes = empty.faiss_bytes();
    // faiss.write_index(IndexFlatIP(3)): "IxFI", d 3, ntotal 0, 2 x (1 << 20), trained, metric, 0 floats.
    std::string want = m == VectorMetric::InnerProduct ? "IxFI" : "IxF2";
    const char tail[] = {3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0,
                         1, static_cast<char>(m), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    want.append(tail, sizeof tail);
    EXPECT_TRUE(bytes == want);
    const FlatIndex back = FlatIndex::from_faiss_bytes(bytes, "empty");
    EXPECT_EQ(back.size(), 0);
    EXPECT_EQ(back.metric(), m);
    const auto hits = back.search(std::vector<float>{1, 2, 3, 4, 5, 6}, 4);
    ASSERT_EQ(hits.size(), 2u);
    EXPECT_TRUE(hits[0].empty() && hits[1].empty());
  }
}

TEST(FlatIndex, TiesGoToTheLowerIdAndShortIndexesReturnWhatTheyHave) {
  // Rows 0, 2 and 3 are equal; row 1 is the query's best for both metrics.
  const std::vector<float> rows = {1, 0, 2, 1, 1, 0, 1, 0, -1, -1};
  for (VectorMetric m : {VectorMetric::InnerProduct, VectorMetric::L2}) {
    FlatIndex index(2, m);
    index.add(std::span<const float>(rows));
    const auto hits = index.search(std::vector<float>{2, 1}, 10);
    ASSERT_EQ(hits.size(), 1u);
    std::vector<int64_t> ids;
    for (const VectorHit& h : hits[0]) ids.push_back(h.id);
    EXPECT_EQ(ids, (std::vector<int64_t>{1, 0, 2, 3, 4})) << static_cast<int>(m);
    if (m == VectorMetric::InnerProduct) {
      EXPECT_EQ(hits[0][0].score, 5.0f);
      EXPECT_EQ(hits[0][4].score, -3.0f);
    } else {
      EXPECT_EQ(hits[0][0].score, 0.0f);
      EXPECT_EQ(hits[0][1].score, 2.0f);
      EXPECT_EQ(hits[0][4].score, 13.0f);
    }
  }
}

TEST(FlatIndex, HalfPrecisionInputsAreConvertedToF32) {
  const std::vector<float> values = {0.1f, -2.5f, 3.3f, 1e-3f, 7.0f, -0.7f};
  const Tensor bf = from_vector(values, {2, 3}, DType::BF16);
  FlatIndex index(3, VectorMetric::InnerProduct);
  index.add(bf);
  EXPECT_EQ(index.vectors(), bf.to_vector<float>());
  const auto hits = index.search(from_vector(std::vector<float>{0, 1, 0}, {1, 3}, DType::F16), 2);
  ASSERT_EQ(hits[0].size(), 2u);
  EXPECT_EQ(hits[0][0].id, 1);
  EXPECT_EQ(hits[0][0].score, bf.to_vector<float>()[4]);
}

TEST(FlatIndex, ShapeAndArgumentErrorsNameBothValues) {
  FlatIndex index(4, VectorMetric::L2);
  std::string msg = message_of([&] { index.add(zeros({2, 5})); });
  EXPECT_NE(msg.find("5 vs 4"), std::string::npos) << msg;
  msg = message_of([&] { index.add(std::vector<float>(6, 1.0f)); });
  EXPECT_NE(msg.find("6 values"), std::string::npos) << msg;
  index.add(zeros({3, 4}));
  msg = message_of([&] { index.search(zeros({1, 3}), 1); });
  EXPECT_NE(msg.find("3 vs 4"), std::string::npos) << msg;
  msg = message_of([&] { index.search(zeros({1, 4}), 0); });
  EXPECT_NE(msg.find("k must be >= 1, got 0"), std::string::npos) << msg;
  msg = message_of([&] { index.add(std::vector<float>{1, 2, NAN, 4}); });
  EXPECT_NE(msg.find("row 0 column 2"), std::string::npos) << msg;
  msg = message_of([&] { index.search(std::vector<float>{1, INFINITY, 0, 0}, 1); });
  EXPECT_NE(msg.find("NaN"), std::string::npos) << msg;
  msg = message_of([&] { FlatIndex(0, VectorMetric::L2); });
  EXPECT_NE(msg.find("got 0"), std::string::npos) << msg;
  EXPECT_EQ(index.size(), 3);
}

TEST(FlatIndex, NormalizedRowsRankByCosine) {
  const Tensor x = from_vector(std::vector<float>{3, 4, 0, 0, 0, 0, 0, 0, 10, 0, 1, 1}, {3, 4});
  const std::vector<float> u = l2_normalize_rows(x).to_vector<float>();
  EXPECT_NEAR(u[0], 0.6f, 1e-7);
  EXPECT_NEAR(u[1], 0.8f, 1e-7);
  for (int c = 4; c < 8; ++c) EXPECT_EQ(u[c], 0.0f) << "zero row stays zero";
  double norm2 = 0;
  for (int c = 8; c < 12; ++c) norm2 += double(u[c]) * u[c];
  EXPECT_NEAR(norm2, 1.0, 1e-6);
  FlatIndex index(4, VectorMetric::InnerProduct);
  index.add(l2_normalize_rows(x));
  // Raw inner product would pick row 2 (|row 2| = 10.1); cosine picks row 0.
  const auto hits = index.search(l2_normalize_rows(from_vector(std::vector<float>{3, 4, 0, 0}, {1, 4})), 1);
  EXPECT_EQ(hits[0][0].id, 0);
  EXPECT_NEAR(hits[0][0].score, 1.0f, 1e-6);
}

// ---- corrupt files ----

template <typename T>
std::string patched(std::string bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof value);
  return bytes;
}

void expect_rejected(const std::string& bytes, const std::vector<std::string>& needles) {
  const std::string msg = message_of([&] { FlatIndex::from_faiss_bytes(bytes, "bad.faiss"); });
  EXPECT_NE(msg.find("bad.faiss"), std::string::npos) << msg;
  for (const std::string& needle : needles) EXPECT_NE(msg.find(needle), std::string::npos) << msg;
}

TEST(FlatIndexFile, EveryTruncationIsRejected) {
  const std::string good = read_all(kDir + "flat_l2.faiss");
  ASSERT_EQ(good.size(), 45u + 29 * 17 * 4);
  for (size_t len = 0; len < good.size(); ++len) {
    const std::string msg = message_of([&] { FlatIndex::from_faiss_bytes(good.substr(0, len), "cut.faiss"); });
    EXPECT_NE(msg.find("cut.faiss"), std::string::npos) << len << ": " << msg;
    EXPECT_NE(msg.find("trunc"), std::string::npos) << len << ": " << msg;
  }
  // The header names the field being read.
  expect_rejected(good.substr(0, 10), {"field 'ntotal'", "offset 8", "10 bytes"});
  expect_rejected(good.substr(0, 40), {"field 'count'", "offset 37"});
  expect_rejected(good.substr(0, 100), {"field 'ntotal' = 29", "55 bytes after the header", "at most 0 vectors"});
  EXPECT_NO_THROW(FlatIndex::from_faiss_bytes(good, "good.faiss"));
}

TEST(FlatIndexFile, CorruptHeadersAreRejectedNamingFieldAndValues) {
  const std::string good = read_all(kDir + "flat_ip.faiss");
  expect_rejected("IxPQ" + good.substr(4), {"fourcc 'IxPQ'", "IxFI"});
  expect_rejected(patched<int32_t>(good, 4, 0), {"field 'd' = 0"});
  expect_rejected(patched<int32_t>(good, 4, -24), {"field 'd' = -24"});
  expect_rejected(patched<int64_t>(good, 8, -1), {"field 'ntotal' = -1"});
  expect_rejected(patched<int64_t>(good, 8, int64_t{1} << 62), {"field 'ntotal' = 4611686018427387904", "at most 37"});
  expect_rejected(patched<int64_t>(good, 8, 36), {"field 'count' = 888", "ntotal * d = 864"});
  expect_rejected(patched<uint64_t>(good, 37, ~uint64_t{0}), {"field 'count' = 18446744073709551615", "888"});
  expect_rejected(patched<uint8_t>(good, 32, 2), {"field 'is_trained' = 2"});
  expect_rejected(patched<int32_t>(good, 33, 7), {"field 'metric_type' = 7"});
  expect_rejected(patched<int32_t>(good, 33, 1), {"field 'metric_type' = 1 (L2)", "fourcc 'IxFI' (inner product)"});
  // A smaller d with a matching count leaves the vectors' bytes unaccounted for.
  expect_rejected(patched<uint64_t>(patched<int32_t>(good, 4, 12), 37, 37 * 12), {"3552 bytes follow", "= 1776"});
  expect_rejected(good + std::string(4, '\0'), {"3556 bytes", "3552", "trailing"});
  expect_rejected(patched<float>(good, 45 + 4 * 30, NAN), {"row 1 column 6"});
  // faiss ignores both dummies and so do we; the generic "IxFl" tag with metric 0 is an IP index.
  const FlatIndex odd = FlatIndex::from_faiss_bytes(patched<int64_t>(good, 16, 7), "dummy.faiss");
  EXPECT_EQ(odd.size(), 37);
  const FlatIndex generic = FlatIndex::from_faiss_bytes("IxFl" + good.substr(4), "generic.faiss");
  EXPECT_EQ(generic.metric(), VectorMetric::InnerProduct);
  EXPECT_TRUE(generic.faiss_bytes() == good);
}

TEST(FlatIndexFile, MissingFileNamesThePath) {
  TempDir dir;
  const std::string msg = message_of([&] { FlatIndex::read_faiss(dir.file("none.faiss")); });
  EXPECT_NE(msg.find("cannot open"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir.file("none.faiss")), std::string::npos) << msg;
}

// A write that fails part-way (here: the file-size limit, as on a full disk) leaves the previous
// index file untouched and no temp file behind.
TEST(FlatIndexFile, FailedWriteLeavesTheOldFileIntact) {
  TempDir dir;
  const std::string path = dir.file("keys.faiss");
  FlatIndex small(2, VectorMetric::L2);
  small.add(std::vector<float>{1, 2, 3, 4});
  small.write_faiss(path);
  const std::string old = read_all(path);
  const FlatIndex big = FlatIndex::read_faiss(kDir + "flat_ip.faiss");

  struct rlimit saved;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &saved), 0);
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);  // get EFBIG from write() instead of a signal
  struct rlimit limited = saved;
  limited.rlim_cur = 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &limited), 0);
  const std::string msg = message_of([&] { big.write_faiss(path); });
  ::setrlimit(RLIMIT_FSIZE, &saved);
  std::signal(SIGXFSZ, old_handler);

  EXPECT_NE(msg.find("cannot write"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_TRUE(read_all(path) == old);
  EXPECT_EQ(dir.files(), std::vector<std::string>{"keys.faiss"});
  EXPECT_EQ(FlatIndex::read_faiss(path).vectors(), (std::vector<float>{1, 2, 3, 4}));
}

}  // namespace
}  // namespace lloco::retrieve
