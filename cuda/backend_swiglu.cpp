// CudaBackend's SwiGLU kernels: every operand is one contiguous buffer of one shape and dtype (the
// op makes them so), which lets the kernels treat them as flat arrays.
#include "cuda/backend.h"
#include "cuda/backend_util.h"
#include "cuda/common.h"
#include "cuda/kernels/swiglu.cuh"

namespace lloco {

using namespace cuda_kernels;
using namespace cuda_binding;

namespace {

void check_contiguous(const TensorRef& t, const char* op, const char* what) {
  int64_t expected = 1;
  for (int d = t.ndim - 1; d >= 0; --d) {
    if (t.shape[d] == 1) continue;
    LLOCO_CHECK(t.strides[d] == expected, op, what, " must be contiguous: dim ", d, " has stride ", t.strides[d],
                ", expected ", expected);
    expected *= t.shape[d];
  }
}

// Checks `t` against the gate operand: shape, dtype, contiguity.
void check_operand(const TensorRef& t, const TensorRef& gate, const char* op, const char* what) {
  check_same_shape(t, gate, op, what);
  LLOCO_CHECK(t.dtype == gate.dtype, op, what, " dtypes differ: ", dtype_name(t.dtype), " vs gate ",
              dtype_name(gate.dtype));
  check_contiguous(t, op, what);
}

}  // namespace

void CudaBackend::swiglu_fwd(TensorRef out, TensorRef gate, TensorRef up, Stream s) {
  const char* op = "swiglu_fwd";
  check_contiguous(gate, op, "gate");
  check_operand(up, gate, op, "up/gate");
  check_operand(out, gate, op, "out/gate");
  launch_swiglu_fwd(out.data, gate.data, up.data, gate.dtype, gate.numel(), to_cuda(s));
}

void CudaBackend::swiglu_bwd(TensorRef dgate, TensorRef dup, TensorRef dout, TensorRef gate, TensorRef up,
                             Stream s) {
  const char* op = "swiglu_bwd";
  check_contiguous(gate, op, "gate");
  check_operand(up, gate, op, "up/gate");
  check_operand(dout, gate, op, "dout/gate");
  check_operand(dgate, gate, op, "dgate/gate");
  check_operand(dup, gate, op, "dup/gate");
  launch_swiglu_bwd(dgate.data, dup.data, dout.data, gate.data, up.data, gate.dtype, gate.numel(), to_cuda(s));
}

}  // namespace lloco
