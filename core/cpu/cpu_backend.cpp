// The CPU backend: the reference every other backend is tested against. Data movement, indexing
// and optimizer kernels live here; math kernels are in the sibling files.
#include <cmath>
#include <cstring>

#include "core/cpu/cpu_common.h"
#include "core/error.h"
#include "core/philox.h"

namespace lloco::cpu_impl {

namespace {

// Position of element `i` of `ref` along `dim`, plus the offsets of that element's "row" (all other
// coordinates) in several tensors that share every dim except `dim`.
struct DimSplit {
  int64_t outer = 1, inner = 1;  // products of the sizes before / after dim
};

DimSplit split_at(const TensorRef& r, int dim) {
  DimSplit s;
  for (int d = 0; d < dim; ++d) s.outer *= r.shape[d];
  for (int d = dim + 1; d < r.ndim; ++d) s.inner *= r.shape[d];
  return s;
}

// Offset in r of coordinates (o over dims < dim, position p on dim, n over dims > dim).
int64_t offset_split(const TensorRef& r, int dim, int64_t o, int64_t p, int64_t n) {
  int64_t off = p * r.strides[dim];
  for (int d = r.ndim - 1; d > dim; --d) {
    off += (n % r.shape[d]) * r.strides[d];
    n /= r.shape[d];
  }
  for (int d = dim - 1; d >= 0; --d) {
    off += (o % r.shape[d]) * r.strides[d];
    o /= r.shape[d];
  }
  return off;
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  void synchronize(Stream) override {}

  void copy_bytes(void* dst, const void* src, size_t nbytes, bool dst_dev, bool src_dev, Stream) override {
    LLOCO_CHECK(!dst_dev && !src_dev, "copy_bytes", "the CPU backend cannot touch device memory");
    if (nbytes) std::memcpy(dst, src, nbytes);
  }

  void fill(TensorRef out, double value, Stream) override {
    for_each_element<1>(out, {&out}, [&](int64_t, const std::array<int64_t, 1>& o) {
      store(out.data, out.dtype, o[0], value);
    });
  }

  void copy(TensorRef out, TensorRef in, Stream) override {
    if (out.dtype == in.dtype && is_contiguous(out) && is_contiguous(in)) {
      std::memcpy(out.data, in.data, static_cast<size_t>(out.numel()) * dtype_size(out.dtype));
      return;
    }
    if (out.dtype == DType::I64 && in.dtype == DType::I64) {  // exact beyond 2^53
      for_each_element<2>(out, {&out, &in}, [&](int64_t, const std::array<int64_t, 2>& o) {
        static_cast<int64_t*>(out.data)[o[0]] = static_cast<const int64_t*>(in.data)[o[1]];
      });
      return;
    }
    for_each_element<2>(out, {&out, &in}, [&](int64_t, const std::array<int64_t, 2>& o) {
      store(out.data, out.dtype, o[0], load(in.data, in.dtype, o[1]));
    });
  }

  void arange(TensorRef out, double start, double step, Stream) override {
    for (int64_t i = 0; i < out.shape[0]; ++i) store(out.data, out.dtype, i * out.strides[0], start + step * i);
  }

  void random(TensorRef out, RandomKind kind, uint64_t seed, uint64_t offset, Stream) override {
    for_each_element<1>(out, {&out}, [&](int64_t i, const std::array<int64_t, 1>& o) {
      uint64_t n = offset + static_cast<uint64_t>(i);
      float v = kind == RandomKind::Uniform ? philox_uniform(seed, n) : philox_normal(seed, n);
      store(out.data, out.dtype, o[0], v);
    });
  }

  void unary(UnaryOp op, TensorRef out, TensorRef in, double param, Stream) override {
    elementwise_unary(op, out, in, param);
  }
  void binary(BinaryOp op, TensorRef out, TensorRef a, TensorRef b, Stream) override {
    elementwise_binary(op, out, a, b);
  }
  void reduce(ReduceOp op, TensorRef out, TensorRef in, Stream) override { cpu_impl::reduce(op, out, in); }
  void softmax(TensorRef out, TensorRef in, int dim, bool log, Stream) override { cpu_impl::softmax(out, in, dim, log); }
  void matmul(TensorRef out, TensorRef a, TensorRef b, Stream) override { cpu_impl::matmul(out, a, b); }
  void matmul_add(TensorRef out, TensorRef a, TensorRef b, Stream) override { cpu_impl::matmul(out, a, b, true); }

  void index_select(TensorRef out, TensorRef in, int dim, TensorRef index, Stream) override {
    const DimSplit s = split_at(out, dim);
    const int64_t n_idx = index.shape[0];
#pragma omp parallel for collapse(2) schedule(static) if (out.numel() > kGrain)
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t p = 0; p < n_idx; ++p) {
        const int64_t src = load_index(index, p * index.strides[0]);
        for (int64_t n = 0; n < s.inner; ++n)
          store(out.data, out.dtype, offset_split(out, dim, o, p, n),
                load(in.data, in.dtype, offset_split(in, dim, o, src, n)));
      }
  }

