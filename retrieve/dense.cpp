#include "retrieve/dense.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <optional>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/autograd.h"
#include "core/error.h"

namespace lloco::retrieve {

namespace fs = std::filesystem;

namespace {

// FNV-1a over the size, the first and the last MiB of a file: cheap on multi-GB weights, and any
// re-export or other checkpoint changes it.
void hash_file(const fs::path& path, uint64_t& h) {
  const auto mix = [&h](const char* data, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<unsigned char>(data[i])) * 1099511628211ull;
  };
  std::ifstream f(path, std::ios::binary);
  LLOCO_CHECK(f.good(), "DenseEncoder", "cannot read ", path.string());
  const uint64_t size = fs::file_size(path);
  mix(reinterpret_cast<const char*>(&size), sizeof size);
  constexpr uint64_t kEdge = 1 << 20;
  std::string buf(static_cast<size_t>(std::min(size, kEdge)), '\0');
  f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
  mix(buf.data(), buf.size());
  if (size > kEdge) {
    f.seekg(static_cast<std::streamoff>(size - std::min(size - kEdge, kEdge)));
    buf.resize(static_cast<size_t>(std::min(size - kEdge, kEdge)));
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    mix(buf.data(), buf.size());
  }
}

std::string fingerprint_of(const fs::path& dir, const DenseEncoderOptions& o, DType dtype) {
  uint64_t h = 1469598103934665603ull;
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    if (name == "config.json" || name == "vocab.txt" || name == "tokenizer_config.json" ||
        e.path().extension() == ".safetensors")
      files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& f : files) hash_file(f, h);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
  return std::string(hex) + (o.pooling == DenseEncoderOptions::Pooling::kMean ? "-mean-" : "-cls-") +
         std::to_string(o.max_tokens) + "-" + dtype_name(dtype);
}

}  // namespace

DenseEncoder::DenseEncoder(std::string dir, models::BertModel model, models::WordPieceTokenizer tok,
                           DenseEncoderOptions options)
    : dir_(std::move(dir)), model_(std::move(model)), tok_(std::move(tok)), options_(options) {
  fingerprint_ = fingerprint_of(dir_, options_, model_.dtype());
}

std::shared_ptr<const DenseEncoder> DenseEncoder::load(const std::string& dir, Device device, DType dtype,
                                                       DenseEncoderOptions options) {
  LLOCO_CHECK((options.max_tokens == 0 || options.max_tokens >= 2) && options.batch_size > 0, "DenseEncoder", dir,
              ": max_tokens must be 0 (the tokenizer's) or >= 2 and batch_size positive, got ", options.max_tokens, " and ",
              options.batch_size);
  models::BertModel model = models::BertModel::load(dir, device, dtype);
  models::WordPieceTokenizer tok = models::WordPieceTokenizer::from_dir(dir);
  const int64_t positions = model.config.max_position_embeddings, tokenizer_max = tok.config().model_max_length;
  LLOCO_CHECK(options.max_tokens <= positions, "DenseEncoder", dir,
              ": max_tokens exceeds the model's max_position_embeddings: ", options.max_tokens, " vs ", positions);
  if (options.max_tokens == 0)
    options.max_tokens = static_cast<int32_t>(tokenizer_max > 0 ? std::min(tokenizer_max, positions) : positions);
  LLOCO_CHECK(tok.vocab_size() <= model.config.vocab_size, "DenseEncoder", dir,
              ": vocab.txt has more tokens than the model's vocab_size: ", tok.vocab_size(), " vs ", model.config.vocab_size);
  return std::shared_ptr<const DenseEncoder>(new DenseEncoder(dir, std::move(model), std::move(tok), options));
}

Tensor DenseEncoder::embed(const std::vector<std::string>& texts) const {
  const NoGradGuard no_grad;
  const auto n = static_cast<int64_t>(texts.size());
  std::vector<std::vector<int32_t>> ids(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) ids[i] = tok_.encode(texts[i], true, options_.max_tokens);
  // Longest first, so each batch pads to a similar length (and a too-big batch fails at once).
  std::vector<int64_t> order(texts.size());
  std::iota(order.begin(), order.end(), int64_t{0});
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return ids[static_cast<size_t>(a)].size() > ids[static_cast<size_t>(b)].size();
  });
  std::vector<float> out(static_cast<size_t>(n * dim()));
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t begin = 0; begin < n; begin += options_.batch_size) {
    const int64_t end = std::min(n, begin + options_.batch_size), rows = end - begin;
    const auto seq = static_cast<int64_t>(ids[static_cast<size_t>(order[static_cast<size_t>(begin)])].size());
    std::vector<int32_t> batch(static_cast<size_t>(rows * seq), tok_.pad_id()), mask(batch.size(), 0);
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<int32_t>& row = ids[static_cast<size_t>(order[static_cast<size_t>(begin + r)])];
      std::copy(row.begin(), row.end(), batch.begin() + r * seq);
      std::fill_n(mask.begin() + r * seq, row.size(), 1);
    }
    const Device device = model_.device();
    const Tensor id_t = from_vector(batch, {rows, seq}, DType::I32, device);    // [rows, seq]
    const Tensor mask_t = from_vector(mask, {rows, seq}, DType::I32, device);   // [rows, seq]
    const Tensor hidden = model_.forward(id_t, mask_t);                         // [rows, seq, D]
    const Tensor pooled = options_.pooling == DenseEncoderOptions::Pooling::kMean ? models::mean_pool(hidden, mask_t)
                                                                                  : models::cls_pool(hidden);
    const std::vector<float> v = pooled.to_vector<float>();  // [rows, D]
    for (int64_t r = 0; r < rows; ++r)
      std::copy_n(v.begin() + r * dim(), dim(), out.begin() + order[static_cast<size_t>(begin + r)] * dim());
    if (options_.progress) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "\rembedded %lld/%lld texts  %.1f texts/s  ETA %.0f s   ", static_cast<long long>(end),
                   static_cast<long long>(n), end / secs, (n - end) * secs / end);
      if (end == n) std::fprintf(stderr, "\n");
    }
  }
  return from_vector(out, {n, dim()});
}

