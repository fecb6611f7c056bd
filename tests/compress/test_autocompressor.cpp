// The AutoCompressor encoder against the reference of tests/fixtures/gen_compress_fixtures.py
// (AutoCompressors' segment loop restated on transformers' LlamaModel): a tiny AutoCompressor with
// 4 summary tokens and 5-token segments, accumulated, not accumulated, with and without summaries for
// the last partial segment; the vector count formula; bad directories fail naming file and field.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "compress/autocompressor.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/safetensors.h"

namespace lloco::compress {
namespace {

namespace fs = std::filesystem;

const std::string kAcDir = std::string(LLOCO_FIXTURES_DIR) + "/compress/tiny_ac";
const std::string kExpected = std::string(LLOCO_FIXTURES_DIR) + "/compress/expected.safetensors";

std::vector<int32_t> ids_of(const Tensor& t) {
  const std::vector<int64_t> v = t.to_vector<int64_t>();
  return std::vector<int32_t>(v.begin(), v.end());
}

void expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(shape_str(got.shape()), shape_str(want.shape())) << what;
  const DiffStats d = compare_tensors(got, want);
  EXPECT_LE(d.max_abs, 1e-4 * d.max_ref) << what << ": max |diff| " << d.max_abs << " on values of scale " << d.max_ref;
}

TEST(AutoCompressor, SummaryVectorsMatchTheReference) {
  const AutoCompressor ac = AutoCompressor::load(kAcDir);
  EXPECT_EQ(ac.summary_length(), 4);
  EXPECT_TRUE(ac.accumulate_summary());
  const SafetensorsFile ex = load_safetensors(kExpected);
  CompressOptions o;
  o.segment_length = std::stoll(ex.metadata().at("segment_length"));
  expect_close(ac.compress(ids_of(ex.get("doc13")), o), ex.get("summary13"), "13 tokens, segments 5 + 5 + 3");
  expect_close(ac.compress(ids_of(ex.get("doc10")), o), ex.get("summary10"), "10 tokens, segments 5 + 5");
  CompressOptions no_last = o;
  no_last.summarize_last_segment = false;
  expect_close(ac.compress(ids_of(ex.get("doc13")), no_last), ex.get("summary13_nolast"), "no summary for the tail");
  const AutoCompressor last_only(ac.model(), ac.embed_summary(), /*accumulate_summary=*/false);
  expect_close(last_only.compress(ids_of(ex.get("doc13")), o), ex.get("summary13_last"), "not accumulated");
}

TEST(AutoCompressor, VectorCountFollowsLlocoFormula) {
  // LLoCO: 50 * ceil(N / 1536) vectors, the last partial segment included.
  models::LlamaConfig cfg = models::LlamaConfig::tiny();
  const AutoCompressor ac(models::LlamaModel::random(cfg, 1), zeros({50, cfg.hidden_size}), true);
  const CompressOptions lloco;
  EXPECT_EQ(ac.num_vectors(1, lloco), 50);
  EXPECT_EQ(ac.num_vectors(1536, lloco), 50);
  EXPECT_EQ(ac.num_vectors(1537, lloco), 100);
  EXPECT_EQ(ac.num_vectors(122880, lloco), 4000);  // the 80-segment cap: "128k window"
  CompressOptions no_last;
  no_last.summarize_last_segment = false;
  EXPECT_EQ(ac.num_vectors(1537, no_last), 50);
  EXPECT_EQ(ac.num_vectors(100, no_last), 0);
  const AutoCompressor last_only(models::LlamaModel::random(cfg, 1), zeros({50, cfg.hidden_size}), false);
  EXPECT_EQ(last_only.num_vectors(5000, lloco), 50);
  // compress() returns what num_vectors promises.
  const std::vector<int32_t> doc(23, 5);
  CompressOptions small;
  small.segment_length = 10;
  EXPECT_EQ(ac.compress(doc, small).size(0), ac.num_vectors(23, small));
  EXPECT_THROW(ac.compress({}, small), Error);
  EXPECT_THROW(ac.compress({static_cast<int32_t>(cfg.vocab_size)}, small), Error);
}

// Copies the fixture AutoCompressor, lets `edit` break it, expects load to fail naming `needles`.
void expect_load_error(const std::string& tag, const std::function<void(const fs::path&)>& edit,
                       const std::vector<std::string>& needles) {
  SCOPED_TRACE(tag);
  const fs::path dir = fs::path(::testing::TempDir()) / ("lloco_ac_bad_" + tag);
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* f : {"config.json", "model.safetensors"}) fs::copy_file(fs::path(kAcDir) / f, dir / f);
  edit(dir);
  try {
    AutoCompressor::load(dir.string());
    ADD_FAILURE() << "loaded";
  } catch (const Error& e) {
    for (const std::string& n : needles)
      EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << "lacks '" << n << "': " << e.what();
  }
  fs::remove_all(dir);
}

void edit_config(const fs::path& dir, const std::string& from, const std::string& to) {
  std::ifstream f(dir / "config.json");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t at = s.find(from);
  ASSERT_NE(at, std::string::npos) << from;
  s.replace(at, from.size(), to);
  write_file_atomic((dir / "config.json").string(), s);
}

void edit_weights(const fs::path& dir, const std::function<void(std::vector<std::pair<std::string, Tensor>>&)>& f) {
  const std::string p = (dir / "model.safetensors").string();
  std::vector<std::pair<std::string, Tensor>> items;
  for (const auto& [n, t] : load_safetensors(p).items()) items.emplace_back(n, t.clone());
  f(items);
  save_safetensors(p, items);
}

TEST(AutoCompressor, BadDirectoriesFailNamingFileAndField) {
  expect_load_error("no_summary_length", [](const fs::path& d) { edit_config(d, "\"summary_length\"", "\"summary_len\""); },
                    {"config.json", "summary_length"});
  expect_load_error("accumulate", [](const fs::path& d) {
    edit_config(d, "\"accumulate_summary\": true", "\"accumulate_summary\": \"yes\"");
  }, {"config.json", "accumulate_summary", "\"yes\""});
  expect_load_error("no_table", [](const fs::path& d) {
    edit_weights(d, [](auto& items) { std::erase_if(items, [](const auto& i) { return i.first == "embed_summary.weight"; }); });
  }, {"model.safetensors", "embed_summary.weight"});
  expect_load_error("table_shape", [](const fs::path& d) {
    edit_weights(d, [](auto& items) {
      for (auto& [n, t] : items)
        if (n == "embed_summary.weight") t = zeros({5, 32});
    });
  }, {"model.safetensors", "embed_summary.weight", "[5, 32]", "[4, 32]"});
  expect_load_error("extra", [](const fs::path& d) {
    edit_weights(d, [](auto& items) { items.emplace_back("summary_proj.weight", zeros({4, 4})); });
  }, {"model.safetensors", "summary_proj.weight"});
}

}  // namespace
}  // namespace lloco::compress
