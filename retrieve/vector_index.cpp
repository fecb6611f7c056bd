#include "retrieve/vector_index.h"

#include <algorithm>
#include <bit>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <fstream>
#include <numeric>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/ops.h"

namespace lloco::retrieve {

static_assert(std::endian::native == std::endian::little, "the faiss format is little-endian");

namespace {

constexpr size_t kHeaderBytes = 45;  // fourcc .. count; see the layout in vector_index.h
constexpr int64_t kFaissDummy = int64_t{1} << 20;
// Query rows per GEMM so the [rows, size] score block stays under ~256 MB of f32.
constexpr int64_t kScoreBlockElems = int64_t{64} << 20;

uint32_t fourcc(const char (&tag)[5]) {
  uint32_t v;
  std::memcpy(&v, tag, 4);
  return v;
}

std::string fourcc_text(uint32_t v) {
  std::string s(4, '?');
  for (int i = 0; i < 4; ++i) {
    const unsigned char c = static_cast<unsigned char>(v >> (8 * i));
    if (c >= 0x20 && c < 0x7f) s[i] = static_cast<char>(c);
  }
  return s;
}

const char* metric_name(VectorMetric m) { return m == VectorMetric::InnerProduct ? "inner product" : "L2"; }

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// Sequential little-endian reader over a file's bytes; a short read names the field it was reading.
class FieldReader {
 public:
  FieldReader(const std::string& bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  template <typename T>
  T take(const char* field) {
    LLOCO_CHECK(bytes_.size() - pos_ >= sizeof(T), "read_faiss", "'", name_, "' is truncated in field '", field,
                "': needs ", sizeof(T), " bytes at offset ", pos_, ", the file has ", bytes_.size(), " bytes");
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  const char* here() const { return bytes_.data() + pos_; }

 private:
  const std::string& bytes_;
  const std::string& name_;
  size_t pos_ = 0;
};

void check_finite(std::span<const float> values, int64_t dim, const char* op, const std::string& where) {
  for (size_t i = 0; i < values.size(); ++i)
    LLOCO_CHECK(std::isfinite(values[i]), op, where, "row ", static_cast<int64_t>(i) / dim, " column ",
                static_cast<int64_t>(i) % dim, " is ", values[i], " (vectors must be finite)");
}

}  // namespace

FlatIndex::FlatIndex(int64_t dim, VectorMetric metric, Device device) : dim_(dim), metric_(metric), device_(device) {
  // faiss stores d as int32.
  LLOCO_CHECK(dim > 0 && dim <= INT32_MAX, "flat_index", "dim must be in [1, 2^31), got ", dim);
  LLOCO_CHECK(metric == VectorMetric::InnerProduct || metric == VectorMetric::L2, "flat_index",
              "metric must be 0 (inner product) or 1 (L2), got ", static_cast<int32_t>(metric));
}

void FlatIndex::add(const Tensor& vectors) {
  LLOCO_CHECK(vectors.defined(), "flat_index.add", "vectors tensor is undefined");
  LLOCO_CHECK(dtype_is_float(vectors.dtype()), "flat_index.add", "vectors must be a float tensor, got ", vectors.str());
  LLOCO_CHECK(vectors.dim() == 2, "flat_index.add", "vectors must be [n, ", dim_, "], got ", vectors.str());
  LLOCO_CHECK_EQ(vectors.size(1), dim_, "flat_index.add", "vector dim vs index dim");
  const std::vector<float> host = vectors.detach().to_vector<float>();
  add(std::span<const float>(host));
}

void FlatIndex::add(std::span<const float> vectors) {
  LLOCO_CHECK(vectors.size() % static_cast<size_t>(dim_) == 0, "flat_index.add", vectors.size(),
              " values are not a whole number of rows of dim ", dim_);
  if (vectors.empty()) return;
  check_finite(vectors, dim_, "flat_index.add", "");
  host_.insert(host_.end(), vectors.begin(), vectors.end());
  for (size_t r = 0; r < vectors.size() / static_cast<size_t>(dim_); ++r) {
    double s = 0;
    for (int64_t c = 0; c < dim_; ++c) {
      const double v = vectors[r * static_cast<size_t>(dim_) + static_cast<size_t>(c)];
      s += v * v;
    }
    sq_norms_.push_back(s);
  }
  upload();
}

void FlatIndex::upload() { base_ = from_vector(host_, {size(), dim_}, DType::F32, device_); }

// Exact search: every stored vector is scored (no clustering, no quantization), with f32 inputs and
// f32 accumulation (CUDA uses TF32 only under LLOCO_TF32=1, which breaks exactness), so the result is
// the true top-k up to float rounding. Cost: one [q, d] x [d, n] GEMM per query block, 2 q n d flops
// while streaming all n d floats of the index, i.e. memory-bound for few queries (a GEMV per query),
// then O(n log k) per query for the host partial sort over the copied-back [q, n] scores.
std::vector<std::vector<VectorHit>> FlatIndex::search(const Tensor& queries, int64_t k) const {
  LLOCO_CHECK(queries.defined(), "flat_index.search", "queries tensor is undefined");
  LLOCO_CHECK(dtype_is_float(queries.dtype()), "flat_index.search", "queries must be a float tensor, got ",
              queries.str());
  LLOCO_CHECK(queries.dim() == 2, "flat_index.search", "queries must be [q, ", dim_, "], got ", queries.str());
  LLOCO_CHECK_EQ(queries.size(1), dim_, "flat_index.search", "query dim vs index dim");
  LLOCO_CHECK(k >= 1, "flat_index.search", "k must be >= 1, got ", k);
  const int64_t nq = queries.size(0), n = size();
  std::vector<std::vector<VectorHit>> results(static_cast<size_t>(nq));
  if (nq == 0 || n == 0) return results;

  const Tensor q_all = queries.detach().to(DType::F32).to(device_);
  const int64_t keep = std::min(k, n);
  const int64_t block = std::max<int64_t>(1, kScoreBlockElems / n);
  const bool ip = metric_ == VectorMetric::InnerProduct;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::vector<float> row_scores(static_cast<size_t>(n));
  for (int64_t q0 = 0; q0 < nq; q0 += block) {
    const Tensor q = q_all.narrow(0, q0, std::min(block, nq - q0));  // [b, d]
    const Tensor dots = linear(q, base_).to(cpu()).contiguous();      // [b, n]
    std::vector<double> q_norms;
    if (!ip) q_norms = sum(square(q), {1}).to_vector<double>();
    const float* dp = dots.data<float>();
    for (int64_t i = 0; i < q.size(0); ++i) {
      const float* row = dp + i * n;
      for (int64_t j = 0; j < n; ++j) {
        // |x - y|^2 = |x|^2 + |y|^2 - 2 x.y, clamped: rounding can push a near-zero distance below 0.
        const double s = ip ? row[j] : q_norms[i] + sq_norms_[j] - 2.0 * row[j];
        LLOCO_CHECK(!std::isnan(s), "flat_index.search", "query ", q0 + i, " scores NaN against vector ", j,
                    " (queries must be finite)");
        row_scores[j] = static_cast<float>(ip ? s : std::max(0.0, s));
      }
      std::iota(order.begin(), order.end(), int64_t{0});
      const auto better = [&](int64_t a, int64_t b) {
        const float sa = row_scores[a], sb = row_scores[b];
        if (sa != sb) return ip ? sa > sb : sa < sb;
        return a < b;
      };
      std::partial_sort(order.begin(), order.begin() + keep, order.end(), better);
      std::vector<VectorHit>& hits = results[static_cast<size_t>(q0 + i)];
      hits.reserve(static_cast<size_t>(keep));
      for (int64_t r = 0; r < keep; ++r) hits.push_back({order[r], row_scores[order[r]]});
    }
  }
  return results;
}

std::vector<std::vector<VectorHit>> FlatIndex::search(std::span<const float> queries, int64_t k) const {
  LLOCO_CHECK(queries.size() % static_cast<size_t>(dim_) == 0, "flat_index.search", queries.size(),
              " values are not a whole number of rows of dim ", dim_);
  const int64_t nq = static_cast<int64_t>(queries.size()) / dim_;
  return search(from_vector(std::vector<float>(queries.begin(), queries.end()), {nq, dim_}, DType::F32, cpu()), k);
}

namespace {

std::string faiss_header(VectorMetric metric, int64_t dim, int64_t ntotal) {
  std::string h;
  h.reserve(kHeaderBytes);
  put(h, metric == VectorMetric::InnerProduct ? fourcc("IxFI") : fourcc("IxF2"));
  put(h, static_cast<int32_t>(dim));
  put(h, ntotal);
  put(h, kFaissDummy);
  put(h, kFaissDummy);
  put(h, uint8_t{1});  // is_trained
  put(h, static_cast<int32_t>(metric));
  put(h, static_cast<uint64_t>(ntotal * dim));
  return h;
}

}  // namespace

std::string FlatIndex::faiss_bytes() const {
  std::string out = faiss_header(metric_, dim_, size());
  out.append(reinterpret_cast<const char*>(host_.data()), host_.size() * sizeof(float));
  return out;
}

void FlatIndex::write_faiss(const std::string& path) const {
  AtomicFile f(path);
  f.write(faiss_header(metric_, dim_, size()));
  f.write(host_.data(), host_.size() * sizeof(float));
  f.commit();
}

FlatIndex FlatIndex::from_faiss_bytes(const std::string& bytes, const std::string& name, Device device) {
  FieldReader r(bytes, name);
  const uint32_t tag = r.take<uint32_t>("fourcc");
  const bool generic = tag == fourcc("IxFl");
  LLOCO_CHECK(tag == fourcc("IxFI") || tag == fourcc("IxF2") || generic, "read_faiss", "'", name, "': fourcc '",
              fourcc_text(tag), "' is not a flat index (IxFI, IxF2 or IxFl)");
  const int32_t d = r.take<int32_t>("d");
  LLOCO_CHECK(d > 0, "read_faiss", "'", name, "': field 'd' = ", d, ", must be > 0");
  const int64_t ntotal = r.take<int64_t>("ntotal");
  LLOCO_CHECK(ntotal >= 0, "read_faiss", "'", name, "': field 'ntotal' = ", ntotal, ", must be >= 0");
  // faiss writes 1 << 20 into both and never reads them back; other values are accepted likewise.
  r.take<int64_t>("dummy");
  r.take<int64_t>("dummy");
  const uint8_t is_trained = r.take<uint8_t>("is_trained");
  LLOCO_CHECK(is_trained <= 1, "read_faiss", "'", name, "': field 'is_trained' = ", int{is_trained},
              ", must be 0 or 1");
  const int32_t metric = r.take<int32_t>("metric_type");
  LLOCO_CHECK(metric == 0 || metric == 1, "read_faiss", "'", name, "': field 'metric_type' = ", metric,
              ", FlatIndex supports 0 (inner product) and 1 (L2)");
  const VectorMetric m = static_cast<VectorMetric>(metric);
  if (!generic) {
    const VectorMetric tagged = tag == fourcc("IxFI") ? VectorMetric::InnerProduct : VectorMetric::L2;
    LLOCO_CHECK(m == tagged, "read_faiss", "'", name, "': field 'metric_type' = ", metric, " (", metric_name(m),
                ") contradicts fourcc '", fourcc_text(tag), "' (", metric_name(tagged), ")");
  }
  const uint64_t count = r.take<uint64_t>("count");
  // Bound everything by the real file length before multiplying or allocating.
  const uint64_t room = r.remaining() / sizeof(float) / static_cast<uint64_t>(d);
  LLOCO_CHECK(static_cast<uint64_t>(ntotal) <= room, "read_faiss", "'", name, "': field 'ntotal' = ", ntotal,
              " vectors of d = ", d, " do not fit in the ", r.remaining(),
              " bytes after the header (truncated or corrupt: room for at most ", room, " vectors)");
  const uint64_t expected = static_cast<uint64_t>(ntotal) * static_cast<uint64_t>(d);
  LLOCO_CHECK(count == expected, "read_faiss", "'", name, "': field 'count' = ", count,
              ", expected ntotal * d = ", expected);
  const uint64_t want_bytes = expected * sizeof(float);
  LLOCO_CHECK(r.remaining() == want_bytes, "read_faiss", "'", name, "': ", r.remaining(),
              " bytes follow the header but ntotal * d * 4 = ", want_bytes,
              r.remaining() > want_bytes ? " (trailing bytes)" : " (truncated vectors)");

  std::vector<float> values(static_cast<size_t>(expected));
  std::memcpy(values.data(), r.here(), want_bytes);
  check_finite(values, d, "read_faiss", "'" + name + "': ");
  FlatIndex index(d, m, device);
  index.add(std::span<const float>(values));
  return index;
}

FlatIndex FlatIndex::read_faiss(const std::string& path, Device device) {
  std::ifstream f(path, std::ios::binary);
  LLOCO_CHECK(f.good(), "read_faiss", "cannot open '", path, "'");
  const std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  LLOCO_CHECK(!f.bad(), "read_faiss", "error reading '", path, "'");
  return from_faiss_bytes(bytes, path, device);
}

Tensor l2_normalize_rows(const Tensor& x) {
  LLOCO_CHECK(x.defined() && dtype_is_float(x.dtype()) && x.dim() == 2, "l2_normalize_rows",
              "x must be a 2-D float tensor, got ", x.defined() ? x.str() : std::string("undefined"));
  const Tensor x32 = x.to(DType::F32);
  // Flooring |x|^2 at FLT_MIN keeps all-zero rows at zero instead of 0 / 0.
  const Tensor sq = maximum(sum(square(x32), {1}, /*keepdim=*/true), full({}, FLT_MIN, DType::F32, x.device()));
  return mul(x32, rsqrt(sq)).to(x.dtype());
}

}  // namespace lloco::retrieve
