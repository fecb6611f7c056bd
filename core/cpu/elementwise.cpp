// CPU reference for unary and binary elementwise ops. Math in double, one rounding on store;
// a float fast path covers contiguous f32 tensors (the common case in training).
#include <cmath>
#include <limits>

#include "core/cpu/cpu_common.h"

namespace lloco::cpu_impl {

namespace {

template <typename T>
inline T apply_unary(UnaryOp op, T x, T param) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return std::exp(x);
    case UnaryOp::Log: return std::log(x);
    case UnaryOp::Sqrt: return std::sqrt(x);
    case UnaryOp::Rsqrt: return T(1) / std::sqrt(x);
    case UnaryOp::Silu: return x / (T(1) + std::exp(-x));
    case UnaryOp::Erf: return std::erf(x);
    case UnaryOp::Gelu: return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
    case UnaryOp::Sigmoid: return T(1) / (T(1) + std::exp(-x));
    case UnaryOp::Tanh: return std::tanh(x);
    case UnaryOp::Sin: return std::sin(x);
    case UnaryOp::Cos: return std::cos(x);
    case UnaryOp::Abs: return std::abs(x);
    case UnaryOp::Relu: return x > T(0) ? x : T(0);
    case UnaryOp::PowScalar: return std::pow(x, param);
    case UnaryOp::MulScalar: return x * param;
    case UnaryOp::AddScalar: return x + param;
    case UnaryOp::Square: return x * x;
  }
  return x;
}

template <typename T>
inline T apply_binary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Maximum: return (a != a || b != b) ? std::numeric_limits<T>::quiet_NaN() : (a > b ? a : b);
    case BinaryOp::Minimum: return (a != a || b != b) ? std::numeric_limits<T>::quiet_NaN() : (a < b ? a : b);
    case BinaryOp::Eq: return a == b ? T(1) : T(0);
    case BinaryOp::Ne: return a != b ? T(1) : T(0);
    case BinaryOp::Lt: return a < b ? T(1) : T(0);
    case BinaryOp::Le: return a <= b ? T(1) : T(0);
    case BinaryOp::Gt: return a > b ? T(1) : T(0);
    case BinaryOp::Ge: return a >= b ? T(1) : T(0);
  }
  return a;
}

// Integer division/overflow semantics are not needed: integer tensors only go through comparisons
// and add/sub/mul of small values (position arithmetic), which double represents exactly.
bool all_f32_contiguous(std::initializer_list<const TensorRef*> refs) {
  for (const TensorRef* r : refs)
    if (r->dtype != DType::F32 || !is_contiguous(*r)) return false;
  return true;
}

}  // namespace

void elementwise_unary(UnaryOp op, TensorRef out, TensorRef in, double param) {
  if (all_f32_contiguous({&out, &in})) {
    const float* x = static_cast<const float*>(in.data);
    float* y = static_cast<float*>(out.data);
    const int64_t n = out.numel();
    const float p = static_cast<float>(param);
#pragma omp parallel for schedule(static) if (n > kGrain)
    for (int64_t i = 0; i < n; ++i) y[i] = apply_unary<float>(op, x[i], p);
    return;
  }
  for_each_element<2>(out, {&out, &in}, [&](int64_t, const std::array<int64_t, 2>& off) {
    store(out.data, out.dtype, off[0], apply_unary<double>(op, load(in.data, in.dtype, off[1]), param));
  });
}

void elementwise_binary(BinaryOp op, TensorRef out, TensorRef a, TensorRef b) {
  if (all_f32_contiguous({&out, &a, &b})) {
    const float* x = static_cast<const float*>(a.data);
    const float* y = static_cast<const float*>(b.data);
    float* z = static_cast<float*>(out.data);
    const int64_t n = out.numel();
#pragma omp parallel for schedule(static) if (n > kGrain)
    for (int64_t i = 0; i < n; ++i) z[i] = apply_binary<float>(op, x[i], y[i]);
    return;
  }
  for_each_element<3>(out, {&out, &a, &b}, [&](int64_t, const std::array<int64_t, 3>& off) {
    double r = apply_binary<double>(op, load(a.data, a.dtype, off[1]), load(b.data, b.dtype, off[2]));
    store(out.data, out.dtype, off[0], r);
  });
}

}  // namespace lloco::cpu_impl
