#include "core/backend.h"

#include "core/error.h"

namespace lloco {

namespace cpu_impl {
Backend& cpu_backend();  // core/cpu/cpu_backend.cpp
}

namespace {
Backend* g_backends[kNumDeviceTypes] = {nullptr, nullptr};
}

Backend& backend_for(DeviceType type) {
  if (type == DeviceType::CPU) return cpu_impl::cpu_backend();
  Backend* b = g_backends[static_cast<int>(type)];
  LLOCO_CHECK(b != nullptr, "backend", "no backend registered for device type ", static_cast<int>(type),
              " (lloco was built without CUDA, lloco::cuda_backend_init() was not called, or no GPU is present)");
  return *b;
}

// Kernels added after the first backends: a backend that lacks one says so by name.
static void missing_kernel(const Backend& b, const char* kernel) {
  LLOCO_CHECK(false, kernel, "backend '", b.name(), "' has no ", kernel, " kernel");
}
void Backend::attention_varlen_fwd(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef,
                                   const VarlenParams&, const AttentionParams&, Stream) {
  missing_kernel(*this, "attention_varlen_fwd");
}
void Backend::attention_varlen_bwd(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef,
                                   TensorRef, TensorRef, TensorRef, TensorRef, const VarlenParams&,
                                   const AttentionParams&, Stream) {
  missing_kernel(*this, "attention_varlen_bwd");
}
void Backend::swiglu_fwd(TensorRef, TensorRef, TensorRef, Stream) { missing_kernel(*this, "swiglu_fwd"); }
void Backend::swiglu_bwd(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, Stream) {
  missing_kernel(*this, "swiglu_bwd");
}
void Backend::lora_matmul(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, const LoraMatmulParams&, Stream) {
  missing_kernel(*this, "lora_matmul");
}
void Backend::matmul_add(TensorRef, TensorRef, TensorRef, Stream) { missing_kernel(*this, "matmul_add"); }
bool Backend::lora_linear_fused(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef,
                                double, Stream) {
  return false;  // no fused kernel: the caller composes
}
void Backend::lora_weight_grad(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, double, Stream) {
  missing_kernel(*this, "lora_weight_grad");
}

void register_backend(DeviceType type, Backend* backend) { g_backends[static_cast<int>(type)] = backend; }

bool backend_available(DeviceType type) {
  return type == DeviceType::CPU || g_backends[static_cast<int>(type)] != nullptr;
}

}  // namespace lloco
