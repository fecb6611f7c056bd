#include "cuda/matmul.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "cuda/common.h"
#include "cuda/kernels/elementwise.cuh"

namespace lloco {

namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper

bool tf32_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LLOCO_TF32");
    return v != nullptr && v[0] != '\0' && std::strcmp(v, "0") != 0;
  }();
  return on;
}

// Largest power of two (<= 256) dividing every byte quantity in `xs`.
int alignment_of(std::initializer_list<uint64_t> xs) {
  int a = 256;
  for (uint64_t x : xs)
    while (a > 1 && x % static_cast<uint64_t>(a) != 0) a >>= 1;
  return a;
}

// How a logical row-major [R, C] operand sits in memory, seen as a column-major matrix.
struct Layout {
  bool ok = false;
  bool transposed = false;  // false: col-major [C, R] with ld (i.e. row-major [R, C]); true: col-major [R, C]
  int64_t ld = 0;
};

Layout classify(int64_t R, int64_t C, int64_t rs, int64_t cs) {
  const int64_t r1 = std::max<int64_t>(R, 1), c1 = std::max<int64_t>(C, 1);
  if (cs == 1 || C == 1) {  // element (r, c) at r * ld + c
    int64_t ld = R == 1 ? c1 : rs;
    if (ld >= c1) return {true, false, ld};
  }
  if (rs == 1 || R == 1) {  // element (r, c) at r + c * ld
    int64_t ld = C == 1 ? r1 : cs;
    if (ld >= r1) return {true, true, ld};
  }
  return {};
}

struct DTypeInfo {
  cudaDataType_t data;
  cublasComputeType_t compute;
  cudaDataType_t scale;
};

DTypeInfo dtype_info(DType dt) {
  switch (dt) {
    case DType::F32: return {CUDA_R_32F, tf32_enabled() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case DType::F16: return {CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case DType::BF16: return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case DType::F64: return {CUDA_R_64F, CUBLAS_COMPUTE_64F, CUDA_R_64F};
    default: LLOCO_FAIL("matmul", "unsupported dtype ", dtype_name(dt));
  }
}

}  // namespace

// One cuBLAS call in column-major terms: D [m, n] = op(A) [m, k] @ op(B) [k, n], batched.
struct CublasMatmul::Gemm {
  DType dtype;
  bool trans_a, trans_b;
  int64_t m, n, k, lda, ldb, ldc, batch;
  int64_t stride_a, stride_b, stride_c;
  const void* A;
  const void* B;
  void* C;
  bool accumulate;  // beta = 1
};

struct CublasMatmul::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;
  ~Plan() {
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

CublasMatmul::CublasMatmul(Allocator& scratch) : scratch_(scratch) {
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  CUBLAS_CHECK(cublasCreate(&blas_));
}

CublasMatmul::~CublasMatmul() {
  plans_.clear();
  for (auto& [s, p] : workspaces_) cudaFree(p);
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
}

size_t CublasMatmul::plans_cached() const {
  std::lock_guard<std::mutex> lock(mu_);
  return plans_.size();
}

void* CublasMatmul::workspace(cudaStream_t stream) {
  auto it = workspaces_.find(stream);
  if (it != workspaces_.end()) return it->second;
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, kWorkspaceBytes));
  workspaces_[stream] = p;
  return p;
}