  void index_add(TensorRef out, int dim, TensorRef index, TensorRef src, Stream) override {
    const DimSplit s = split_at(src, dim);
    const int64_t n_idx = index.shape[0];
    // Serial over index positions: repeated indices accumulate deterministically.
#pragma omp parallel for schedule(static) if (src.numel() > kGrain)
    for (int64_t o = 0; o < s.outer; ++o)
      for (int64_t p = 0; p < n_idx; ++p) {
        const int64_t dst = load_index(index, p * index.strides[0]);
        for (int64_t n = 0; n < s.inner; ++n) {
          const int64_t od = offset_split(out, dim, o, dst, n);
          store(out.data, out.dtype, od,
                load(out.data, out.dtype, od) + load(src.data, src.dtype, offset_split(src, dim, o, p, n)));
        }
      }
  }

  void gather(TensorRef out, TensorRef in, int dim, TensorRef index, Stream) override {
    for_each_element<2>(out, {&out, &index}, [&](int64_t i, const std::array<int64_t, 2>& o) {
      int64_t off_in = 0, rem = i;
      for (int d = out.ndim - 1; d >= 0; --d) {
        int64_t c = rem % out.shape[d];
        rem /= out.shape[d];
        off_in += (d == dim ? load_index(index, o[1]) : c) * in.strides[d];
      }
      store(out.data, out.dtype, o[0], load(in.data, in.dtype, off_in));
    });
  }

  void scatter_add(TensorRef out, int dim, TensorRef index, TensorRef src, Stream) override {
    const int64_t n = src.numel();
    for (int64_t i = 0; i < n; ++i) {  // serial: duplicate indices accumulate deterministically
      int64_t off_out = 0, rem = i;
      for (int d = src.ndim - 1; d >= 0; --d) {
        int64_t c = rem % src.shape[d];
        rem /= src.shape[d];
        off_out += (d == dim ? load_index(index, offset_of(index, i)) : c) * out.strides[d];
      }
      store(out.data, out.dtype, off_out,
            load(out.data, out.dtype, off_out) + load(src.data, src.dtype, offset_of(src, i)));
    }
  }

  void where(TensorRef out, TensorRef cond, TensorRef a, TensorRef b, Stream) override {
    for_each_element<4>(out, {&out, &cond, &a, &b}, [&](int64_t, const std::array<int64_t, 4>& o) {
      bool c = load(cond.data, cond.dtype, o[1]) != 0.0;
      store(out.data, out.dtype, o[0], c ? load(a.data, a.dtype, o[2]) : load(b.data, b.dtype, o[3]));
    });
  }