DenseRanker::DenseRanker(std::shared_ptr<const DenseEncoder> encoder, FlatIndex index)
    : encoder_(std::move(encoder)), index_(std::move(index)) {
  LLOCO_CHECK(encoder_ != nullptr, "DenseRanker", "no encoder");
  LLOCO_CHECK(index_.metric() == VectorMetric::InnerProduct, "DenseRanker", "the index must rank by inner product");
  LLOCO_CHECK_EQ(index_.dim(), encoder_->dim(), "DenseRanker", "index dim vs encoder hidden size");
}

std::unique_ptr<const DenseRanker> DenseRanker::build(std::shared_ptr<const DenseEncoder> encoder,
                                                      const std::vector<std::string>& texts) {
  FlatIndex index(encoder->dim(), VectorMetric::InnerProduct);
  if (!texts.empty()) index.add(encoder->embed(texts));
  return std::make_unique<const DenseRanker>(std::move(encoder), std::move(index));
}

std::vector<Hit> DenseRanker::search(const std::string& query, int64_t k) const {
  LLOCO_CHECK(k >= 0, "DenseRanker::search", "k must be >= 0, got ", k);
  if (k == 0 || size() == 0) return {};
  const std::vector<std::vector<VectorHit>> found = index_.search(encoder_->embed({query}), k);  // one query
  std::vector<Hit> hits;
  for (const VectorHit& h : found.at(0)) hits.push_back({h.id, h.score});
  return hits;
}

RankerFactory dense_ranker_factory(std::shared_ptr<const DenseEncoder> encoder) {
  return [encoder](const std::vector<std::string>& texts) -> std::unique_ptr<const PassageRanker> {
    return DenseRanker::build(encoder, texts);
  };
}

std::unique_ptr<const DenseRanker> store_dense_ranker(const std::string& store_dir, const std::vector<Passage>& passages,
                                                      std::shared_ptr<const DenseEncoder> encoder) {
  const fs::path dir = fs::path(store_dir) / "retrieval";
  const fs::path index_path = dir / "dense.faiss", meta_path = dir / "dense.json";
  FlatIndex index(encoder->dim(), VectorMetric::InnerProduct);
  size_t reused = 0;  // leading passages whose keys the cached index already holds
  if (fs::exists(meta_path) && fs::exists(index_path)) {
    std::ifstream f(meta_path);
    const nlohmann::json meta = nlohmann::json::parse(f, nullptr, false);
    if (meta.is_object() && meta.contains("encoder") && meta["encoder"] == encoder->fingerprint() &&
        meta.contains("chunks") && meta["chunks"].is_array() && meta["chunks"].size() <= passages.size()) {
      size_t same = 0;
      while (same < meta["chunks"].size() && meta["chunks"][same].is_string() &&
             meta["chunks"][same].get<std::string>() == passages[same].id)
        ++same;
      if (same == meta["chunks"].size()) {
        // A cache: an unreadable index file is rebuilt (and overwritten below), not an error.
        std::optional<FlatIndex> cached;
        try {
          cached = FlatIndex::read_faiss(index_path.string());
        } catch (const Error& e) {
          std::fprintf(stderr, "store_dense_ranker: rebuilding %s: %s\n", index_path.string().c_str(), e.what());
        }
        if (cached && cached->size() == static_cast<int64_t>(same) && cached->dim() == encoder->dim() &&
            cached->metric() == VectorMetric::InnerProduct) {
          index = std::move(*cached);
          reused = same;
        }
      }
    }
  }
  if (reused < passages.size()) {
    std::vector<std::string> texts;
    for (size_t i = reused; i < passages.size(); ++i) texts.push_back(passages[i].text);
    index.add(encoder->embed(texts));
    fs::create_directories(dir);
    index.write_faiss(index_path.string());
    nlohmann::json meta{{"encoder", encoder->fingerprint()}, {"encoder_dir", encoder->dir()},
                        {"metric", "inner_product"}, {"dim", encoder->dim()}, {"chunks", nlohmann::json::array()}};
    for (const Passage& p : passages) meta["chunks"].push_back(p.id);
    write_file_atomic(meta_path.string(), meta.dump(1) + "\n");
  }
  return std::make_unique<const DenseRanker>(std::move(encoder), std::move(index));
}

ContextRetriever dense_context_retriever(const std::string& store_dir, std::shared_ptr<const DenseEncoder> encoder) {
  std::vector<Passage> passages = ContextRetriever::store_passages(store_dir);
  std::unique_ptr<const PassageRanker> ranker = store_dense_ranker(store_dir, passages, std::move(encoder));
  return ContextRetriever(store_dir, std::move(passages), std::move(ranker));
}

}  // namespace lloco::retrieve
