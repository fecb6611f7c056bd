#include "models/kv_cache.h"

#include <algorithm>

#include "core/autograd.h"
#include "core/error.h"
#include "core/ops.h"

namespace lloco::models {

int64_t KVCache::length() const { return len_.empty() ? 0 : len_[0]; }

std::pair<Tensor, Tensor> KVCache::get(int64_t layer) const {
  LLOCO_CHECK(layer >= 0 && layer < num_layers(), "KVCache.get", "layer ", layer, " out of range [0, ", num_layers(), ")");
  if (!k_[layer].defined() || len_[layer] == 0) return {};
  return {k_[layer].narrow(2, 0, len_[layer]), v_[layer].narrow(2, 0, len_[layer])};
}

std::pair<Tensor, Tensor> KVCache::append(int64_t layer, const Tensor& k_new, const Tensor& v_new) {
  const char* op = "KVCache.append";
  LLOCO_CHECK(layer >= 0 && layer < num_layers(), op, "layer ", layer, " out of range [0, ", num_layers(), ")");
  LLOCO_CHECK(k_new.dim() == 4 && v_new.shape() == k_new.shape(), op,
              "k/v must be [B, Hkv, S, Dh] and equal, got ", k_new.str(), " and ", v_new.str());
  Tensor& k = k_[layer];
  Tensor& v = v_[layer];
  int64_t& len = len_[layer];
  const int64_t S = k_new.size(2);
  if (k.defined())
    LLOCO_CHECK(k.size(0) == k_new.size(0) && k.size(1) == k_new.size(1) && k.size(3) == k_new.size(3) &&
                    k.dtype() == k_new.dtype(),
                op, "layer ", layer, ": cached ", k.str(), " does not match new ", k_new.str());
  if (grad_enabled() && (k_new.requires_grad() || v_new.requires_grad())) {
    // Training through the cache: keep the autograd graph (the buffer is exactly the live part).
    k = len ? concat({k.narrow(2, 0, len), k_new}, 2) : k_new;
    v = len ? concat({v.narrow(2, 0, len), v_new}, 2) : v_new;
    len += S;
    return {k, v};
  }
  if (!k.defined() || k.size(2) < len + S) {
    const int64_t cap = std::max({len + S, 2 * (k.defined() ? k.size(2) : 0), reserve_});
    Shape shape = k_new.shape();
    shape[2] = cap;
    Tensor nk = empty(shape, k_new.dtype(), k_new.device()), nv = empty(shape, k_new.dtype(), k_new.device());
    if (len) {
      copy_(nk.narrow(2, 0, len), k.narrow(2, 0, len));
      copy_(nv.narrow(2, 0, len), v.narrow(2, 0, len));
    }
    k = nk;
    v = nv;
  }
  copy_(k.narrow(2, len, S), k_new.detach());
  copy_(v.narrow(2, len, S), v_new.detach());
  len += S;
  return {k.narrow(2, 0, len), v.narrow(2, 0, len)};
}

void KVCache::clear() {
  for (auto& t : k_) t = Tensor();
  for (auto& t : v_) t = Tensor();
  std::fill(len_.begin(), len_.end(), 0);
}

}  // namespace lloco::models
