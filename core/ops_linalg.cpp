// matmul / linear. Batched products broadcast their batch dims; a 2-D right operand folds the left
// operand's batch into M so [B, T, D] @ [D, N] is one GEMM, not B small ones.
#include "core/ops_common.h"

namespace lloco {

using namespace detail;

// a [..., M, K] @ b [..., K, N], both at least 2-D; forward only.
static Tensor matmul_raw(const Tensor& a_in, const Tensor& b_in) {
  Tensor a = a_in.detach(), b = b_in.detach();
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  LLOCO_CHECK(b.size(-2) == K, "matmul", "inner dimensions differ: ", a.str(), " @ ", b.str(), " (", K, " vs ",
              b.size(-2), ")");
  Shape a_batch(a.shape().begin(), a.shape().end() - 2), b_batch(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_shapes(a_batch, b_batch, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor out = empty(out_shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  if (b.dim() == 2 && a.dim() > 2) {  // fold batch into rows
    Tensor a2 = a.contiguous().reshape({-1, K});
    Tensor o2 = out.view({1, a2.size(0), N});
    backend_of(a).matmul(to_ref(o2), to_ref(a2.unsqueeze(0)), to_ref(b.unsqueeze(0)), stream_of(a));
    return out;
  }
  Shape a_full = batch, b_full = batch;
  a_full.insert(a_full.end(), {M, K});
  b_full.insert(b_full.end(), {K, N});
  const int64_t B = shape_numel(batch);
  Tensor a3 = a.expand(a_full).reshape({B, M, K});
  Tensor b3 = b.expand(b_full).reshape({B, K, N});
  backend_of(a).matmul(to_ref(out.view({B, M, N})), to_ref(a3), to_ref(b3), stream_of(a));
  return out;
}

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_defined(a_in, "matmul", "a");
  check_defined(b_in, "matmul", "b");
  check_same_device(a_in, b_in, "matmul");
  check_same_dtype(a_in, b_in, "matmul");
  check_float(a_in, "matmul");
  LLOCO_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul", "operands must be at least 1-D, got ", a_in.str(),
              " and ", b_in.str());
  // numpy promotion of 1-D operands, undone on the result
  const bool a_vec = a_in.dim() == 1, b_vec = b_in.dim() == 1;
  Tensor a = a_vec ? a_in.unsqueeze(0) : a_in;
  Tensor b = b_vec ? b_in.unsqueeze(-1) : b_in;
  Tensor ad = a.detach(), bd = b.detach();
  bool ga = a.requires_grad(), gb = b.requires_grad();
  Tensor out = record(matmul_raw(a, b), "matmul", {a, b}, [ad, bd, ga, gb](const Tensor& g) {
    Tensor grad_a, grad_b;
    if (ga) grad_a = sum_to_shape(matmul_raw(g, bd.transpose(-1, -2)), ad.shape());
    if (gb) {
      if (bd.dim() == 2 && ad.dim() > 2) {
        Tensor a2 = ad.contiguous().reshape({-1, ad.size(-1)});
        Tensor g2 = g.contiguous().reshape({-1, g.size(-1)});
        grad_b = matmul_raw(a2.transpose(0, 1), g2);
      } else {
        grad_b = sum_to_shape(matmul_raw(ad.transpose(-1, -2), g), bd.shape());
      }
    }
    return std::vector<Tensor>{grad_a, grad_b};
  });
  if (a_vec) out = out.squeeze(-2);
  if (b_vec) out = out.squeeze(-1);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined(weight, "linear", "weight");
  LLOCO_CHECK(weight.dim() == 2, "linear", "weight must be 2-D [out, in], got ", weight.str());
  LLOCO_CHECK(x.size(-1) == weight.size(1), "linear", "input features ", x.size(-1), " vs weight in-features ",
              weight.size(1));
  Tensor y = matmul(x, weight.transpose(0, 1));
  if (bias.defined()) {
    LLOCO_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0), "linear", "bias must be [", weight.size(0),
                "], got ", bias.str());
    y = add(y, bias);
  }
  return y;
}

}  // namespace lloco
