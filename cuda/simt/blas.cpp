// Fake cuBLAS + cuBLASLt for the simt CPU emulation: the API subset cuda/matmul.cpp calls, computed on the host.
// Emulated "device" memory is host memory, so pointers are read directly; streams are ignored (execution is
// synchronous). Every GEMM accumulates in double and rounds once to the output type (round-to-nearest-even), which
// is at least as accurate as cuBLAS's float accumulation. CUBLAS_COMPUTE_32F_FAST_TF32 is emulated by rounding each
// A and B element to TF32 (10 explicit mantissa bits, nearest, ties away from zero like cvt.rna.tf32.f32) first.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <new>
#include <type_traits>
#include <vector>

// The handle types are pointers to these incomplete structs in the headers; the fake completes them.
struct cublasContext {
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};
struct cublasLtContext {};

namespace lloco::simt {
namespace {  // internal linkage: the lead's emulator shares this namespace

// Magic tags catch descriptors that were never created (or were passed in the wrong slot).
constexpr uint32_t kDescMagic = 0x53444d4d, kLayoutMagic = 0x53544c59, kPrefMagic = 0x53505246;
constexpr uint64_t kAlgoTag = 0x53494d54414c474fULL;

struct MatmulDesc {
  uint32_t magic;
  cublasComputeType_t compute;
  cudaDataType_t scale;
  bool trans_a, trans_b;
};
struct Layout {
  uint32_t magic;
  cudaDataType_t type;
  int32_t batch;
  uint64_t rows, cols;
  int64_t ld, stride;
};
struct Preference {
  uint32_t magic;
  uint64_t max_workspace;
};

// State lives inside the header's fixed-size opaque structs, so Create/Destroy are plain new/delete of those.
template <class State, class Opaque>
constexpr bool fits = sizeof(State) <= sizeof(Opaque) && alignof(State) <= alignof(Opaque) &&
                      std::is_trivially_copyable_v<State>;
static_assert(fits<MatmulDesc, cublasLtMatmulDescOpaque_t>);
static_assert(fits<Layout, cublasLtMatrixLayoutOpaque_t>);
static_assert(fits<Preference, cublasLtMatmulPreferenceOpaque_t>);

template <class State, class Opaque>
State* state_of(Opaque* o, uint32_t magic) {
  if (o == nullptr) return nullptr;
  auto* s = std::launder(reinterpret_cast<State*>(o->data));
  return s->magic == magic ? s : nullptr;
}

template <class State, class Opaque>
cublasStatus_t create(Opaque** out, const State& init) {
  if (out == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  auto* o = new (std::nothrow) Opaque{};
  if (o == nullptr) return CUBLAS_STATUS_ALLOC_FAILED;
  new (o->data) State(init);
  *out = o;
  return CUBLAS_STATUS_SUCCESS;
}

// Copies an attribute value after checking its size, as cuBLASLt's SetAttribute functions do.
template <class T>
cublasStatus_t read_attr(const void* buf, size_t size, T& out) {
  if (buf == nullptr || size != sizeof(T)) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&out, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

// One validated strided-batched GEMM in column-major terms: D [m, n] = alpha op(A) [m, k] op(B) [k, n] + beta C.
struct Gemm {
  int64_t m = 0, n = 0, k = 0, batch = 1;
  bool trans_a = false, trans_b = false, tf32 = false;
  cudaDataType_t ab_type = CUDA_R_32F, cd_type = CUDA_R_32F, scale_type = CUDA_R_32F;
  int64_t lda = 1, ldb = 1, ldc = 1, ldd = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0, stride_d = 0;
};

// Mirrors the cuBLAS type table for the types lloco uses (A/B and C/D types already checked equal pairwise).
bool supported(cudaDataType_t ab, cudaDataType_t cd, cublasComputeType_t compute, cudaDataType_t scale) {
  const bool bits16 = ab == CUDA_R_16F || ab == CUDA_R_16BF;
  switch (compute) {
    case CUBLAS_COMPUTE_64F: return ab == CUDA_R_64F && cd == CUDA_R_64F && scale == CUDA_R_64F;
    case CUBLAS_COMPUTE_32F: return scale == CUDA_R_32F && (cd == ab || (bits16 && cd == CUDA_R_32F)) &&
                                    (bits16 || ab == CUDA_R_32F);
    case CUBLAS_COMPUTE_32F_FAST_TF32: return scale == CUDA_R_32F && ab == CUDA_R_32F && cd == CUDA_R_32F;
    default: return false;
  }
}

// Checks what both APIs share: types, and that D's batches do not overlap (a write race on a real GPU).
cublasStatus_t finish_checks(const Gemm& g, cudaDataType_t b_type, cudaDataType_t c_type,
                             cublasComputeType_t compute) {
  if (g.ab_type != b_type || g.cd_type != c_type) return CUBLAS_STATUS_INVALID_VALUE;
  if (!supported(g.ab_type, g.cd_type, compute, g.scale_type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (g.batch > 1 && g.m > 0 && g.n > 0 && std::abs(g.stride_d) < g.ldd * (g.n - 1) + g.m)
    return CUBLAS_STATUS_INVALID_VALUE;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t plan_lt(const MatmulDesc* desc, const Layout* a, const Layout* b, const Layout* c, const Layout* d,
                       Gemm& g) {
  if (!desc || !a || !b || !c || !d) return CUBLAS_STATUS_INVALID_VALUE;
  for (const Layout* l : {a, b, c, d}) {
    // Sizes are uint64_t in the API: a negative size arrives as a huge value.
    const uint64_t max_dim = static_cast<uint64_t>(std::numeric_limits<int32_t>::max());
    if (l->rows > max_dim || l->cols > max_dim || l->batch < 1) return CUBLAS_STATUS_INVALID_VALUE;
    if (l->ld < std::max<int64_t>(1, static_cast<int64_t>(l->rows))) return CUBLAS_STATUS_INVALID_VALUE;
  }
  g.trans_a = desc->trans_a;
  g.trans_b = desc->trans_b;
  g.m = static_cast<int64_t>(g.trans_a ? a->cols : a->rows);
  g.k = static_cast<int64_t>(g.trans_a ? a->rows : a->cols);
  g.n = static_cast<int64_t>(g.trans_b ? b->rows : b->cols);
  const int64_t kb = static_cast<int64_t>(g.trans_b ? b->cols : b->rows);
  if (kb != g.k || static_cast<int64_t>(c->rows) != g.m || static_cast<int64_t>(c->cols) != g.n ||
      d->rows != c->rows || d->cols != c->cols)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (b->batch != a->batch || c->batch != a->batch || d->batch != a->batch) return CUBLAS_STATUS_INVALID_VALUE;
  g.batch = a->batch;
  g.ab_type = a->type;
  g.cd_type = d->type;
  g.scale_type = desc->scale;
  g.tf32 = desc->compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  g.lda = a->ld, g.ldb = b->ld, g.ldc = c->ld, g.ldd = d->ld;
  g.stride_a = a->stride, g.stride_b = b->stride, g.stride_c = c->stride, g.stride_d = d->stride;
  return finish_checks(g, b->type, c->type, desc->compute);
}

double load(const void* p, cudaDataType_t t, int64_t i) {
  switch (t) {
    case CUDA_R_16F: return __half2float(static_cast<const __half*>(p)[i]);
    case CUDA_R_16BF: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case CUDA_R_32F: return static_cast<const float*>(p)[i];
    default: return static_cast<const double*>(p)[i];
  }
}

void store(void* p, cudaDataType_t t, int64_t i, double v) {
  switch (t) {
    case CUDA_R_16F: static_cast<__half*>(p)[i] = __double2half(v); break;
    case CUDA_R_16BF: static_cast<__nv_bfloat16*>(p)[i] = __double2bfloat16(v); break;
    case CUDA_R_32F: static_cast<float*>(p)[i] = static_cast<float>(v); break;
    default: static_cast<double*>(p)[i] = v; break;
  }
}

// Rounds a float to TF32: keep 10 explicit mantissa bits, nearest with ties away from zero; Inf/NaN pass through.
double round_tf32(double v) {
  float f = static_cast<float>(v);
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// Gathers a [rows, cols] view, element (r, c) at base + r * ld + c (trans) or base + c * ld + r, as a dense
// row-major double array: rows of op(A), or columns of op(B) with the transpose flag flipped.
void gather(std::vector<double>& out, const void* x, cudaDataType_t t, int64_t base, int64_t ld, bool trans,
            int64_t rows, int64_t cols, bool tf32) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const double v = load(x, t, base + (trans ? r * ld + c : c * ld + r));
      out[r * cols + c] = tf32 ? round_tf32(v) : v;
    }
}

// Runs a validated GEMM. A and B are not read when alpha == 0 and C is not read when beta == 0 (BLAS semantics:
// NaN there must not leak into D). C == D is safe: each element of C is read just before D's is written.
cublasStatus_t execute(const Gemm& g, const void* alpha_p, const void* A, const void* B, const void* beta_p,
                       const void* C, void* D) {
  if (alpha_p == nullptr || beta_p == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  const bool dbl = g.scale_type == CUDA_R_64F;
  const double alpha = dbl ? *static_cast<const double*>(alpha_p) : *static_cast<const float*>(alpha_p);
  const double beta = dbl ? *static_cast<const double*>(beta_p) : *static_cast<const float*>(beta_p);
  if (g.m == 0 || g.n == 0 || g.batch == 0) return CUBLAS_STATUS_SUCCESS;
  const bool use_ab = alpha != 0.0 && g.k > 0;
  if (D == nullptr || (use_ab && (A == nullptr || B == nullptr)) || (beta != 0.0 && C == nullptr))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (C == D && beta != 0.0 && (g.ldc != g.ldd || g.stride_c != g.stride_d)) return CUBLAS_STATUS_INVALID_VALUE;
  try {
    std::vector<double> a_rows(use_ab ? g.m * g.k : 0), b_cols(use_ab ? g.k * g.n : 0);
    for (int64_t bt = 0; bt < g.batch; ++bt) {
      // A batch stride of 0 broadcasts one operand: gather it only once.
      if (use_ab && (bt == 0 || g.stride_a != 0))
        gather(a_rows, A, g.ab_type, bt * g.stride_a, g.lda, g.trans_a, g.m, g.k, g.tf32);
      if (use_ab && (bt == 0 || g.stride_b != 0))
        gather(b_cols, B, g.ab_type, bt * g.stride_b, g.ldb, !g.trans_b, g.n, g.k, g.tf32);
      for (int64_t j = 0; j < g.n; ++j)
        for (int64_t i = 0; i < g.m; ++i) {
          double acc = 0.0;
          if (use_ab)
            for (int64_t p = 0; p < g.k; ++p) acc += a_rows[i * g.k + p] * b_cols[j * g.k + p];
          double v = alpha * acc;
          if (beta != 0.0) v += beta * load(C, g.cd_type, bt * g.stride_c + j * g.ldc + i);
          store(D, g.cd_type, bt * g.stride_d + j * g.ldd + i, v);
        }
    }
  } catch (const std::exception&) {  // bad_alloc or length_error for absurd sizes
    return CUBLAS_STATUS_ALLOC_FAILED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

// cublasOperation_t -> transposed?; CUBLAS_OP_C equals CUBLAS_OP_T for the real types supported here.
bool parse_op(int32_t op, bool& trans) {
  if (op != CUBLAS_OP_N && op != CUBLAS_OP_T && op != CUBLAS_OP_C) return false;
  trans = op != CUBLAS_OP_N;
  return true;
}

}  // namespace
}  // namespace lloco::simt

using namespace lloco::simt;

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new (std::nothrow) cublasLtContext{};
  return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                        cudaDataType_t scale) {
  return create(desc, MatmulDesc{kDescMagic, compute, scale, false, false});
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

// Attributes that would change the math beyond what the fake computes are refused with NOT_SUPPORTED.
cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                              const void* buf, size_t size) {
  MatmulDesc* d = state_of<MatmulDesc>(desc, kDescMagic);
  if (d == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (attr == CUBLASLT_MATMUL_DESC_EPILOGUE) {
    uint32_t epilogue = 0;
    cublasStatus_t st = read_attr(buf, size, epilogue);
    return st != CUBLAS_STATUS_SUCCESS || epilogue == CUBLASLT_EPILOGUE_DEFAULT ? st : CUBLAS_STATUS_NOT_SUPPORTED;
  }
  switch (attr) {  // the remaining supported attributes are all int32_t
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE:
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE:
    case CUBLASLT_MATMUL_DESC_POINTER_MODE:
    case CUBLASLT_MATMUL_DESC_TRANSA:
    case CUBLASLT_MATMUL_DESC_TRANSB:
    case CUBLASLT_MATMUL_DESC_TRANSC:
    case CUBLASLT_MATMUL_DESC_FILL_MODE:
    case CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET: break;
    default: return CUBLAS_STATUS_NOT_SUPPORTED;  // bias, scale pointers, aux outputs, ...
  }
  int32_t v = 0;
  cublasStatus_t st = read_attr(buf, size, v);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: d->compute = static_cast<cublasComputeType_t>(v); break;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: d->scale = static_cast<cudaDataType_t>(v); break;
    case CUBLASLT_MATMUL_DESC_TRANSA: return parse_op(v, d->trans_a) ? st : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_DESC_TRANSB: return parse_op(v, d->trans_b) ? st : CUBLAS_STATUS_INVALID_VALUE;
    case CUBLASLT_MATMUL_DESC_TRANSC: return v == CUBLAS_OP_N ? st : CUBLAS_STATUS_NOT_SUPPORTED;
    case CUBLASLT_MATMUL_DESC_FILL_MODE: return v == CUBLAS_FILL_MODE_FULL ? st : CUBLAS_STATUS_NOT_SUPPORTED;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return v == CUBLASLT_POINTER_MODE_HOST ? st : CUBLAS_STATUS_NOT_SUPPORTED;
    default: break;  // SM_COUNT_TARGET: a scheduling hint only
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                          uint64_t cols, int64_t ld) {
  return create(layout, Layout{kLayoutMagic, type, 1, rows, cols, ld, 0});
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

// Only plain column-major strided batches exist in the fake: other orders, planar complex and pointer arrays are
// refused with NOT_SUPPORTED.
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout, cublasLtMatrixLayoutAttribute_t attr,
                                                const void* buf, size_t size) {
  Layout* l = state_of<Layout>(layout, kLayoutMagic);
  if (l == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  int32_t i32 = 0;
  uint32_t u32 = 0;
  int64_t i64 = 0;
  switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: {
      cublasStatus_t st = read_attr(buf, size, u32);
      if (st == CUBLAS_STATUS_SUCCESS) l->type = static_cast<cudaDataType_t>(u32);
      return st;
    }
    case CUBLASLT_MATRIX_LAYOUT_ORDER: {
      cublasStatus_t st = read_attr(buf, size, i32);
      return st != CUBLAS_STATUS_SUCCESS || i32 == CUBLASLT_ORDER_COL ? st : CUBLAS_STATUS_NOT_SUPPORTED;
    }
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return read_attr(buf, size, l->rows);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return read_attr(buf, size, l->cols);
    case CUBLASLT_MATRIX_LAYOUT_LD: return read_attr(buf, size, l->ld);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return read_attr(buf, size, l->batch);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return read_attr(buf, size, l->stride);
    case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET: {
      cublasStatus_t st = read_attr(buf, size, i64);
      return st != CUBLAS_STATUS_SUCCESS || i64 == 0 ? st : CUBLAS_STATUS_NOT_SUPPORTED;
    }
    case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE: {
      cublasStatus_t st = read_attr(buf, size, u32);
      return st != CUBLAS_STATUS_SUCCESS || u32 == CUBLASLT_BATCH_MODE_STRIDED ? st : CUBLAS_STATUS_NOT_SUPPORTED;
    }
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  return create(pref, Preference{kPrefMagic, 0});
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

// Values are size-checked and otherwise ignored: the fake needs no workspace and no alignment.
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                    size_t size) {
  Preference* p = state_of<Preference>(pref, kPrefMagic);
  if (p == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  uint32_t u32 = 0;
  uint64_t u64 = 0;
  float f = 0.f;
  switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return read_attr(buf, size, p->max_workspace);
    case CUBLASLT_MATMUL_PREF_IMPL_MASK: return read_attr(buf, size, u64);
    case CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT: return read_attr(buf, size, f);
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE:
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return read_attr(buf, size, u32);
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

// Validates the problem and returns the fake's single algorithm (no workspace) or the validation error.
cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                                              cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t d,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[], int* returned) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (returned == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *returned = 0;
  if (requested <= 0 || results == nullptr || state_of<Preference>(pref, kPrefMagic) == nullptr)
    return CUBLAS_STATUS_INVALID_VALUE;
  Gemm g;
  cublasStatus_t st = plan_lt(state_of<MatmulDesc>(desc, kDescMagic), state_of<Layout>(a, kLayoutMagic),
                              state_of<Layout>(b, kLayoutMagic), state_of<Layout>(c, kLayoutMagic),
                              state_of<Layout>(d, kLayoutMagic), g);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  results[0] = cublasLtMatmulHeuristicResult_t{};
  results[0].algo.data[0] = kAlgoTag;
  results[0].workspaceSize = 0;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].wavesCount = 1.f;
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

// Workspace and stream do not affect the fake's result and are ignored. An algo, when given, must come from the
// heuristic: a zeroed or stale one means the caller skipped it, which real cuBLAS would not forgive either.
cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha, const void* A,
                              cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta,
                              const void* C, cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t d,
                              const cublasLtMatmulAlgo_t* algo, void*, size_t, cudaStream_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (algo != nullptr && algo->data[0] != kAlgoTag) return CUBLAS_STATUS_INVALID_VALUE;
  Gemm g;
  cublasStatus_t st = plan_lt(state_of<MatmulDesc>(desc, kDescMagic), state_of<Layout>(a, kLayoutMagic),
                              state_of<Layout>(b, kLayoutMagic), state_of<Layout>(c, kLayoutMagic),
                              state_of<Layout>(d, kLayoutMagic), g);
  return st != CUBLAS_STATUS_SUCCESS ? st : execute(g, alpha, A, B, beta, C, D);
}

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new (std::nothrow) cublasContext{};
  return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->workspace = workspace;
  handle->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

// Classic column-major strided-batched GEMM; the scale type follows the compute type as in cuBLAS.
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                          int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype,
                                          int lda, long long strideA, const void* B, cudaDataType Btype, int ldb,
                                          long long strideB, const void* beta, void* C, cudaDataType Ctype, int ldc,
                                          long long strideC, int batchCount, cublasComputeType_t computeType,
                                          cublasGemmAlgo_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  Gemm g;
  if (!parse_op(transa, g.trans_a) || !parse_op(transb, g.trans_b)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m < 0 || n < 0 || k < 0 || batchCount < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max(1, g.trans_a ? k : m) || ldb < std::max(1, g.trans_b ? n : k) || ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  g.m = m, g.n = n, g.k = k, g.batch = batchCount;
  g.ab_type = Atype;
  g.cd_type = Ctype;
  g.scale_type = computeType == CUBLAS_COMPUTE_64F ? CUDA_R_64F : CUDA_R_32F;
  g.tf32 = computeType == CUBLAS_COMPUTE_32F_FAST_TF32;
  g.lda = lda, g.ldb = ldb, g.ldc = ldc, g.ldd = ldc;
  g.stride_a = strideA, g.stride_b = strideB, g.stride_c = strideC, g.stride_d = strideC;
  cublasStatus_t st = finish_checks(g, Btype, Ctype, computeType);
  return st != CUBLAS_STATUS_SUCCESS ? st : execute(g, alpha, A, B, beta, C, C);
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
  }
  return "<unknown>";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized (null handle)";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported (simt fake cuBLAS)";
    case CUBLAS_STATUS_LICENSE_ERROR: return "license error";
  }
  return "unknown cuBLAS status";
}

}  // extern "C"