void CublasMatmul::run(TensorRef out, TensorRef a, TensorRef b, cudaStream_t stream, bool accumulate) {
  LLOCO_CHECK(out.ndim == a.ndim && a.ndim == b.ndim && (a.ndim == 2 || a.ndim == 3), "matmul",
              "expected rank-3 (or rank-2) operands, got ", out.ndim, ", ", a.ndim, ", ", b.ndim);
  LLOCO_CHECK(out.dtype == a.dtype && a.dtype == b.dtype, "matmul", "dtypes differ: ", dtype_name(out.dtype), ", ",
              dtype_name(a.dtype), ", ", dtype_name(b.dtype));
  const int o = a.ndim - 2;  // index of the M (or K) dim
  const int64_t B = o ? out.shape[0] : 1, M = out.shape[o], N = out.shape[o + 1], K = a.shape[o + 1];
  LLOCO_CHECK(a.shape[o] == M && b.shape[o] == K && b.shape[o + 1] == N, "matmul", "shape mismatch: [", M, ", ",
              a.shape[o + 1], "] @ [", b.shape[o], ", ", N, "]");
  auto bstride = [&](const TensorRef& t) { return o && t.shape[0] != 1 ? t.strides[0] : 0; };
  LLOCO_CHECK(!accumulate || B == 1 || bstride(out) != 0, "matmul_add", "out must not broadcast over the batch");
  if (B == 0 || M == 0 || N == 0) return;
  const size_t es = dtype_size(out.dtype);
  cuda_kernels::Dims od = cuda_kernels::dims_of(out);
  if (K == 0) {
    if (!accumulate) cuda_kernels::launch_fill(out.data, out.dtype, od, cuda_kernels::strides_of(out), 0.0, stream);
    return;
  }

  // Operands that neither layout fits are copied to contiguous scratch first.
  struct Scratch {
    Allocator& alloc;
    cudaStream_t stream;
    void* p = nullptr;
    size_t n = 0;
    ~Scratch() {
      if (p) alloc.deallocate(p, n, from_cuda(stream));
    }
  };
  auto make_contiguous = [&](TensorRef& t, Scratch& s) {
    s.n = static_cast<size_t>(t.numel()) * es;
    s.p = scratch_.allocate(s.n, from_cuda(stream));
    TensorRef c = t;
    c.data = s.p;
    int64_t acc = 1;
    for (int i = t.ndim - 1; i >= 0; --i) {
      c.strides[i] = acc;
      acc *= t.shape[i];
    }
    cuda_kernels::launch_copy(c.data, c.dtype, cuda_kernels::strides_of(c), t.data, t.dtype, cuda_kernels::strides_of(t),
                              cuda_kernels::dims_of(t), stream);
    t = c;
  };
  Scratch sa{scratch_, stream}, sb{scratch_, stream}, so{scratch_, stream};
  Layout la = classify(M, K, a.strides[o], a.strides[o + 1]);
  if (!la.ok) {
    make_contiguous(a, sa);
    la = classify(M, K, a.strides[o], a.strides[o + 1]);
  }
  Layout lb = classify(K, N, b.strides[o], b.strides[o + 1]);
  if (!lb.ok) {
    make_contiguous(b, sb);
    lb = classify(K, N, b.strides[o], b.strides[o + 1]);
  }
  TensorRef dst = out;
  Layout lc = classify(M, N, out.strides[o], out.strides[o + 1]);
  bool out_direct = lc.ok && !lc.transposed && (B == 1 || bstride(out) >= M * lc.ld || bstride(out) == 0);
  if (!out_direct || (B > 1 && bstride(out) == 0)) {
    so.n = static_cast<size_t>(out.numel()) * es;
    so.p = scratch_.allocate(so.n, from_cuda(stream));
    dst.data = so.p;
    int64_t acc = 1;
    for (int i = out.ndim - 1; i >= 0; --i) {
      dst.strides[i] = acc;
      acc *= out.shape[i];
    }
    lc = classify(M, N, dst.strides[o], dst.strides[o + 1]);
    if (accumulate)  // the GEMM adds onto what out holds
      cuda_kernels::launch_copy(dst.data, dst.dtype, cuda_kernels::strides_of(dst), out.data, out.dtype,
                                cuda_kernels::strides_of(out), od, stream);
  }

  // Row-major C = A @ B is column-major C^T = B^T @ A^T: cuBLAS's A is our b, its B is our a.
  Gemm g{};
  g.dtype = out.dtype;
  g.m = N;
  g.n = M;
  g.k = K;
  g.trans_a = lb.transposed;
  g.lda = lb.ld;
  g.trans_b = la.transposed;
  g.ldb = la.ld;
  g.ldc = lc.ld;
  g.batch = B;
  g.stride_a = bstride(b);
  g.stride_b = bstride(a);
  g.stride_c = bstride(dst);
  g.A = b.data;
  g.B = a.data;
  g.C = dst.data;
  g.accumulate = accumulate;
  // Shared right operand and row-major left/out with packed batches: one GEMM with M' = B * M.
  if (B > 1 && g.stride_a == 0 && !la.transposed && g.stride_b == M * la.ld && g.stride_c == M * lc.ld) {
    g.n = B * M;
    g.batch = 1;
  }
  gemm(g, stream);
  if (dst.data != out.data)
    cuda_kernels::launch_copy(out.data, out.dtype, cuda_kernels::strides_of(out), dst.data, dst.dtype,
                              cuda_kernels::strides_of(dst), od, stream);
}

