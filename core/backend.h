// The kernel table a device implements. Kernels see only TensorRef (a POD: pointer, dtype, shape,
// strides), never Tensor, so cuda/ can implement them in device code. Ops in core validate shapes,
// allocate outputs and broadcast inputs (stride-0 views) before calling into a backend.
#pragma once
#include <cstdint>
#include <string>

#include "core/device.h"
#include "core/dtype.h"

namespace lloco {

struct TensorRef {
  void* data = nullptr;  // first element of the view
  DType dtype = DType::F32;
  int ndim = 0;
  int64_t shape[8] = {};
  int64_t strides[8] = {};  // in elements
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
};

enum class UnaryOp : uint8_t {
  Neg, Exp, Log, Sqrt, Rsqrt, Silu, Sigmoid, Tanh, Sin, Cos, Abs, Relu,
  Erf, Gelu,  // Gelu: exact (erf) form, HF hidden_act "gelu"
  PowScalar,  // x ** param
  MulScalar,  // x * param
  AddScalar,  // x + param
  Square,
};
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Maximum, Minimum, Eq, Ne, Lt, Le, Gt, Ge };
enum class ReduceOp : uint8_t { Sum, Max, Min };
enum class RopeStyle : uint8_t {
  HalfRotate,   // HF LLaMA checkpoints: pairs (i, i + D/2)
  Interleaved,  // llama2.c / Meta: pairs (2i, 2i + 1)
};
enum class RandomKind : uint8_t { Uniform, Normal };

struct AdamWParams {
  double lr, beta1, beta2, eps, weight_decay;
  double bias_correction1, bias_correction2;  // 1 - beta^t
};

struct AttentionParams {
  double scale = 1.0;
  bool causal = false;  // bottom-right aligned: query i sees keys j <= i + (Tk - Tq)
};

// Packed variable-length batches (flash-attention's cu_seqlens): sequence b owns rows
// cu_q[b] .. cu_q[b+1] of q and cu_k[b] .. cu_k[b+1] of k/v. cu_q/cu_k are [B + 1] i32 on the
// tensors' device, starting at 0 and non-decreasing; max_q/max_k are the longest lengths (they size
// the GPU grid; the op computes them on the host).
struct VarlenParams {
  int64_t batch = 0;
  int64_t max_q = 0, max_k = 0;
};

// Multi-adapter LoRA matmul (punica's SGMV/BGMV). Rows of x are assigned to adapters either by
// segment (indptr [S + 1] i32 row offsets, adapter [S] i32) or, when indptr.data == nullptr, per row
// (adapter [N] i32). An adapter id < 0 means "no adapter" for those rows.
struct LoraMatmulParams {
  double scale = 1.0;
  bool transpose_w = true;  // true: w [L, O, I], y = x @ w[a]^T; false: w [L, I, O], y = x @ w[a]
  bool accumulate = false;  // y += ... instead of y = ... (rows without adapter: untouched / zero)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual void synchronize(Stream stream) = 0;
  // Whether a fused kernel ("rms_norm_bwd", "attention_bwd", ...) is implemented. When a backward
  // kernel is missing, the op backpropagates through its composed fallback instead.
  virtual bool has_kernel(const char* kernel) const { return true; }
  // Raw byte copies between host and this device (pointers may be host or device).
  virtual void copy_bytes(void* dst, const void* src, size_t nbytes, bool dst_on_device,
                          bool src_on_device, Stream stream) = 0;

  // out = value
  virtual void fill(TensorRef out, double value, Stream s) = 0;
  // out = in (same shape, any strides, converts dtype)
  virtual void copy(TensorRef out, TensorRef in, Stream s) = 0;
  // out[i] = start + i * step, out contiguous 1-D
  virtual void arange(TensorRef out, double start, double step, Stream s) = 0;
  // out contiguous; element i uses Philox counter (offset + i)
  virtual void random(TensorRef out, RandomKind kind, uint64_t seed, uint64_t offset, Stream s) = 0;
  virtual void unary(UnaryOp op, TensorRef out, TensorRef in, double param, Stream s) = 0;
  // a, b already broadcast to out's shape
  virtual void binary(BinaryOp op, TensorRef out, TensorRef a, TensorRef b, Stream s) = 0;
  // out has in's rank with size 1 on reduced dims
  virtual void reduce(ReduceOp op, TensorRef out, TensorRef in, Stream s) = 0;
  // out/in same shape; softmax (or log_softmax) along dim
  virtual void softmax(TensorRef out, TensorRef in, int dim, bool log, Stream s) = 0;
  // out [B, M, N] = a [B, M, K] @ b [B, K, N]; batch strides may be 0 (broadcast)
  virtual void matmul(TensorRef out, TensorRef a, TensorRef b, Stream s) = 0;
  // out [B, M, N] += a [B, M, K] @ b [B, K, N], one rounding of the sum (GEMM with beta = 1); out
  // must not broadcast over the batch.
  virtual void matmul_add(TensorRef out, TensorRef a, TensorRef b, Stream s);
  // out = in.index_select(dim, index); index 1-D i32/i64
  virtual void index_select(TensorRef out, TensorRef in, int dim, TensorRef index, Stream s) = 0;
  // out.index_add_(dim, index, src)
  virtual void index_add(TensorRef out, int dim, TensorRef index, TensorRef src, Stream s) = 0;
  // out[..., i, ...] = in[..., index[..., i, ...], ...] along dim; index has out's shape
  virtual void gather(TensorRef out, TensorRef in, int dim, TensorRef index, Stream s) = 0;
  // out[..., index[..., i, ...], ...] += src[..., i, ...] along dim
  virtual void scatter_add(TensorRef out, int dim, TensorRef index, TensorRef src, Stream s) = 0;
  // out = cond != 0 ? a : b (all broadcast to out's shape)
  virtual void where(TensorRef out, TensorRef cond, TensorRef a, TensorRef b, Stream s) = 0;

