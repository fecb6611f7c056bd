// Multi-adapter LoRA: segment/row assignments, lora_delta (two lora_matmul launches forward, two
// more plus two lora_weight_grad launches backward), lora_linear and the composed oracle.
// Host copies of the assignment are validated here so kernels can trust them.
#include <limits>

#include "core/autograd.h"
#include "core/ops_common.h"

namespace lloco {

using namespace detail;

// ---- LoraSegments -------------------------------------------------------------------------------

static Tensor i32_on(const std::vector<int64_t>& v, Device device) {
  return from_vector<int64_t>(v, {static_cast<int64_t>(v.size())}, DType::I32, device);
}

static void check_i32(int64_t v, const char* op, const char* what) {
  LLOCO_CHECK(v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(), op, what, " ",
              v, " does not fit in i32");
}

LoraSegments LoraSegments::by_segment(std::vector<int64_t> indptr, std::vector<int64_t> adapter, Device device) {
  const char* op = "LoraSegments::by_segment";
  LLOCO_CHECK(indptr.size() == adapter.size() + 1, op, "indptr must have S + 1 = ", adapter.size() + 1,
              " entries for S = ", adapter.size(), " adapters, got ", indptr.size());
  LLOCO_CHECK(indptr[0] == 0, op, "indptr must start at 0, got ", indptr[0]);
  for (size_t s = 0; s + 1 < indptr.size(); ++s)
    LLOCO_CHECK(indptr[s + 1] >= indptr[s], op, "indptr must be non-decreasing, got indptr[", s, "] = ", indptr[s],
                " > indptr[", s + 1, "] = ", indptr[s + 1]);
  check_i32(indptr.back(), op, "row count");
  for (int64_t a : adapter) check_i32(a, op, "adapter id");
  LoraSegments seg;
  seg.indptr_dev = i32_on(indptr, device);
  seg.adapter_dev = i32_on(adapter, device);
  seg.indptr = std::move(indptr);
  seg.adapter = std::move(adapter);
  return seg;
}

LoraSegments LoraSegments::by_row(std::vector<int64_t> adapter, Device device) {
  const char* op = "LoraSegments::by_row";
  check_i32(static_cast<int64_t>(adapter.size()), op, "row count");
  for (int64_t a : adapter) check_i32(a, op, "adapter id");
  LoraSegments seg;
  seg.adapter_dev = i32_on(adapter, device);
  seg.adapter = std::move(adapter);
  return seg;
}

LoraSegments LoraSegments::single(int64_t rows, int64_t adapter, Device device) {
  LLOCO_CHECK(rows >= 0, "LoraSegments::single", "rows must be >= 0, got ", rows);
  return by_segment({0, rows}, {adapter}, device);
}

int64_t LoraSegments::rows() const {
  return per_row() ? static_cast<int64_t>(adapter.size()) : indptr.back();
}

// ---- lora_delta ---------------------------------------------------------------------------------

namespace {

void check_segments(const LoraSegments& seg, int64_t rows, int64_t adapters, const Tensor& x, const char* op) {
  LLOCO_CHECK(seg.adapter_dev.defined(), op,
              "segments were not built (use LoraSegments::by_segment, by_row or single)");
  LLOCO_CHECK(seg.adapter_dev.device() == x.device(), op, "segments live on ", seg.adapter_dev.device().str(),
              " but x is on ", x.device().str());
  LLOCO_CHECK(seg.per_row() || seg.indptr_dev.defined(), op, "segment mode needs indptr_dev");
  LLOCO_CHECK_EQ(seg.rows(), rows, op, "rows covered by the segments vs rows of x");
  for (size_t i = 0; i < seg.adapter.size(); ++i)
    LLOCO_CHECK(seg.adapter[i] < adapters, op, "adapter id ", seg.adapter[i], " at ",
                seg.per_row() ? "row " : "segment ", i, " is out of range for L = ", adapters, " adapters");
}

void check_lora(const Tensor& x, const Tensor& a, const Tensor& b, const LoraSegments& seg, const char* op) {
  check_defined(x, op, "x");
  check_defined(a, op, "a");
  check_defined(b, op, "b");
  check_float(x, op);
  check_same_dtype(x, a, op);
  check_same_dtype(x, b, op);
  check_same_device(x, a, op);
  check_same_device(x, b, op);
  LLOCO_CHECK(x.dim() == 2, op, "x must be [N, I], got ", x.str());
  LLOCO_CHECK(a.dim() == 3, op, "a must be [L, r, I], got ", a.str());
  LLOCO_CHECK(b.dim() == 3, op, "b must be [L, O, r], got ", b.str());
  LLOCO_CHECK_EQ(a.size(0), b.size(0), op, "adapter count of a vs b");
  LLOCO_CHECK_EQ(a.size(1), b.size(2), op, "rank of a ([L, r, I] dim 1) vs rank of b ([L, O, r] dim 2)");
  LLOCO_CHECK_EQ(a.size(2), x.size(1), op, "input features of a ([L, r, I] dim 2) vs x ([N, I] dim 1)");
  check_segments(seg, x.size(0), a.size(0), x, op);
}

// y [N, O] (+)= scale * x [N, I] @ op(w[adapter]) through the backend.
void lora_matmul_into(const Tensor& y, const Tensor& x, const Tensor& w, const LoraSegments& seg, double scale,
                      bool transpose_w, bool accumulate) {
  if (y.numel() == 0) return;
  LoraMatmulParams p;
  p.scale = scale;
  p.transpose_w = transpose_w;
  p.accumulate = accumulate;
  backend_of(x).lora_matmul(to_ref(y), to_ref(x), to_ref(w), to_ref(seg.indptr_dev), to_ref(seg.adapter_dev), p,
                            stream_of(x));
}

Tensor lora_matmul_new(const Tensor& x, const Tensor& w, const LoraSegments& seg, double scale, bool transpose_w) {
  const int64_t out_features = transpose_w ? w.size(1) : w.size(2);
  Tensor y = empty({x.size(0), out_features}, x.dtype(), x.device());
  lora_matmul_into(y, x, w, seg, scale, transpose_w, false);
  return y;
}

// dw [L, P, Q] = scale * lhs[rows of a]^T @ rhs[rows of a] per adapter a.
Tensor lora_weight_grad_new(const Tensor& lhs, const Tensor& rhs, int64_t adapters, const LoraSegments& seg,
                            double scale) {
  Tensor dw = empty({adapters, lhs.size(1), rhs.size(1)}, lhs.dtype(), lhs.device());
  if (dw.numel() == 0) return dw;
  backend_of(lhs).lora_weight_grad(to_ref(dw), to_ref(lhs), to_ref(rhs), to_ref(seg.indptr_dev),
                                   to_ref(seg.adapter_dev), scale, stream_of(lhs));
  return dw;
}

}  // namespace

Tensor lora_delta(const Tensor& x, const Tensor& a, const Tensor& b, double scale, const LoraSegments& seg) {
  check_lora(x, a, b, seg, "lora_delta");
  Tensor xd = x.detach(), ad = a.detach(), bd = b.detach();
  Tensor t = lora_matmul_new(xd, ad, seg, 1.0, true);  // [N, r]: the shrink
  Tensor y = lora_matmul_new(t, bd, seg, scale, true);  // [N, O]: the expand
  const bool gx = x.requires_grad(), ga = a.requires_grad(), gb = b.requires_grad();
  return record(y, "lora_delta", {x, a, b}, [xd, ad, bd, t, seg, scale, gx, ga, gb](const Tensor& g) {
    const int64_t L = ad.size(0);
    Tensor dx, da, db;
    if (gb) db = lora_weight_grad_new(g, t, L, seg, scale);
    if (gx || ga) {
      Tensor dt = lora_matmul_new(g, bd, seg, scale, false);  // [N, r]
      if (ga) da = lora_weight_grad_new(dt, xd, L, seg, 1.0);
      if (gx) dx = lora_matmul_new(dt, ad, seg, 1.0, false);
    }
    return std::vector<Tensor>{dx, da, db};
  });
}

// One output buffer: the low-rank expand writes the delta, then the GEMM adds x W^T onto it (beta =
// 1), so LoRA costs the shrink and one write of y beyond the base projection, instead of a second
// [N, O] tensor and an add. Backends with a fused kernel for the operands (CUDA: decode-sized
// batches) do all three products in one launch instead.
Tensor lora_linear(const Tensor& x, const Tensor& weight, const Tensor& a, const Tensor& b, double scale,
                   const LoraSegments& seg) {
  const char* op = "lora_linear";
  check_defined(x, op, "x");
  check_defined(weight, op, "weight");
  LLOCO_CHECK(x.dim() >= 1, op, "x must have a feature dim, got ", x.str());
  LLOCO_CHECK(weight.dim() == 2, op, "weight must be [O, I], got ", weight.str());
  const Tensor x2 = x.reshape({-1, x.size(-1)});
  check_lora(x2, a, b, seg, op);
  check_same_dtype(x, weight, op);
  check_same_device(x, weight, op);
  LLOCO_CHECK_EQ(weight.size(1), x.size(-1), op, "weight in-features vs x features");
  LLOCO_CHECK_EQ(weight.size(0), b.size(1), op, "weight out-features vs b ([L, O, r] dim 1)");
  Tensor xd = x2.detach(), wd = weight.detach(), ad = a.detach(), bd = b.detach();
  const int64_t N = xd.size(0);
  Tensor y = empty({N, wd.size(0)}, x.dtype(), x.device());
  Tensor t = empty({N, ad.size(1)}, x.dtype(), x.device());  // [N, r]: the shrink, kept for backward
  const bool fused = N > 0 && backend_of(xd).lora_linear_fused(to_ref(y), to_ref(t), to_ref(xd), to_ref(wd),
                                                               to_ref(ad), to_ref(bd), to_ref(seg.indptr_dev),
                                                               to_ref(seg.adapter_dev), scale, stream_of(xd));
  if (!fused && N > 0) {
    lora_matmul_into(t, xd, ad, seg, 1.0, true, false);
    lora_matmul_into(y, t, bd, seg, scale, true, false);  // y = delta (0 on rows without an adapter)
    backend_of(xd).matmul_add(to_ref(y.unsqueeze(0)), to_ref(xd.unsqueeze(0)), to_ref(wd.transpose(0, 1).unsqueeze(0)),
                              stream_of(xd));  // y += x W^T: C of the GEMM, no separate read-modify-write
  }
  const bool gx = x.requires_grad(), gw = weight.requires_grad(), ga = a.requires_grad(), gb = b.requires_grad();
  y = record(y, op, {x2, weight, a, b}, [xd, wd, ad, bd, t, seg, scale, gx, gw, ga, gb](const Tensor& g) {
    const int64_t L = ad.size(0);
    Tensor dx, dw, da, db;
    if (gw) dw = matmul(g.transpose(0, 1), xd);  // [O, I]
    if (gb) db = lora_weight_grad_new(g, t, L, seg, scale);
    if (gx || ga) {
      Tensor dt = lora_matmul_new(g, bd, seg, scale, false);  // [N, r]
      if (ga) da = lora_weight_grad_new(dt, xd, L, seg, 1.0);
      if (gx) {  // dx = dt a + g W, the GEMM adding onto the low-rank part as in the forward
        dx = lora_matmul_new(dt, ad, seg, 1.0, false);  // [N, I]
        backend_of(g).matmul_add(to_ref(dx.unsqueeze(0)), to_ref(g.unsqueeze(0)), to_ref(wd.unsqueeze(0)),
                                 stream_of(g));
      }
    }
    return std::vector<Tensor>{dx, dw, da, db};
  });
  Shape out_shape = x.shape();
  out_shape.back() = weight.size(0);
  return y.reshape(out_shape);
}

// ---- composed oracle ----------------------------------------------------------------------------

namespace composed {

// Runs of consecutive rows that share an adapter; each run is two plain matmuls.
Tensor lora_delta(const Tensor& x, const Tensor& a, const Tensor& b, double scale, const LoraSegments& seg) {
  check_lora(x, a, b, seg, "lora_delta");
  const int64_t N = x.size(0), O = b.size(1);
  if (N == 0) return zeros({0, O}, x.dtype(), x.device());
  std::vector<int64_t> row_adapter(static_cast<size_t>(N));
  if (seg.per_row()) {
    row_adapter = seg.adapter;
  } else {
    for (size_t s = 0; s < seg.adapter.size(); ++s)
      for (int64_t r = seg.indptr[s]; r < seg.indptr[s + 1]; ++r) row_adapter[r] = seg.adapter[s];
  }
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < N;) {
    int64_t end = start + 1;
    while (end < N && row_adapter[end] == row_adapter[start]) ++end;
    const int64_t l = row_adapter[start];
    if (l < 0) {
      parts.push_back(zeros({end - start, O}, x.dtype(), x.device()));
    } else {
      Tensor rows = x.narrow(0, start, end - start);
      Tensor t = matmul(rows, a.select(0, l).transpose(0, 1));
      parts.push_back(mul(matmul(t, b.select(0, l).transpose(0, 1)), scale));
    }
    start = end;
  }
  return parts.size() == 1 ? parts[0] : lloco::concat(parts, 0);
}

}  // namespace composed

}  // namespace lloco
