// The CUDA implementation of lloco::Backend. Methods validate what the launchers rely on, turn
// TensorRefs into raw pointers + sizes/strides, and launch on the given stream (a null stream is
// the legacy default stream). Nothing here synchronizes except synchronize() and copies to host.
#pragma once
#include <memory>
#include <mutex>

#include "core/backend.h"
#include "cuda/allocator.h"

namespace lloco {

class CublasMatmul;

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(CachingAllocator& allocator);
  ~CudaBackend() override;

  const char* name() const override { return "cuda"; }
  void synchronize(Stream stream) override;
  bool has_kernel(const char*) const override { return true; }
  void copy_bytes(void* dst, const void* src, size_t nbytes, bool dst_on_device, bool src_on_device,
                  Stream stream) override;

  void fill(TensorRef out, double value, Stream s) override;
  void copy(TensorRef out, TensorRef in, Stream s) override;
  void arange(TensorRef out, double start, double step, Stream s) override;
  void random(TensorRef out, RandomKind kind, uint64_t seed, uint64_t offset, Stream s) override;
  void unary(UnaryOp op, TensorRef out, TensorRef in, double param, Stream s) override;
  void binary(BinaryOp op, TensorRef out, TensorRef a, TensorRef b, Stream s) override;
  void reduce(ReduceOp op, TensorRef out, TensorRef in, Stream s) override;
  void softmax(TensorRef out, TensorRef in, int dim, bool log, Stream s) override;
  void matmul(TensorRef out, TensorRef a, TensorRef b, Stream s) override;
  void matmul_add(TensorRef out, TensorRef a, TensorRef b, Stream s) override;
  void index_select(TensorRef out, TensorRef in, int dim, TensorRef index, Stream s) override;
  void index_add(TensorRef out, int dim, TensorRef index, TensorRef src, Stream s) override;
  void gather(TensorRef out, TensorRef in, int dim, TensorRef index, Stream s) override;
  void scatter_add(TensorRef out, int dim, TensorRef index, TensorRef src, Stream s) override;
  void where(TensorRef out, TensorRef cond, TensorRef a, TensorRef b, Stream s) override;

  void cross_entropy_fwd(TensorRef loss, TensorRef lse, TensorRef logits, TensorRef targets, int64_t ignore_index,
                         Stream s) override;
  void cross_entropy_bwd(TensorRef dlogits, TensorRef dloss, TensorRef logits, TensorRef lse, TensorRef targets,
                         int64_t ignore_index, Stream s) override;
  void rms_norm_fwd(TensorRef out, TensorRef rstd, TensorRef x, TensorRef weight, double eps, Stream s) override;
  void rms_norm_bwd(TensorRef dx, TensorRef dweight, TensorRef dy, TensorRef x, TensorRef weight, TensorRef rstd,
                    Stream s) override;
  void swiglu_fwd(TensorRef out, TensorRef gate, TensorRef up, Stream s) override;  // backend_swiglu.cpp
  void swiglu_bwd(TensorRef dgate, TensorRef dup, TensorRef dout, TensorRef gate, TensorRef up, Stream s) override;
  void rope(TensorRef out, TensorRef x, TensorRef cos, TensorRef sin, RopeStyle style, bool inverse,
            Stream s) override;
  void attention_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef mask,
                     const AttentionParams& p, Stream s) override;
  void attention_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k, TensorRef v,
                     TensorRef mask, TensorRef out, TensorRef lse, const AttentionParams& p, Stream s) override;
  void attention_varlen_fwd(TensorRef out, TensorRef lse, TensorRef q, TensorRef k, TensorRef v, TensorRef cu_q,
                            TensorRef cu_k, const VarlenParams& vp, const AttentionParams& p, Stream s) override;
  void attention_varlen_bwd(TensorRef dq, TensorRef dk, TensorRef dv, TensorRef dout, TensorRef q, TensorRef k,
                            TensorRef v, TensorRef out, TensorRef lse, TensorRef cu_q, TensorRef cu_k,
                            const VarlenParams& vp, const AttentionParams& p, Stream s) override;
  void lora_matmul(TensorRef y, TensorRef x, TensorRef w, TensorRef indptr, TensorRef adapter,
                   const LoraMatmulParams& p, Stream s) override;
  bool lora_linear_fused(TensorRef y, TensorRef t, TensorRef x, TensorRef w, TensorRef a, TensorRef b,
                         TensorRef indptr, TensorRef adapter, double scale, Stream s) override;
  void lora_weight_grad(TensorRef dw, TensorRef lhs, TensorRef rhs, TensorRef indptr, TensorRef adapter,
                        double scale, Stream s) override;
  void adamw_step(TensorRef param, TensorRef grad, TensorRef m, TensorRef v, const AdamWParams& p,
                  Stream s) override;

  // cuBLASLt plans cached by matmul() (0 before the first matmul).
  size_t matmul_plans_cached() const;

 private:
  CublasMatmul& blas();

  CachingAllocator& alloc_;
  std::once_flag blas_once_;
  std::unique_ptr<CublasMatmul> blas_;  // created on first matmul: cuBLAS handles cost a context
};

}  // namespace lloco
