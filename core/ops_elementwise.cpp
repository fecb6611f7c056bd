// Elementwise ops: validation, broadcasting, dispatch and their backward rules.
#include <algorithm>
#include <cmath>

#include "core/ops_common.h"

namespace lloco {

namespace detail {

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    LLOCO_CHECK(da == db || da == 1 || db == 1, op, "shapes ", shape_str(a), " and ", shape_str(b),
                " are not broadcastable (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

void check_defined(const Tensor& t, const char* op, const char* what) {
  LLOCO_CHECK(t.defined(), op, what, " is an undefined tensor");
}
void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  LLOCO_CHECK(a.device() == b.device(), op, "tensors on different devices: ", a.device().str(), " vs ",
              b.device().str());
}
void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  LLOCO_CHECK(a.dtype() == b.dtype(), op, "dtype mismatch: ", dtype_name(a.dtype()), " vs ", dtype_name(b.dtype()));
}
void check_float(const Tensor& t, const char* op) {
  LLOCO_CHECK(dtype_is_float(t.dtype()), op, "expected a floating tensor, got ", dtype_name(t.dtype()));
}
void check_index(const Tensor& t, const char* op, const char* what) {
  LLOCO_CHECK(dtype_is_int(t.dtype()), op, what, " must be i32 or i64, got ", dtype_name(t.dtype()));
}

}  // namespace detail

using namespace detail;

TensorRef to_ref(const Tensor& t) {
  TensorRef r;
  if (!t.defined()) return r;
  r.data = t.data_ptr();
  r.dtype = t.dtype();
  r.ndim = static_cast<int>(t.dim());
  for (int i = 0; i < r.ndim; ++i) {
    r.shape[i] = t.shape()[i];
    r.strides[i] = t.strides()[i];
  }
  return r;
}

// ---- binary -------------------------------------------------------------------------------------

static const char* binary_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"};
  return names[static_cast<int>(op)];
}

// Forward only: broadcast, allocate, dispatch.
static Tensor binary_raw(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_name(op);
  check_defined(a, name, "a");
  check_defined(b, name, "b");
  check_same_device(a, b, name);
  check_same_dtype(a, b, name);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  Tensor out = empty(shape, a.dtype(), a.device());
  if (out.numel() == 0) return out;
  Tensor ea = a.shape() == shape ? a.detach() : a.detach().expand(shape);
  Tensor eb = b.shape() == shape ? b.detach() : b.detach().expand(shape);
  backend_of(a).binary(op, to_ref(out), to_ref(ea), to_ref(eb), stream_of(a));
  return out;
}

