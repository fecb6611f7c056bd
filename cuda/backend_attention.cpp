// CudaBackend's attention entry points: validation, the choice between the decode, flash and simple
// kernel families (rules in cuda/attention_dispatch.h), and TensorRef -> FlashParams / AttnArgs.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda/attention_dispatch.h"
#include "cuda/backend.h"
#include "cuda/backend_util.h"
#include "cuda/common.h"
#include "cuda/kernels/attention.cuh"
#include "cuda/kernels/flash.h"

namespace lloco {

using namespace cuda_kernels;
using namespace cuda_binding;

namespace {

constexpr int kDecodeMinKeys = 512;  // two 256-key chunks: below that one CTA per head streams it all anyway

enum class Mode : int { Auto, Simple, Flash };
enum class Path { Simple, Flash, Decode };

std::atomic<int> g_mode{-1};  // -1: LLOCO_ATTENTION not read yet

Mode read_mode() {
  const char* env = std::getenv("LLOCO_ATTENTION");
  const std::string v = env ? env : "";
  if (v.empty() || v == "auto") return Mode::Auto;
  if (v == "simple") return Mode::Simple;
  if (v == "flash") return Mode::Flash;
  LLOCO_FAIL("attention", "LLOCO_ATTENTION must be simple, flash or auto, got '", v, "'");
}

Mode mode() {
  int m = g_mode.load(std::memory_order_relaxed);
  if (m < 0) {
    m = static_cast<int>(read_mode());
    g_mode.store(m, std::memory_order_relaxed);
  }
  return static_cast<Mode>(m);
}

// LLOCO_FLASH_KERNEL: FlashParams::fwd_kernel / FlashBwdParams::bwd_kernel for the flash path.
std::atomic<int> g_flash_kernel{-1};  // -1: not read yet; else 0 auto, 1 mma.sync, 2 wgmma

int read_flash_kernel() {
  const char* env = std::getenv("LLOCO_FLASH_KERNEL");
  const std::string v = env ? env : "";
  if (v.empty() || v == "auto") return 0;
  if (v == "mma") return 1;
  if (v == "wgmma") return 2;
  LLOCO_FAIL("attention", "LLOCO_FLASH_KERNEL must be mma, wgmma or auto, got '", v, "'");
}

int flash_kernel() {
  int k = g_flash_kernel.load(std::memory_order_relaxed);
  if (k < 0) {
    k = read_flash_kernel();
    g_flash_kernel.store(k, std::memory_order_relaxed);
  }
  return k;
}

const char* path_name(Path p) { return p == Path::Decode ? "decode" : (p == Path::Flash ? "flash" : "simple"); }

// `layout_ok`: every operand has a contiguous head dim and lse is f32 with unit row stride (what
// the flash kernels address); the kernels' own predicates check alignment, head dims and the device.
// Decode is for dense batches only (forward, not varlen). A backward passes its filled FlashBwdParams
// (`bwd`) so gradient alignment and the device's shared memory are checked too.
Path choose_path(const FlashParams& p, DType dt, bool has_mask, bool layout_ok, bool backward, bool varlen,
                 const char* op, const FlashBwdParams* bwd = nullptr) {
  const Mode m = mode();
  if (m == Mode::Simple) return Path::Simple;
  std::string why;
  if (has_mask) {
    why = "an additive mask is given (the flash kernels take none)";
  } else if (dt != DType::BF16 && dt != DType::F16) {
    why = detail::concat("dtype ", dtype_name(dt), " (the flash kernels take bf16/f16)");
  } else if (!layout_ok) {
    why = "an operand has a strided head dim, or lse is not f32 with unit row stride";
  } else {
    const bool flash = flash_supported(p) && (bwd == nullptr || flash_bwd_supported(*bwd));
    const bool decode = !backward && !varlen && flash_decode_supported(p);
    if (decode && (p.seqlen_k >= kDecodeMinKeys || !flash)) return Path::Decode;
    if (flash) return Path::Flash;
    why = detail::concat("the flash kernels reject head_dim ", p.head_dim, " here (they need 64/128, 16-byte ",
                         "aligned pointers and strides, sm_80+, and for the backward enough shared memory)",
                         backward || varlen ? "" : " and the decode kernel does not apply (Tq > 16 or misaligned)");
  }
  if (m == Mode::Flash) LLOCO_FAIL(op, "LLOCO_ATTENTION=flash but ", why);
  return Path::Simple;
}

// ---- validation and views ----------------------------------------------------------------------

void copy4(int64_t (&dst)[4], const TensorRef& t) {
  for (int i = 0; i < 4; ++i) dst[i] = t.shape[i] == 1 ? 0 : t.strides[i];
}

int64_t stride_of(const TensorRef& t, int d) { return t.shape[d] == 1 ? 0 : t.strides[d]; }
bool unit_last(const TensorRef& t) { return t.strides[t.ndim - 1] == 1 || t.shape[t.ndim - 1] <= 1; }
bool fits_int(int64_t v) { return v >= 0 && v < (int64_t(1) << 31); }

template <typename... Refs>
bool heads_contiguous(const Refs&... ts) {
  return (unit_last(ts) && ...);
}

const char* at_row(const TensorRef& t, int64_t offset_elems) {
  return static_cast<const char*>(t.data) + offset_elems * static_cast<int64_t>(dtype_size(t.dtype));
}
void* at_row_mut(const TensorRef& t, int64_t offset_elems) { return const_cast<char*>(at_row(t, offset_elems)); }

AttnArgs attn_args(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& mask,
                   const AttentionParams& p, const char* op) {
  check_rank(q, 4, op, "q");
  check_rank(k, 4, op, "k");
  check_same_shape(k, v, op, "k/v");
  LLOCO_CHECK(q.dtype == k.dtype && k.dtype == v.dtype, op, "q/k/v dtypes differ");
  LLOCO_CHECK(k.shape[1] > 0 && q.shape[1] % k.shape[1] == 0 && q.shape[0] == k.shape[0] && q.shape[3] == k.shape[3],
              op, "q/k shapes are incompatible");
  AttnArgs a;
  a.B = q.shape[0];
  a.Hq = q.shape[1];
  a.Hkv = k.shape[1];
  a.Tq = q.shape[2];
  a.Tk = k.shape[2];
  a.D = q.shape[3];
  copy4(a.q_s, q);
  copy4(a.k_s, k);
  copy4(a.v_s, v);
  if (mask.data) {
    check_rank(mask, 4, op, "mask");
    a.mask = mask.data;
    a.mask_dt = mask.dtype;
    copy4(a.mask_s, mask);
  }
  a.scale = p.scale;
  a.causal = p.causal;
  return a;
}

void set_scale(FlashParams& fp, const AttentionParams& p) {
  fp.scale = static_cast<float>(p.scale);
  fp.scale_log2 = static_cast<float>(p.scale * 1.4426950408889634);
  fp.causal = p.causal;
  fp.fwd_kernel = flash_kernel();
}

// [B, H, T, D] views (out/lse may be empty refs when only the path is asked for).
FlashParams dense_params(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out,
                         const TensorRef& lse, const AttentionParams& p) {
  FlashParams fp;
  fp.q = q.data;
  fp.k = k.data;
  fp.v = v.data;
  fp.o = out.data;
  fp.q_batch_stride = stride_of(q, 0), fp.q_head_stride = stride_of(q, 1), fp.q_row_stride = stride_of(q, 2);
  fp.k_batch_stride = stride_of(k, 0), fp.k_head_stride = stride_of(k, 1), fp.k_row_stride = stride_of(k, 2);
  fp.v_batch_stride = stride_of(v, 0), fp.v_head_stride = stride_of(v, 1), fp.v_row_stride = stride_of(v, 2);
  fp.o_batch_stride = stride_of(out, 0), fp.o_head_stride = stride_of(out, 1), fp.o_row_stride = stride_of(out, 2);
  if (lse.ndim == 3) {
    fp.lse = static_cast<float*>(lse.data);
    fp.lse_batch_stride = stride_of(lse, 0);
    fp.lse_head_stride = stride_of(lse, 1);
  }
  fp.batch = static_cast<int>(q.shape[0]);
  fp.heads_q = static_cast<int>(q.shape[1]);
  fp.heads_kv = static_cast<int>(k.shape[1]);
  fp.seqlen_q = static_cast<int>(q.shape[2]);
  fp.seqlen_k = static_cast<int>(k.shape[2]);
  fp.head_dim = static_cast<int>(q.shape[3]);
  fp.is_bf16 = q.dtype == DType::BF16;
  set_scale(fp, p);
  return fp;
}

bool dense_sizes_fit(const TensorRef& q, const TensorRef& k) {
  return fits_int(q.shape[0]) && fits_int(q.shape[1]) && fits_int(k.shape[1]) && fits_int(q.shape[2]) &&
         fits_int(k.shape[2]) && fits_int(q.shape[3]);
}
bool lse_ok(const TensorRef& lse) {
  return lse.dtype == DType::F32 && (lse.strides[lse.ndim - 1] == 1 || lse.shape[lse.ndim - 1] <= 1);
}

void fill_bwd_params(FlashBwdParams& bp, const TensorRef& dq, const TensorRef& dk, const TensorRef& dv,
                     const TensorRef& dout, int row_dim, int head_dim_axis) {
  auto strides = [&](const TensorRef& t, int64_t& bs, int64_t& rs, int64_t& hs) {
    bs = row_dim == 2 ? stride_of(t, 0) : 0;
    rs = stride_of(t, row_dim);
    hs = stride_of(t, head_dim_axis);
  };
  bp.bwd_kernel = flash_kernel();
  bp.dout = dout.data;
  strides(dout, bp.do_batch_stride, bp.do_row_stride, bp.do_head_stride);
  bp.dq = dq.data;
  strides(dq, bp.dq_batch_stride, bp.dq_row_stride, bp.dq_head_stride);
  bp.dk = dk.data;
  strides(dk, bp.dk_batch_stride, bp.dk_row_stride, bp.dk_head_stride);
  bp.dv = dv.data;
  strides(dv, bp.dv_batch_stride, bp.dv_row_stride, bp.dv_head_stride);
}

// ---- varlen ----------------------------------------------------------------------------------------

void check_varlen(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& cu_q,
                  const TensorRef& cu_k, const VarlenParams& vp, const char* op) {
  check_rank(q, 3, op, "q");
  check_rank(k, 3, op, "k");
  check_same_shape(k, v, op, "k/v");
  LLOCO_CHECK(q.dtype == k.dtype && k.dtype == v.dtype, op, "q/k/v dtypes differ");
  LLOCO_CHECK(k.shape[1] > 0 && q.shape[1] % k.shape[1] == 0 && q.shape[2] == k.shape[2], op,
              "q [", q.shape[0], ", ", q.shape[1], ", ", q.shape[2], "] and k [", k.shape[0], ", ", k.shape[1], ", ",
              k.shape[2], "] are incompatible");
  for (const TensorRef* cu : {&cu_q, &cu_k}) {
    check_rank(*cu, 1, op, "cu_seqlens");
    LLOCO_CHECK(cu->dtype == DType::I32, op, "cu_seqlens must be i32, got ", dtype_name(cu->dtype));
    LLOCO_CHECK_EQ(cu->shape[0], vp.batch + 1, op, "cu_seqlens length (batch + 1)");
    LLOCO_CHECK(cu->strides[0] == 1 || cu->shape[0] <= 1, op, "cu_seqlens must be contiguous");
  }
  LLOCO_CHECK(fits_int(q.shape[0]) && fits_int(k.shape[0]) && fits_int(vp.max_q) && fits_int(vp.max_k) &&
                  fits_int(vp.batch),
              op, "sizes exceed 2^31: Nq ", q.shape[0], ", Nk ", k.shape[0]);
}

FlashParams varlen_params(const TensorRef& q, const TensorRef& k, const TensorRef& v, const TensorRef& out,
                          const TensorRef& lse, const TensorRef& cu_q, const TensorRef& cu_k, const VarlenParams& vp,
                          const AttentionParams& p) {
  FlashParams fp;
  fp.q = q.data;
  fp.k = k.data;
  fp.v = v.data;
  fp.o = out.data;
  fp.q_row_stride = q.strides[0], fp.q_head_stride = q.strides[1];
  fp.k_row_stride = k.strides[0], fp.k_head_stride = k.strides[1];
  fp.v_row_stride = v.strides[0], fp.v_head_stride = v.strides[1];
  fp.o_row_stride = out.strides[0], fp.o_head_stride = out.strides[1];
  fp.lse = static_cast<float*>(lse.data);
  fp.lse_head_stride = lse.ndim == 2 ? lse.strides[0] : 0;
  fp.cu_seqlens_q = static_cast<const int32_t*>(cu_q.data);
  fp.cu_seqlens_k = static_cast<const int32_t*>(cu_k.data);
  fp.batch = static_cast<int>(vp.batch);
  fp.heads_q = static_cast<int>(q.shape[1]);
  fp.heads_kv = static_cast<int>(k.shape[1]);
  fp.seqlen_q = static_cast<int>(vp.max_q);
  fp.seqlen_k = static_cast<int>(vp.max_k);
  fp.head_dim = static_cast<int>(q.shape[2]);
  fp.is_bf16 = q.dtype == DType::BF16;
  set_scale(fp, p);
  return fp;
}

// The simple fallback needs the offsets on the host: a small copy that synchronizes the stream
// (the slow path only: f32/f64 or head dims the flash kernels lack).
std::vector<int32_t> host_offsets(const TensorRef& cu, int64_t rows, cudaStream_t stream, const char* op) {
  std::vector<int32_t> h(static_cast<size_t>(cu.shape[0]));
  CUDA_CHECK(cudaMemcpyAsync(h.data(), cu.data, h.size() * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
  CUDA_CHECK(cudaStreamSynchronize(stream));
  LLOCO_CHECK(h.empty() || h[0] == 0, op, "cu_seqlens must start at 0, got ", h.empty() ? 0 : h[0]);
  for (size_t i = 1; i < h.size(); ++i)
    LLOCO_CHECK(h[i] >= h[i - 1], op, "cu_seqlens must be non-decreasing: ", h[i - 1], " then ", h[i]);
  LLOCO_CHECK(h.empty() || h.back() <= rows, op, "cu_seqlens ends at ", h.back(), " past ", rows, " rows");
  return h;
}

// [B = 1, H, T, D] strides of one sequence of a packed [N, H, D] tensor.
void packed_strides(int64_t (&s)[4], const TensorRef& t) {
  s[0] = 0;
  s[1] = t.strides[1];
  s[2] = t.strides[0];
  s[3] = t.strides[2];
}

AttnArgs sequence_args(const TensorRef& q, const TensorRef& k, const TensorRef& v, int64_t nq, int64_t nk,
                       const AttentionParams& p) {
  AttnArgs a;
  a.B = 1;
  a.Hq = q.shape[1];
  a.Hkv = k.shape[1];
  a.Tq = nq;
  a.Tk = nk;
  a.D = q.shape[2];
  packed_strides(a.q_s, q);
  packed_strides(a.k_s, k);
  packed_strides(a.v_s, v);
  a.scale = p.scale;
  a.causal = p.causal;
  return a;
}

bool row_major(const TensorRef& t) {
  int64_t expect = 1;
  for (int i = t.ndim - 1; i >= 0; --i) {
    if (t.shape[i] != 1 && t.strides[i] != expect) return false;
    expect *= t.shape[i];
  }
  return true;
}

}  // namespace

void reload_attention_mode() {
  g_mode.store(static_cast<int>(read_mode()), std::memory_order_relaxed);
  g_flash_kernel.store(read_flash_kernel(), std::memory_order_relaxed);
}

const char* attention_path(const TensorRef& q, const TensorRef& k, const TensorRef& mask, bool backward) {
  check_rank(q, 4, "attention", "q");
  check_rank(k, 4, "attention", "k");
  FlashBwdParams bp;
  static_cast<FlashParams&>(bp) = dense_params(q, k, k, q, TensorRef{}, AttentionParams{});
  fill_bwd_params(bp, q, k, k, q, 2, 1);  // the gradients take q's and k's layouts
  const bool layout = heads_contiguous(q, k) && dense_sizes_fit(q, k);
  return path_name(choose_path(bp, q.dtype, mask.data != nullptr, layout, backward, false, "attention",
                               backward ? &bp : nullptr));
}

const char* flash_kernel_name() { return flash_uses_wgmma(flash_kernel()) ? "wgmma" : "mma.sync"; }

const char* attention_varlen_path(const TensorRef& q, const TensorRef& k, bool backward) {
  check_rank(q, 3, "attention_varlen", "q");
  check_rank(k, 3, "attention_varlen", "k");
  VarlenParams vp;
  vp.max_q = q.shape[0];
  vp.max_k = k.shape[0];
  FlashBwdParams bp;
  static_cast<FlashParams&>(bp) =
      varlen_params(q, k, k, q, TensorRef{}, TensorRef{}, TensorRef{}, vp, AttentionParams{});
  fill_bwd_params(bp, q, k, k, q, 0, 1);
  return path_name(choose_path(bp, q.dtype, false, heads_contiguous(q, k), backward, true, "attention_varlen",
                               backward ? &bp : nullptr));
}

void CudaBackend::attention_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef mask,
                                const AttentionParams& p, Stream s) {
  AttnArgs a = attn_args(q, k, v, mask, p, "attention");
  check_same_shape(out, q, "attention", "out/q");
  check_rank(lse, 3, "attention", "lse");
  const cudaStream_t stream = to_cuda(s);
  if (out.numel() == 0) return;
  const FlashParams fp = dense_params(q, k, v, out, lse, p);
  const bool layout = heads_contiguous(q, k, v, out) && lse_ok(lse) && dense_sizes_fit(q, k);
  switch (choose_path(fp, q.dtype, mask.data != nullptr, layout, false, false, "attention")) {
    case Path::Decode: {
      const int splits = flash_decode_num_splits(fp, device_sm_count());
      Workspace ws(alloc_, flash_decode_workspace_bytes(fp, splits), stream);
      launch_flash_decode(fp, splits, ws.get(), stream);
      return;
    }
    case Path::Flash: launch_flash_fwd(fp, stream); return;
    case Path::Simple: break;
  }
  copy4(a.o_s, out);
  for (int i = 0; i < 3; ++i) a.lse_s[i] = lse.strides[i];
  launch_attention_fwd(out.data, lse.data, lse.dtype, q.data, k.data, v.data, q.dtype, a, stream);
}

void CudaBackend::attention_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                                TensorRef v, TensorRef mask, TensorRef out, TensorRef lse, const AttentionParams& p,
                                Stream s) {
  AttnArgs a = attn_args(q, k, v, mask, p, "attention");
  check_same_shape(dq, q, "attention", "dq/q");
  check_same_shape(dk, k, "attention", "dk/k");
  check_same_shape(dv, v, "attention", "dv/v");
  check_same_shape(dout, q, "attention", "dout/q");
  check_same_shape(out, q, "attention", "out/q");
  check_rank(lse, 3, "attention", "lse");
  const cudaStream_t stream = to_cuda(s);
  const bool layout =
      heads_contiguous(q, k, v, out, dout, dq, dk, dv) && lse_ok(lse) && dense_sizes_fit(q, k);
  FlashBwdParams bp;
  static_cast<FlashParams&>(bp) = dense_params(q, k, v, out, lse, p);
  fill_bwd_params(bp, dq, dk, dv, dout, 2, 1);
  if (choose_path(bp, q.dtype, mask.data != nullptr, layout, true, false, "attention", &bp) == Path::Flash) {
    bp.total_q = q.shape[0] * q.shape[2];
    bp.total_k = k.shape[0] * k.shape[2];
    Workspace ws(alloc_, flash_bwd_workspace_bytes(bp), stream);
    launch_flash_bwd(bp, ws.get(), stream);
    return;
  }
  copy4(a.o_s, dout);
  copy4(a.y_s, out);
  for (int i = 0; i < 3; ++i) a.lse_s[i] = lse.strides[i];
  AttnGrads g{};
  g.dq = dq.data;
  g.dk = dk.data;
  g.dv = dv.data;
  copy4(g.dq_s, dq);
  copy4(g.dk_s, dk);
  copy4(g.dv_s, dv);
  Workspace ws(alloc_, attention_bwd_workspace_bytes(a), stream);
  launch_attention_bwd(g, dout.data, q.data, k.data, v.data, out.data, lse.data, lse.dtype, q.dtype, a, ws.get(),
                       stream);
}

void CudaBackend::attention_varlen_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v,
                                       TensorRef cu_q, TensorRef cu_k, const VarlenParams& vp,
                                       const AttentionParams& p, Stream s) {
  const char* op = "attention_varlen";
  check_varlen(q, k, v, cu_q, cu_k, vp, op);
  check_same_shape(out, q, op, "out/q");
  check_rank(lse, 2, op, "lse");
  LLOCO_CHECK(lse.shape[0] == q.shape[1] && lse.shape[1] == q.shape[0], op, "lse must be [Hq, Nq] = [", q.shape[1],
              ", ", q.shape[0], "], got [", lse.shape[0], ", ", lse.shape[1], "]");
  const cudaStream_t stream = to_cuda(s);
  if (vp.batch == 0 || q.shape[0] == 0 || q.shape[1] == 0) return;
  const FlashParams fp = varlen_params(q, k, v, out, lse, cu_q, cu_k, vp, p);
  const bool layout = heads_contiguous(q, k, v, out) && lse_ok(lse);
  if (choose_path(fp, q.dtype, false, layout, false, true, op) == Path::Flash) {
    launch_flash_fwd(fp, stream);
    return;
  }
  const std::vector<int32_t> cq = host_offsets(cu_q, q.shape[0], stream, op);
  const std::vector<int32_t> ck = host_offsets(cu_k, k.shape[0], stream, op);
  for (int64_t b = 0; b < vp.batch; ++b) {
    const int64_t nq = cq[b + 1] - cq[b], nk = ck[b + 1] - ck[b];
    if (nq == 0) continue;
    AttnArgs a = sequence_args(q, k, v, nq, nk, p);
    packed_strides(a.o_s, out);
    a.lse_s[0] = 0;
    a.lse_s[1] = lse.strides[0];
    a.lse_s[2] = lse.strides[1];
    launch_attention_fwd(at_row_mut(out, cq[b] * out.strides[0]), at_row_mut(lse, cq[b] * lse.strides[1]), lse.dtype,
                         at_row(q, cq[b] * q.strides[0]), at_row(k, ck[b] * k.strides[0]),
                         at_row(v, ck[b] * v.strides[0]), q.dtype, a, stream);
  }
}