  // ---- fused kernels ----
  // logits [N, V], targets [N] (i32/i64) -> loss [N] (0 where ignored), lse [N] (f32)
  virtual void cross_entropy_fwd(TensorRef loss, TensorRef lse, TensorRef logits, TensorRef targets,
                                 int64_t ignore_index, Stream s) = 0;
  // dlogits [N, V] = dloss[n] * (softmax(logits) - onehot(target)); zero rows where ignored
  virtual void cross_entropy_bwd(TensorRef dlogits, TensorRef dloss, TensorRef logits, TensorRef lse,
                                 TensorRef targets, int64_t ignore_index, Stream s) = 0;
  // x [N, D], weight [D] -> out [N, D], rstd [N] (f32)
  virtual void rms_norm_fwd(TensorRef out, TensorRef rstd, TensorRef x, TensorRef weight, double eps,
                            Stream s) = 0;
  // dx [N, D], dweight [D] (accumulated in f32 by the caller's dtype), from dy, x, weight, rstd
  virtual void rms_norm_bwd(TensorRef dx, TensorRef dweight, TensorRef dy, TensorRef x, TensorRef weight,
                            TensorRef rstd, Stream s) = 0;
  // out = silu(gate) * up; out/gate/up contiguous, one shape and dtype; math in f32 (f64 for f64).
  virtual void swiglu_fwd(TensorRef out, TensorRef gate, TensorRef up, Stream s);
  // With sg = sigmoid(gate): dgate = dout * up * sg * (1 + gate * (1 - sg)), dup = dout * silu(gate);
  // all contiguous, one shape and dtype.
  virtual void swiglu_bwd(TensorRef dgate, TensorRef dup, TensorRef dout, TensorRef gate, TensorRef up, Stream s);
  // x/out [B, H, T, D]; cos/sin [B or 1, T, D/2] f32; inverse=true rotates by -angle (the backward)
  virtual void rope(TensorRef out, TensorRef x, TensorRef cos, TensorRef sin, RopeStyle style,
                    bool inverse, Stream s) = 0;
  // q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D], mask optional additive [B|1, Hq|1, Tq, Tk] (data==nullptr
  // when absent) -> out [B, Hq, Tq, D], lse [B, Hq, Tq] f32
  virtual void attention_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v,
                             TensorRef mask, const AttentionParams& p, Stream s) = 0;
  // dq/dk/dv overwrite; dk/dv summed over the query heads of a group
  virtual void attention_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q,
                             TensorRef k, TensorRef v, TensorRef mask, TensorRef out, TensorRef lse,
                             const AttentionParams& p, Stream s) = 0;
  // q [Nq, Hq, D], k/v [Nk, Hkv, D] (last dim contiguous) -> out [Nq, Hq, D], lse [Hq, Nq] f32.
  // Rows of q beyond cu_q[B] are left untouched.
  virtual void attention_varlen_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v,
                                    TensorRef cu_q, TensorRef cu_k, const VarlenParams& vp,
                                    const AttentionParams& p, Stream s);
  // dq/dk/dv overwrite (rows outside every sequence are zeroed); dk/dv sum over the group's heads.
  virtual void attention_varlen_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q,
                                    TensorRef k, TensorRef v, TensorRef out, TensorRef lse, TensorRef cu_q,
                                    TensorRef cu_k, const VarlenParams& vp, const AttentionParams& p, Stream s);
  // y [N, O] (+)= scale * x [N, I] @ op(w[adapter(row)]); see LoraMatmulParams.
  virtual void lora_matmul(TensorRef y, TensorRef x, TensorRef w, TensorRef indptr, TensorRef adapter,
                           const LoraMatmulParams& p, Stream s);
  // Fused LoRA linear (a few rows, e.g. decode): y [N, O] = x [N, I] @ w [O, I]^T + scale * t @ b[a(n)]^T
  // with t [N, r] = x @ a[a(n)]^T in x's dtype (written to t as well: the backward needs it);
  // a [L, r, I], b [L, O, r], rows assigned as in lora_matmul. Returns false without touching
  // anything when this backend has no fused kernel for these operands; callers then compose two
  // lora_matmul calls and matmul_add, which is also the reference this must match.
  virtual bool lora_linear_fused(TensorRef y, TensorRef t, TensorRef x, TensorRef w, TensorRef a, TensorRef b,
                                 TensorRef indptr, TensorRef adapter, double scale, Stream s);
  // Weight gradient of lora_matmul: dw [L, P, Q] = scale * sum over rows r of adapter a of
  // lhs[r]^T (P) outer rhs[r] (Q), i.e. dw[a] = scale * lhs[rows_a]^T @ rhs[rows_a]; adapters that
  // own no row get 0. lhs [N, P], rhs [N, Q].
  virtual void lora_weight_grad(TensorRef dw, TensorRef lhs, TensorRef rhs, TensorRef indptr, TensorRef adapter,
                                double scale, Stream s);

  // In-place AdamW on contiguous tensors of one dtype (param/m/v may be f32 master copies).
  virtual void adamw_step(TensorRef param, TensorRef grad, TensorRef m, TensorRef v,
                          const AdamWParams& p, Stream s) = 0;
};

Backend& backend_for(DeviceType type);
void register_backend(DeviceType type, Backend* backend);
bool backend_available(DeviceType type);

}  // namespace lloco
