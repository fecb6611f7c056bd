// Exact (brute-force) vector index over retrieval keys, FAISS-compatible: FlatIndex matches faiss's
// IndexFlatIP / IndexFlatL2 in results (scores = inner product, or squared L2 distance) and in file
// format (faiss.read_index opens what write_faiss writes, and read_faiss opens faiss.write_index's
// files). LLoCO's retrieval baseline ranks 512-token chunks by Contriever inner product, top-5.
//
// File layout (little-endian, no padding; faiss's write_index for the two flat types):
//   offset  size  field
//   0       4     fourcc "IxFI" (inner product) or "IxF2" (L2)
//   4       4     d           int32, > 0
//   8       8     ntotal      int64, >= 0
//   16      8     dummy       int64, faiss writes 1 << 20 and ignores it on read
//   24      8     dummy       int64, same
//   32      1     is_trained  bool (1 for flat indexes)
//   33      4     metric_type int32: 0 = METRIC_INNER_PRODUCT, 1 = METRIC_L2
//   37      8     count       uint64 = ntotal * d (the code bytes / 4)
//   45      4 * count         the vectors, float32 row-major in insertion order
// read_faiss also opens the generic "IxFl" tag when its metric is 0 or 1 (that tag carries a float
// metric_arg after metric_type only for metrics > 1, which FlatIndex does not support).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace lloco::retrieve {

// Values are faiss's MetricType enum, which the file stores.
enum class VectorMetric : int32_t { InnerProduct = 0, L2 = 1 };

struct VectorHit {
  int64_t id = 0;   // insertion order, from 0
  float score = 0;  // inner product (higher is better) or squared L2 distance (lower is better)
};

class FlatIndex {
 public:
  // Vectors live in f32 on `device` for the search GEMM; a host copy backs writing and L2 norms.
  FlatIndex(int64_t dim, VectorMetric metric, Device device = cpu());

  int64_t dim() const { return dim_; }
  VectorMetric metric() const { return metric_; }
  Device device() const { return device_; }
  int64_t size() const { return static_cast<int64_t>(host_.size()) / dim_; }
  // Row-major [size(), dim()] f32, insertion order.
  const std::vector<float>& vectors() const { return host_; }

  // vectors [n, dim]: f32 / bf16 / f16 on any device (converted to f32). Non-finite values are
  // rejected (they would make the ranking undefined). Re-uploads the whole index to device().
  void add(const Tensor& vectors);
  void add(std::span<const float> vectors);  // n * dim values, row-major

  // queries [q, dim] (any float dtype/device; moved to device()). Per query the min(k, size()) best
  // hits, best first, ties to the lower id. Unlike faiss, which pads to k with id -1 and score
  // -FLT_MAX (IP) / FLT_MAX (L2), results are never padded: a short list means the index is small.
  std::vector<std::vector<VectorHit>> search(const Tensor& queries, int64_t k) const;
  std::vector<std::vector<VectorHit>> search(std::span<const float> queries, int64_t k) const;

  // faiss.write_index-identical bytes, written atomically (temp file + fsync + rename).
  void write_faiss(const std::string& path) const;
  std::string faiss_bytes() const;
  // Validates the whole file (see the layout above); errors name the file, the field and the values.
  static FlatIndex read_faiss(const std::string& path, Device device = cpu());
  static FlatIndex from_faiss_bytes(const std::string& bytes, const std::string& name, Device device = cpu());

 private:
  void upload();

  int64_t dim_;
  VectorMetric metric_;
  Device device_;
  std::vector<float> host_;         // [size, dim]
  std::vector<double> sq_norms_;    // [size], for L2: |x|^2 + |y|^2 - 2 x.y
  Tensor base_;                     // [size, dim] f32 on device_ (undefined while empty)
};

// Rows scaled to unit L2 norm (all-zero rows stay zero), so inner product search ranks by cosine.
// x [n, d] any float dtype/device -> same dtype/device.
Tensor l2_normalize_rows(const Tensor& x);

}  // namespace lloco::retrieve