void CudaBackend::attention_varlen_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q,
                                       TensorRef k, TensorRef v, TensorRef out, TensorRef lse, TensorRef cu_q,
                                       TensorRef cu_k, const VarlenParams& vp, const AttentionParams& p, Stream s) {
  const char* op = "attention_varlen";
  check_varlen(q, k, v, cu_q, cu_k, vp, op);
  check_same_shape(dq, q, op, "dq/q");
  check_same_shape(dk, k, op, "dk/k");
  check_same_shape(dv, v, op, "dv/v");
  check_same_shape(dout, q, op, "dout/q");
  check_same_shape(out, q, op, "out/q");
  check_rank(lse, 2, op, "lse");
  const cudaStream_t stream = to_cuda(s);
  // Rows outside every sequence (and k rows of sequences without queries) get zero gradients; the
  // kernels overwrite the rows inside sequences. Without host offsets, zero everything up front.
  for (const TensorRef* g : {&dq, &dk, &dv}) {
    if (row_major(*g))
      CUDA_CHECK(cudaMemsetAsync(g->data, 0, static_cast<size_t>(g->numel()) * dtype_size(g->dtype), stream));
    else
      fill(*g, 0.0, s);
  }
  if (vp.batch == 0 || q.shape[0] == 0 || q.shape[1] == 0) return;
  FlashBwdParams bp;
  static_cast<FlashParams&>(bp) = varlen_params(q, k, v, out, lse, cu_q, cu_k, vp, p);
  fill_bwd_params(bp, dq, dk, dv, dout, 0, 1);
  const bool layout = heads_contiguous(q, k, v, out, dout, dq, dk, dv) && lse_ok(lse);
  if (choose_path(bp, q.dtype, false, layout, true, true, op, &bp) == Path::Flash) {
    bp.total_q = q.shape[0];
    bp.total_k = k.shape[0];
    Workspace ws(alloc_, flash_bwd_workspace_bytes(bp), stream);
    launch_flash_bwd(bp, ws.get(), stream);
    return;
  }
  const std::vector<int32_t> cq = host_offsets(cu_q, q.shape[0], stream, op);
  const std::vector<int32_t> ck = host_offsets(cu_k, k.shape[0], stream, op);
  int64_t max_nq = 0;
  for (int64_t b = 0; b < vp.batch; ++b) max_nq = std::max<int64_t>(max_nq, cq[b + 1] - cq[b]);
  AttnArgs sized = sequence_args(q, k, v, max_nq, 0, p);
  Workspace ws(alloc_, attention_bwd_workspace_bytes(sized), stream);
  for (int64_t b = 0; b < vp.batch; ++b) {
    const int64_t nq = cq[b + 1] - cq[b], nk = ck[b + 1] - ck[b];
    if (nq == 0 || nk == 0) continue;  // the gradients of this sequence are 0 (already filled)
    AttnArgs a = sequence_args(q, k, v, nq, nk, p);
    packed_strides(a.o_s, dout);
    packed_strides(a.y_s, out);
    a.lse_s[0] = 0;
    a.lse_s[1] = lse.strides[0];
    a.lse_s[2] = lse.strides[1];
    AttnGrads g{};
    g.dq = at_row_mut(dq, cq[b] * dq.strides[0]);
    g.dk = at_row_mut(dk, ck[b] * dk.strides[0]);
    g.dv = at_row_mut(dv, ck[b] * dv.strides[0]);
    packed_strides(g.dq_s, dq);
    packed_strides(g.dk_s, dk);
    packed_strides(g.dv_s, dv);
    launch_attention_bwd(g, at_row(dout, cq[b] * dout.strides[0]), at_row(q, cq[b] * q.strides[0]),
                         at_row(k, ck[b] * k.strides[0]), at_row(v, ck[b] * v.strides[0]),
                         at_row(out, cq[b] * out.strides[0]), at_row(lse, cq[b] * lse.strides[1]), lse.dtype,
                         q.dtype, a, ws.get(), stream);
  }
}

}  // namespace lloco