Tensor add(const Tensor& a, const Tensor& b) {
  Shape sa = a.shape(), sb = b.shape();
  return record(binary_raw(BinaryOp::Add, a, b), "add", {a, b}, [sa, sb](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(g, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Shape sa = a.shape(), sb = b.shape();
  return record(binary_raw(BinaryOp::Sub, a, b), "sub", {a, b}, [sa, sb](const Tensor& g) {
    return std::vector<Tensor>{sum_to_shape(g, sa), sum_to_shape(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor ad = a.detach(), bd = b.detach();
  bool ga = a.requires_grad(), gb = b.requires_grad();
  return record(binary_raw(BinaryOp::Mul, a, b), "mul", {a, b}, [ad, bd, ga, gb](const Tensor& g) {
    return std::vector<Tensor>{ga ? sum_to_shape(mul(g, bd), ad.shape()) : Tensor(),
                               gb ? sum_to_shape(mul(g, ad), bd.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor ad = a.detach(), bd = b.detach();
  bool gb = b.requires_grad();
  return record(binary_raw(BinaryOp::Div, a, b), "div", {a, b}, [ad, bd, gb](const Tensor& g) {
    Tensor gb_t = gb ? sum_to_shape(neg(div(mul(g, ad), mul(bd, bd))), bd.shape()) : Tensor();
    return std::vector<Tensor>{sum_to_shape(div(g, bd), ad.shape()), gb_t};
  });
}

Tensor maximum(const Tensor& a, const Tensor& b) {
  Tensor ad = a.detach(), bd = b.detach();
  return record(binary_raw(BinaryOp::Maximum, a, b), "maximum", {a, b}, [ad, bd](const Tensor& g) {
    Tensor a_wins = binary_raw(BinaryOp::Ge, ad, bd);
    Tensor b_wins = binary_raw(BinaryOp::Lt, ad, bd);
    return std::vector<Tensor>{sum_to_shape(mul(g, a_wins), ad.shape()), sum_to_shape(mul(g, b_wins), bd.shape())};
  });
}

Tensor compare(BinaryOp op, const Tensor& a, const Tensor& b) {
  LLOCO_CHECK(op >= BinaryOp::Eq, "compare", "not a comparison: ", binary_name(op));
  return binary_raw(op, a.detach(), b.detach());
}

// ---- unary --------------------------------------------------------------------------------------

static Tensor unary_raw(UnaryOp op, const Tensor& x, double param, const char* name) {
  check_defined(x, name, "input");
  if (op != UnaryOp::Neg && op != UnaryOp::Abs && op != UnaryOp::MulScalar && op != UnaryOp::AddScalar &&
      op != UnaryOp::Square && op != UnaryOp::Relu)
    check_float(x, name);
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0) backend_of(x).unary(op, to_ref(out), to_ref(x), param, stream_of(x));
  return out;
}

Tensor add(const Tensor& a, double b) {
  return record(unary_raw(UnaryOp::AddScalar, a, b, "add_scalar"), "add_scalar", {a},
                [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor mul(const Tensor& a, double b) {
  return record(unary_raw(UnaryOp::MulScalar, a, b, "mul_scalar"), "mul_scalar", {a},
                [b](const Tensor& g) { return std::vector<Tensor>{mul(g, b)}; });
}

Tensor neg(const Tensor& x) {
  return record(unary_raw(UnaryOp::Neg, x, 0, "neg"), "neg", {x}, [](const Tensor& g) { return std::vector<Tensor>{neg(g)}; });
}

Tensor exp(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Exp, x, 0, "exp");
  Tensor od = out.detach();
  return record(out, "exp", {x}, [od](const Tensor& g) { return std::vector<Tensor>{mul(g, od)}; });
}

Tensor log(const Tensor& x) {
  Tensor xd = x.detach();
  return record(unary_raw(UnaryOp::Log, x, 0, "log"), "log", {x}, [xd](const Tensor& g) { return std::vector<Tensor>{div(g, xd)}; });
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Sqrt, x, 0, "sqrt");
  Tensor od = out.detach();
  return record(out, "sqrt", {x}, [od](const Tensor& g) { return std::vector<Tensor>{div(mul(g, 0.5), od)}; });
}

Tensor rsqrt(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Rsqrt, x, 0, "rsqrt");
  Tensor od = out.detach();
  return record(out, "rsqrt", {x}, [od](const Tensor& g) {
    return std::vector<Tensor>{mul(mul(g, pow(od, 3.0)), -0.5)};
  });
}

Tensor pow(const Tensor& x, double e) {
  Tensor xd = x.detach();
  return record(unary_raw(UnaryOp::PowScalar, x, e, "pow"), "pow", {x}, [xd, e](const Tensor& g) {
    return std::vector<Tensor>{mul(mul(g, pow(xd, e - 1.0)), e)};
  });
}

Tensor square(const Tensor& x) {
  Tensor xd = x.detach();
  return record(unary_raw(UnaryOp::Square, x, 0, "square"), "square", {x},
                [xd](const Tensor& g) { return std::vector<Tensor>{mul(mul(g, xd), 2.0)}; });
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Sigmoid, x, 0, "sigmoid");
  Tensor od = out.detach();
  return record(out, "sigmoid", {x}, [od](const Tensor& g) {
    return std::vector<Tensor>{mul(g, mul(od, add(neg(od), 1.0)))};
  });
}

Tensor silu(const Tensor& x) {
  Tensor xd = x.detach();
  return record(unary_raw(UnaryOp::Silu, x, 0, "silu"), "silu", {x}, [xd](const Tensor& g) {
    Tensor s = sigmoid(xd);  // d/dx x*s(x) = s * (1 + x * (1 - s))
    return std::vector<Tensor>{mul(g, mul(s, add(mul(xd, add(neg(s), 1.0)), 1.0)))};
  });
}

Tensor erf(const Tensor& x) {
  Tensor xd = x.detach();
  return record(unary_raw(UnaryOp::Erf, x, 0, "erf"), "erf", {x}, [xd](const Tensor& g) {
    const double two_over_sqrt_pi = 1.12837916709551257390;
    return std::vector<Tensor>{mul(g, mul(exp(neg(square(xd))), two_over_sqrt_pi))};
  });
}

Tensor gelu(const Tensor& x) {
  Tensor xd = x.detach();
  return record(unary_raw(UnaryOp::Gelu, x, 0, "gelu"), "gelu", {x}, [xd](const Tensor& g) {
    // d/dx x Phi(x) = Phi(x) + x phi(x): Phi the standard normal CDF, phi its density
    const double inv_sqrt2 = 0.70710678118654752440, inv_sqrt_2pi = 0.39894228040143267794;
    Tensor cdf = mul(add(erf(mul(xd, inv_sqrt2)), 1.0), 0.5);
    Tensor pdf = mul(exp(mul(square(xd), -0.5)), inv_sqrt_2pi);
    return std::vector<Tensor>{mul(g, add(cdf, mul(xd, pdf)))};
  });
}

Tensor tanh(const Tensor& x) {
  Tensor out = unary_raw(UnaryOp::Tanh, x, 0, "tanh");
  Tensor od = out.detach();
  return record(out, "tanh", {x}, [od](const Tensor& g) {
    return std::vector<Tensor>{mul(g, add(neg(square(od)), 1.0))};
  });
}

Tensor relu(const Tensor& x) {
  Tensor xd = x.detach();
  return record(unary_raw(UnaryOp::Relu, x, 0, "relu"), "relu", {x}, [xd](const Tensor& g) {
    return std::vector<Tensor>{mul(g, compare(BinaryOp::Gt, xd, zeros_like(xd)))};
  });
}

Tensor abs(const Tensor& x) {
  Tensor xd = x.detach();
  return record(unary_raw(UnaryOp::Abs, x, 0, "abs"), "abs", {x}, [xd](const Tensor& g) {
    Tensor z = zeros_like(xd);
    Tensor sign = sub(compare(BinaryOp::Gt, xd, z), compare(BinaryOp::Lt, xd, z));
    return std::vector<Tensor>{mul(g, sign)};
  });
}

Tensor sin(const Tensor& x) { return unary_raw(UnaryOp::Sin, x.detach(), 0, "sin"); }
Tensor cos(const Tensor& x) { return unary_raw(UnaryOp::Cos, x.detach(), 0, "cos"); }

Tensor cast(const Tensor& x, DType dtype) {
  check_defined(x, "cast", "input");
  Tensor out = empty(x.shape(), dtype, x.device());
  if (out.numel() > 0) backend_of(x).copy(to_ref(out), to_ref(x), stream_of(x));
  if (!dtype_is_float(dtype)) return out;
  DType from = x.dtype();
  return record(out, "cast", {x}, [from](const Tensor& g) { return std::vector<Tensor>{g.to(from)}; });
}

Tensor copy(const Tensor& x) {
  check_defined(x, "copy", "input");
  Tensor out = empty(x.shape(), x.dtype(), x.device());
  if (out.numel() > 0) backend_of(x).copy(to_ref(out), to_ref(x), stream_of(x));
  return record(out, "copy", {x}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

}  // namespace lloco
