// Per-layer key/value cache for incremental decoding. Keys/values are stored after RoPE, so a
// cached position never needs re-rotation. Each layer keeps a buffer [B, Hkv, capacity, Dh] that
// doubles when full (amortised O(1) copies per token); the live part is a view of its first C steps.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace lloco::models {

struct KVCache {
  explicit KVCache(int64_t num_layers = 0) : k_(num_layers), v_(num_layers), len_(num_layers, 0) {}
  int64_t num_layers() const { return static_cast<int64_t>(k_.size()); }
  int64_t length() const;  // C (0 when empty), of layer 0
  // Preallocates room for `capacity` steps per layer (optional; append grows on demand).
  void reserve(int64_t capacity) { reserve_ = capacity; }
  // k_new/v_new [B, Hkv, S, Dh]; returns the full [B, Hkv, C + S, Dh] keys and values of `layer`
  // (views into the buffer). When k_new needs a gradient, the cache concatenates instead so the
  // graph stays connected.
  std::pair<Tensor, Tensor> append(int64_t layer, const Tensor& k_new, const Tensor& v_new);
  std::pair<Tensor, Tensor> get(int64_t layer) const;  // [B, Hkv, C, Dh] each; undefined when empty
  void clear();

 private:
  std::vector<Tensor> k_, v_;  // buffers [B, Hkv, capacity, Dh]
  std::vector<int64_t> len_;
  int64_t reserve_ = 0;
};

}  // namespace lloco::models
