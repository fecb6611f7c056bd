// PLACEHOLDER (being written): CPU LoRA kernels.
#include "core/cpu/cpu_common.h"
#include "core/error.h"

namespace lloco::cpu_impl {
void lora_matmul(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, const LoraMatmulParams&) {
  LLOCO_CHECK(false, "lora_matmul", "not yet implemented");
}
void lora_weight_grad(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, double) {
  LLOCO_CHECK(false, "lora_weight_grad", "not yet implemented");
}
}  // namespace lloco::cpu_impl