  void cross_entropy_fwd(TensorRef loss, TensorRef lse, TensorRef logits, TensorRef targets, int64_t ignore,
                         Stream) override {
    cpu_impl::cross_entropy_fwd(loss, lse, logits, targets, ignore);
  }
  void cross_entropy_bwd(TensorRef dlogits, TensorRef dloss, TensorRef logits, TensorRef lse, TensorRef targets,
                         int64_t ignore, Stream) override {
    cpu_impl::cross_entropy_bwd(dlogits, dloss, logits, lse, targets, ignore);
  }
  void rms_norm_fwd(TensorRef out, TensorRef rstd, TensorRef x, TensorRef w, double eps, Stream) override {
    cpu_impl::rms_norm_fwd(out, rstd, x, w, eps);
  }
  void rms_norm_bwd(TensorRef dx, TensorRef dw, TensorRef dy, TensorRef x, TensorRef w, TensorRef rstd,
                    Stream) override {
    cpu_impl::rms_norm_bwd(dx, dw, dy, x, w, rstd);
  }
  void swiglu_fwd(TensorRef out, TensorRef gate, TensorRef up, Stream) override {
    cpu_impl::swiglu_fwd(out, gate, up);
  }
  void swiglu_bwd(TensorRef dgate, TensorRef dup, TensorRef dout, TensorRef gate, TensorRef up, Stream) override {
    cpu_impl::swiglu_bwd(dgate, dup, dout, gate, up);
  }
  void rope(TensorRef out, TensorRef x, TensorRef cos, TensorRef sin, RopeStyle style, bool inverse,
            Stream) override {
    cpu_impl::rope(out, x, cos, sin, style, inverse);
  }
  void attention_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef mask,
                     const AttentionParams& p, Stream) override {
    cpu_impl::attention_fwd(out, lse, q, k, v, mask, p);
  }
  void attention_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                     TensorRef v, TensorRef mask, TensorRef out, TensorRef lse, const AttentionParams& p,
                     Stream) override {
    cpu_impl::attention_bwd(dq, dk, dv, dout, q, k, v, mask, out, lse, p);
  }

  void attention_varlen_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef cu_q,
                            TensorRef cu_k, const VarlenParams& vp, const AttentionParams& p, Stream) override {
    cpu_impl::attention_varlen_fwd(out, lse, q, k, v, cu_q, cu_k, vp, p);
  }
  void attention_varlen_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                            TensorRef v, TensorRef out, TensorRef lse, TensorRef cu_q, TensorRef cu_k,
                            const VarlenParams& vp, const AttentionParams& p, Stream) override {
    cpu_impl::attention_varlen_bwd(dq, dk, dv, dout, q, k, v, out, lse, cu_q, cu_k, vp, p);
  }
  void lora_matmul(TensorRef y, TensorRef x, TensorRef w, TensorRef indptr, TensorRef adapter,
                   const LoraMatmulParams& p, Stream) override {
    cpu_impl::lora_matmul(y, x, w, indptr, adapter, p);
  }
  void lora_weight_grad(TensorRef dw, TensorRef lhs, TensorRef rhs, TensorRef indptr, TensorRef adapter,
                        double scale, Stream) override {
    cpu_impl::lora_weight_grad(dw, lhs, rhs, indptr, adapter, scale);
  }

  // torch.optim.AdamW: decay first, then moments, then the bias-corrected update.
  void adamw_step(TensorRef param, TensorRef grad, TensorRef m, TensorRef v, const AdamWParams& p,
                  Stream) override {
    const int64_t n = param.numel();
    const double step = p.lr / p.bias_correction1, bc2_sqrt = std::sqrt(p.bias_correction2);
#pragma omp parallel for schedule(static) if (n > kGrain)
    for (int64_t i = 0; i < n; ++i) {
      double w = load(param.data, param.dtype, i) * (1.0 - p.lr * p.weight_decay);
      const double g = load(grad.data, grad.dtype, i);
      const double mi = p.beta1 * load(m.data, m.dtype, i) + (1.0 - p.beta1) * g;
      const double vi = p.beta2 * load(v.data, v.dtype, i) + (1.0 - p.beta2) * g * g;
      store(m.data, m.dtype, i, mi);
      store(v.data, v.dtype, i, vi);
      w -= step * mi / (std::sqrt(vi) / bc2_sqrt + p.eps);
      store(param.data, param.dtype, i, w);
    }
  }
};

}  // namespace

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

}  // namespace lloco::cpu_impl
