// CPU reference for the fused kernels: cross-entropy, RMSNorm, SwiGLU, rotary embedding. Inputs are
// contiguous row-major (the ops guarantee it) except rope, which honours x's strides.
#include <cmath>
#include <limits>
#include <vector>

#include "core/cpu/cpu_common.h"

namespace lloco::cpu_impl {

void cross_entropy_fwd(TensorRef loss, TensorRef lse, TensorRef logits, TensorRef targets, int64_t ignore_index) {
  const int64_t N = logits.shape[0], V = logits.shape[1];
#pragma omp parallel for schedule(static) if (N * V > kGrain)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t row = n * logits.strides[0];
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, load(logits.data, logits.dtype, row + v * logits.strides[1]));
    double sum = 0.0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(load(logits.data, logits.dtype, row + v * logits.strides[1]) - mx);
    const double l = mx + std::log(sum);
    store(lse.data, lse.dtype, n * lse.strides[0], l);
    const int64_t t = load_index(targets, n * targets.strides[0]);
    double value = 0.0;
    if (t != ignore_index) value = l - load(logits.data, logits.dtype, row + t * logits.strides[1]);
    store(loss.data, loss.dtype, n * loss.strides[0], value);
  }
}

void cross_entropy_bwd(TensorRef dlogits, TensorRef dloss, TensorRef logits, TensorRef lse, TensorRef targets,
                       int64_t ignore_index) {
  const int64_t N = logits.shape[0], V = logits.shape[1];
#pragma omp parallel for schedule(static) if (N * V > kGrain)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t t = load_index(targets, n * targets.strides[0]);
    const double g = t == ignore_index ? 0.0 : load(dloss.data, dloss.dtype, n * dloss.strides[0]);
    const double l = load(lse.data, lse.dtype, n * lse.strides[0]);
    for (int64_t v = 0; v < V; ++v) {
      double p = std::exp(load(logits.data, logits.dtype, n * logits.strides[0] + v * logits.strides[1]) - l);
      double d = g * (p - (v == t ? 1.0 : 0.0));
      store(dlogits.data, dlogits.dtype, n * dlogits.strides[0] + v * dlogits.strides[1], d);
    }
  }
}

void rms_norm_fwd(TensorRef out, TensorRef rstd, TensorRef x, TensorRef weight, double eps) {
  const int64_t N = x.shape[0], D = x.shape[1];
#pragma omp parallel for schedule(static) if (N * D > kGrain)
  for (int64_t n = 0; n < N; ++n) {
    double ss = 0.0;
    for (int64_t d = 0; d < D; ++d) {
      double v = load(x.data, x.dtype, n * D + d);
      ss += v * v;
    }
    const double r = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
    store(rstd.data, rstd.dtype, n, r);
    for (int64_t d = 0; d < D; ++d)
      store(out.data, out.dtype, n * D + d, load(x.data, x.dtype, n * D + d) * r * load(weight.data, weight.dtype, d));
  }
}

void rms_norm_bwd(TensorRef dx, TensorRef dweight, TensorRef dy, TensorRef x, TensorRef weight, TensorRef rstd) {
  const int64_t N = x.shape[0], D = x.shape[1];
  std::vector<double> dw(static_cast<size_t>(D), 0.0);
#pragma omp parallel if (N * D > kGrain)
  {
    std::vector<double> local(static_cast<size_t>(D), 0.0);
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) {
      const double r = load(rstd.data, rstd.dtype, n);
      double dot = 0.0;  // sum_d (w * dy) * x
      for (int64_t d = 0; d < D; ++d)
        dot += load(weight.data, weight.dtype, d) * load(dy.data, dy.dtype, n * D + d) * load(x.data, x.dtype, n * D + d);
      const double c = dot * r * r * r / static_cast<double>(D);
      for (int64_t d = 0; d < D; ++d) {
        const double xv = load(x.data, x.dtype, n * D + d), g = load(dy.data, dy.dtype, n * D + d);
        store(dx.data, dx.dtype, n * D + d, load(weight.data, weight.dtype, d) * g * r - xv * c);
        local[d] += g * xv * r;
      }
    }
#pragma omp critical
    for (int64_t d = 0; d < D; ++d) dw[d] += local[d];
  }
  for (int64_t d = 0; d < D; ++d) store(dweight.data, dweight.dtype, d, dw[d]);
}

void swiglu_fwd(TensorRef out, TensorRef gate, TensorRef up) {
  const int64_t n = gate.numel();
#pragma omp parallel for schedule(static) if (n > kGrain)
  for (int64_t i = 0; i < n; ++i) {
    const double g = load(gate.data, gate.dtype, i);
    store(out.data, out.dtype, i, g / (1.0 + std::exp(-g)) * load(up.data, up.dtype, i));
  }
}

void swiglu_bwd(TensorRef dgate, TensorRef dup, TensorRef dout, TensorRef gate, TensorRef up) {
  const int64_t n = gate.numel();
#pragma omp parallel for schedule(static) if (n > kGrain)
  for (int64_t i = 0; i < n; ++i) {
    const double g = load(gate.data, gate.dtype, i), d = load(dout.data, dout.dtype, i);
    const double sg = 1.0 / (1.0 + std::exp(-g));
    store(dgate.data, dgate.dtype, i, d * load(up.data, up.dtype, i) * sg * (1.0 + g * (1.0 - sg)));
    store(dup.data, dup.dtype, i, d * g * sg);
  }
}

void rope(TensorRef out, TensorRef x, TensorRef cos, TensorRef sin, RopeStyle style, bool inverse) {
  const int64_t B = x.shape[0], H = x.shape[1], T = x.shape[2], D = x.shape[3], half = D / 2;
  const double sign = inverse ? -1.0 : 1.0;
#pragma omp parallel for collapse(2) schedule(static) if (B * H * T * D > kGrain)
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      const int64_t cb = cos.shape[0] == 1 ? 0 : b;
      for (int64_t t = 0; t < T; ++t) {
        const int64_t xo = b * x.strides[0] + h * x.strides[1] + t * x.strides[2];
        const int64_t oo = b * out.strides[0] + h * out.strides[1] + t * out.strides[2];
        for (int64_t i = 0; i < half; ++i) {
          const int64_t to = cb * cos.strides[0] + t * cos.strides[1] + i * cos.strides[2];
          const double c = load(cos.data, cos.dtype, to), s = sign * load(sin.data, sin.dtype, to);
          const int64_t i1 = style == RopeStyle::HalfRotate ? i : 2 * i;
          const int64_t i2 = style == RopeStyle::HalfRotate ? i + half : 2 * i + 1;
          const double x1 = load(x.data, x.dtype, xo + i1 * x.strides[3]);
          const double x2 = load(x.data, x.dtype, xo + i2 * x.strides[3]);
          store(out.data, out.dtype, oo + i1 * out.strides[3], x1 * c - x2 * s);
          store(out.data, out.dtype, oo + i2 * out.strides[3], x2 * c + x1 * s);
        }
      }
    }
  }
}

}  // namespace lloco::cpu_impl