void CublasMatmul::gemm(const Gemm& g, cudaStream_t stream) {
  const DTypeInfo ti = dtype_info(g.dtype);
  const size_t es = dtype_size(g.dtype);
  const int align_a = alignment_of({reinterpret_cast<uintptr_t>(g.A), g.stride_a * es});
  const int align_b = alignment_of({reinterpret_cast<uintptr_t>(g.B), g.stride_b * es});
  const int align_c = alignment_of({reinterpret_cast<uintptr_t>(g.C), g.stride_c * es});
  std::string key = detail::concat(static_cast<int>(g.dtype), tf32_enabled(), g.trans_a, g.trans_b, ':', g.m, ',', g.n,
                                   ',', g.k, ':', g.lda, ',', g.ldb, ',', g.ldc, ':', g.batch, ',', g.stride_a, ',',
                                   g.stride_b, ',', g.stride_c, ':', align_a, ',', align_b, ',', align_c);
  Plan* plan = nullptr;
  void* ws = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ws = workspace(stream);
    auto it = plans_.find(key);
    if (it != plans_.end()) {
      plan = it->second.get();
    } else {
      auto p = std::make_unique<Plan>();
      CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, ti.compute, ti.scale));
      cublasOperation_t ta = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
      CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
      // Stored (pre-op) shapes: op(A) is [m, k], op(B) is [k, n].
      auto layout = [&](cublasLtMatrixLayout_t* l, int64_t rows, int64_t cols, int64_t ld, int64_t stride) {
        CUBLAS_CHECK(cublasLtMatrixLayoutCreate(l, ti.data, rows, cols, ld));
        if (g.batch > 1) {
          int32_t bc = static_cast<int32_t>(g.batch);
          CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof(bc)));
          CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                        sizeof(stride)));
        }
      };
      layout(&p->la, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda, g.stride_a);
      layout(&p->lb, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb, g.stride_b);
      layout(&p->lc, g.m, g.n, g.ldc, g.stride_c);
      cublasLtMatmulPreference_t pref;
      CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
      uint64_t wsb = kWorkspaceBytes;
      uint32_t aa = align_a, ab = align_b, ac = align_c;
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof(wsb));
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa));
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab));
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac));
      cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac));
      cublasLtMatmulHeuristicResult_t res{};
      int found = 0;
      cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_, p->desc, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &found);
      cublasLtMatmulPreferenceDestroy(pref);
      if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
        p->algo = res.algo;
        p->has_algo = true;
      }
      plan = p.get();
      plans_.emplace(key, std::move(p));
    }
  }
  if (plan->has_algo) {
    float alpha_f = 1.f, beta_f = g.accumulate ? 1.f : 0.f;
    double alpha_d = 1.0, beta_d = g.accumulate ? 1.0 : 0.0;
    const void* alpha = g.dtype == DType::F64 ? static_cast<const void*>(&alpha_d) : &alpha_f;
    const void* beta = g.dtype == DType::F64 ? static_cast<const void*>(&beta_d) : &beta_f;
    CUBLAS_CHECK(cublasLtMatmul(lt_, plan->desc, alpha, g.A, plan->la, g.B, plan->lb, beta, g.C, plan->lc, g.C,
                                plan->lc, &plan->algo, ws, kWorkspaceBytes, stream));
    return;
  }
  // No cuBLASLt algorithm (e.g. unusual strides): the classic strided-batched GEMM handles any layout.
  std::lock_guard<std::mutex> lock(mu_);
  CUBLAS_CHECK(cublasSetStream(blas_, stream));
  CUBLAS_CHECK(cublasSetWorkspace(blas_, ws, kWorkspaceBytes));
  cublasGemmAlgo_t algo = CUBLAS_GEMM_DEFAULT;
  float alpha_f = 1.f, beta_f = g.accumulate ? 1.f : 0.f;
  double alpha_d = 1.0, beta_d = g.accumulate ? 1.0 : 0.0;
  const void* alpha = g.dtype == DType::F64 ? static_cast<const void*>(&alpha_d) : &alpha_f;
  const void* beta = g.dtype == DType::F64 ? static_cast<const void*>(&beta_d) : &beta_f;
  CUBLAS_CHECK(cublasGemmStridedBatchedEx(blas_, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(g.m),
                                          static_cast<int>(g.n), static_cast<int>(g.k), alpha, g.A, ti.data,
                                          static_cast<int>(g.lda), g.stride_a, g.B, ti.data, static_cast<int>(g.ldb),
                                          g.stride_b, beta, g.C, ti.data, static_cast<int>(g.ldc), g.stride_c,
                                          static_cast<int>(g.batch), ti.compute, algo));
}

}  // namespace lloco
