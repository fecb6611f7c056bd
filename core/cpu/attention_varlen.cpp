// PLACEHOLDER (being written): CPU varlen attention.
#include "core/cpu/cpu_common.h"
#include "core/error.h"

namespace lloco::cpu_impl {
void attention_varlen_fwd(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef,
                          const VarlenParams&, const AttentionParams&) {
  LLOCO_CHECK(false, "attention_varlen", "not yet implemented");
}
void attention_varlen_bwd(TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef, TensorRef,
                          TensorRef, TensorRef, TensorRef, const VarlenParams&, const AttentionParams&) {
  LLOCO_CHECK(false, "attention_varlen", "not yet implemented");
}
}  // namespace lloco::cpu_impl
