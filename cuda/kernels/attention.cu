// Simple attention kernels: one 128-thread block per query row (forward, dq) or per key row
// (dk/dv). Inside a block, keys (or queries) come in tiles of 128: each thread scores one of
// them with a full-length dot product, then threads switch to owning head-dim columns to
// accumulate the weighted rows, which reads V (or Q, dO) rows coalesced. f32 accumulation
// (f64 for f64), online softmax in the forward, p recomputed from lse in the backward.
#include "cuda/kernels/attention.cuh"

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

constexpr int kTile = 128;  // threads per block = keys (or queries) per tile

template <typename A>
__device__ __forceinline__ A mask_at(const AttnArgs& a, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (!a.mask) return A(0);
  int64_t off = b * a.mask_s[0] + h * a.mask_s[1] + i * a.mask_s[2] + j * a.mask_s[3];
  return static_cast<A>(load_as_double(a.mask, a.mask_dt, off));
}

// Last key visible to query i (keys 0..limit-1 are candidates).
__device__ __forceinline__ int64_t key_limit(const AttnArgs& a, int64_t i) {
  if (!a.causal) return a.Tk;
  int64_t last = i + (a.Tk - a.Tq);
  return last < 0 ? 0 : (last + 1 < a.Tk ? last + 1 : a.Tk);
}

template <typename T, typename A>
__device__ __forceinline__ A row_dot(const A* s_row, const T* g_row, int64_t stride, int64_t D) {
  A acc = 0;
  for (int64_t d = 0; d < D; ++d) acc += s_row[d] * to_acc<A>(g_row[d * stride]);
  return acc;
}

template <typename T>
__global__ void attn_fwd_kernel(T* out, void* lse, DType lse_dt, const T* q, const T* k, const T* v, AttnArgs a) {
  using A = acc_t<T>;
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 16);
  A* q_s = reinterpret_cast<A*>(smem_raw);
  A* acc_s = q_s + a.D;
  A* p_s = acc_s + a.D;
  __shared__ A scratch[32];
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, hk = h / (a.Hq / a.Hkv);
  const T* qrow = q + b * a.q_s[0] + h * a.q_s[1] + i * a.q_s[2];
  const T* kbase = k + b * a.k_s[0] + hk * a.k_s[1];
  const T* vbase = v + b * a.v_s[0] + hk * a.v_s[1];
  for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
    q_s[d] = to_acc<A>(qrow[d * a.q_s[3]]);
    acc_s[d] = A(0);
  }
  __syncthreads();
  const A scale = static_cast<A>(a.scale);
  const int64_t limit = key_limit(a, i);
  A m = neg_inf<A>(), l = A(0);
  for (int64_t j0 = 0; j0 < limit; j0 += kTile) {
    int64_t j = j0 + threadIdx.x;
    A s = neg_inf<A>();
    if (j < limit) s = row_dot(q_s, kbase + j * a.k_s[2], a.k_s[3], a.D) * scale + mask_at<A>(a, b, h, i, j);
    A m_new = MaxOp{}(m, block_reduce(s, MaxOp{}, neg_inf<A>(), scratch));
    if (m_new == neg_inf<A>()) continue;  // everything so far is masked
    A p = s == neg_inf<A>() ? A(0) : d_exp(s - m_new);
    A alpha = m == neg_inf<A>() ? A(0) : d_exp(m - m_new);
    p_s[threadIdx.x] = p;
    l = l * alpha + block_reduce(p, SumOp{}, A(0), scratch);
    m = m_new;
    int64_t cnt = limit - j0 < kTile ? limit - j0 : kTile;
    for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
      A acc = acc_s[d] * alpha;
      const T* vcol = vbase + j0 * a.v_s[2] + d * a.v_s[3];
      for (int64_t jj = 0; jj < cnt; ++jj) acc += p_s[jj] * to_acc<A>(vcol[jj * a.v_s[2]]);
      acc_s[d] = acc;
    }
    __syncthreads();
  }
  bool empty = !(l > A(0));
  T* orow = out + b * a.o_s[0] + h * a.o_s[1] + i * a.o_s[2];
  for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) orow[d * a.o_s[3]] = from_acc<T>(empty ? A(0) : acc_s[d] / l);
  if (threadIdx.x == 0) {
    double lv = empty ? static_cast<double>(neg_inf<A>()) : static_cast<double>(m + d_log(l));
    store_from_double(lse, lse_dt, b * a.lse_s[0] + h * a.lse_s[1] + i * a.lse_s[2], lv);
  }
}

// dq for one query row; also stores delta_i = dot(dout_i, out_i) for the dk/dv pass.
template <typename T>
__global__ void attn_bwd_dq_kernel(AttnGrads g, const T* dout, const T* q, const T* k, const T* v, const T* out,
                                   const void* lse, DType lse_dt, AttnArgs a, acc_t<T>* delta) {
  using A = acc_t<T>;
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 16);
  A* q_s = reinterpret_cast<A*>(smem_raw);
  A* do_s = q_s + a.D;
  A* dq_s = do_s + a.D;
  A* ds_s = dq_s + a.D;
  __shared__ A scratch[32];
  const int64_t i = blockIdx.x, h = blockIdx.y, b = blockIdx.z, hk = h / (a.Hq / a.Hkv);
  const T* qrow = q + b * a.q_s[0] + h * a.q_s[1] + i * a.q_s[2];
  const T* dorow = dout + b * a.o_s[0] + h * a.o_s[1] + i * a.o_s[2];
  const T* yrow = out + b * a.y_s[0] + h * a.y_s[1] + i * a.y_s[2];
  const T* kbase = k + b * a.k_s[0] + hk * a.k_s[1];
  const T* vbase = v + b * a.v_s[0] + hk * a.v_s[1];
  A dd = 0;
  for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
    q_s[d] = to_acc<A>(qrow[d * a.q_s[3]]);
    A go = to_acc<A>(dorow[d * a.o_s[3]]);
    do_s[d] = go;
    dq_s[d] = A(0);
    dd += go * to_acc<A>(yrow[d * a.y_s[3]]);
  }
  const A di = block_reduce(dd, SumOp{}, A(0), scratch);
  if (threadIdx.x == 0) delta[(b * a.Hq + h) * a.Tq + i] = di;
  const A l = static_cast<A>(load_as_double(lse, lse_dt, b * a.lse_s[0] + h * a.lse_s[1] + i * a.lse_s[2]));
  const A scale = static_cast<A>(a.scale);
  const int64_t limit = l == neg_inf<A>() ? 0 : key_limit(a, i);
  for (int64_t j0 = 0; j0 < limit; j0 += kTile) {
    int64_t j = j0 + threadIdx.x;
    A ds = 0;
    if (j < limit) {
      A s = row_dot(q_s, kbase + j * a.k_s[2], a.k_s[3], a.D) * scale + mask_at<A>(a, b, h, i, j);
      A p = d_exp(s - l);
      A dp = row_dot(do_s, vbase + j * a.v_s[2], a.v_s[3], a.D);
      ds = p * (dp - di) * scale;
    }
    ds_s[threadIdx.x] = ds;
    __syncthreads();
    int64_t cnt = limit - j0 < kTile ? limit - j0 : kTile;
    for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
      A acc = dq_s[d];
      const T* kcol = kbase + j0 * a.k_s[2] + d * a.k_s[3];
      for (int64_t jj = 0; jj < cnt; ++jj) acc += ds_s[jj] * to_acc<A>(kcol[jj * a.k_s[2]]);
      dq_s[d] = acc;
    }
    __syncthreads();
  }
  T* dqrow = static_cast<T*>(g.dq) + b * g.dq_s[0] + h * g.dq_s[1] + i * g.dq_s[2];
  for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) dqrow[d * g.dq_s[3]] = from_acc<T>(dq_s[d]);
}

// dk/dv for one key row, summed over every query head of its group and every query that sees it.
template <typename T>
__global__ void attn_bwd_dkdv_kernel(AttnGrads g, const T* dout, const T* q, const T* k, const T* v, const void* lse,
                                     DType lse_dt, AttnArgs a, const acc_t<T>* delta) {
  using A = acc_t<T>;
  LLOCO_DYNAMIC_SMEM(unsigned char, smem_raw, 16);
  A* k_s = reinterpret_cast<A*>(smem_raw);
  A* v_s = k_s + a.D;
  A* dk_s = v_s + a.D;
  A* dv_s = dk_s + a.D;
  A* p_s = dv_s + a.D;
  A* ds_s = p_s + kTile;
  const int64_t j = blockIdx.x, hk = blockIdx.y, b = blockIdx.z, group = a.Hq / a.Hkv;
  const T* krow = k + b * a.k_s[0] + hk * a.k_s[1] + j * a.k_s[2];
  const T* vrow = v + b * a.v_s[0] + hk * a.v_s[1] + j * a.v_s[2];
  for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
    k_s[d] = to_acc<A>(krow[d * a.k_s[3]]);
    v_s[d] = to_acc<A>(vrow[d * a.v_s[3]]);
    dk_s[d] = A(0);
    dv_s[d] = A(0);
  }
  __syncthreads();
  const A scale = static_cast<A>(a.scale);
  // Queries that can see key j under the bottom-right causal rule: i >= j - (Tk - Tq).
  int64_t i_min = a.causal ? j - (a.Tk - a.Tq) : 0;
  if (i_min < 0) i_min = 0;
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
    const T* qbase = q + b * a.q_s[0] + h * a.q_s[1];
    const T* dobase = dout + b * a.o_s[0] + h * a.o_s[1];
    for (int64_t i0 = i_min; i0 < a.Tq; i0 += kTile) {
      int64_t i = i0 + threadIdx.x;
      A p = 0, ds = 0;
      if (i < a.Tq) {
        A l = static_cast<A>(load_as_double(lse, lse_dt, b * a.lse_s[0] + h * a.lse_s[1] + i * a.lse_s[2]));
        if (l != neg_inf<A>()) {
          A s = row_dot(k_s, qbase + i * a.q_s[2], a.q_s[3], a.D) * scale + mask_at<A>(a, b, h, i, j);
          p = d_exp(s - l);
          A dp = row_dot(v_s, dobase + i * a.o_s[2], a.o_s[3], a.D);
          ds = p * (dp - delta[(b * a.Hq + h) * a.Tq + i]) * scale;
        }
      }
      p_s[threadIdx.x] = p;
      ds_s[threadIdx.x] = ds;
      __syncthreads();
      int64_t cnt = a.Tq - i0 < kTile ? a.Tq - i0 : kTile;
      for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
        A dka = dk_s[d], dva = dv_s[d];
        const T* qcol = qbase + i0 * a.q_s[2] + d * a.q_s[3];
        const T* docol = dobase + i0 * a.o_s[2] + d * a.o_s[3];
        for (int64_t ii = 0; ii < cnt; ++ii) {
          dva += p_s[ii] * to_acc<A>(docol[ii * a.o_s[2]]);
          dka += ds_s[ii] * to_acc<A>(qcol[ii * a.q_s[2]]);
        }
        dk_s[d] = dka;
        dv_s[d] = dva;
      }
      __syncthreads();
    }
  }
  T* dkrow = static_cast<T*>(g.dk) + b * g.dk_s[0] + hk * g.dk_s[1] + j * g.dk_s[2];
  T* dvrow = static_cast<T*>(g.dv) + b * g.dv_s[0] + hk * g.dv_s[1] + j * g.dv_s[2];
  for (int64_t d = threadIdx.x; d < a.D; d += blockDim.x) {
    dkrow[d * g.dk_s[3]] = from_acc<T>(dk_s[d]);
    dvrow[d * g.dv_s[3]] = from_acc<T>(dv_s[d]);
  }
}

template <typename K>
void set_smem(K kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

void check_grid(const AttnArgs& a, int64_t rows, int64_t heads) {
  LLOCO_CHECK(rows < (int64_t(1) << 31) && heads < 65536 && a.B < 65536, "attention", "grid too large: rows ",
              rows, ", heads ", heads, ", batch ", a.B);
}

}  // namespace

void launch_attention_fwd(void* out, void* lse, DType lse_dt, const void* q, const void* k, const void* v, DType dt,
                          const AttnArgs& a, cudaStream_t stream) {
  if (a.B == 0 || a.Hq == 0 || a.Tq == 0) return;
  check_grid(a, a.Tq, a.Hq);
  dim3 grid(static_cast<unsigned>(a.Tq), static_cast<unsigned>(a.Hq), static_cast<unsigned>(a.B));
  LLOCO_DISPATCH_FLOAT(dt, "attention", T, {
    using A = acc_t<T>;
    size_t smem = (2 * static_cast<size_t>(a.D) + kTile) * sizeof(A);
    set_smem(attn_fwd_kernel<T>, smem);
    LLOCO_LAUNCH(grid, kTile, smem, stream, attn_fwd_kernel<T>)(static_cast<T*>(out), lse, lse_dt, static_cast<const T*>(q),
                                                      static_cast<const T*>(k), static_cast<const T*>(v), a);
  });
  CUDA_LAUNCH_CHECK(stream, "attention_fwd");
}

size_t attention_bwd_workspace_bytes(const AttnArgs& a) {
  return static_cast<size_t>(a.B * a.Hq * a.Tq) * sizeof(double) + 16;
}

void launch_attention_bwd(const AttnGrads& g, const void* dout, const void* q, const void* k, const void* v,
                          const void* out, const void* lse, DType lse_dt, DType dt, const AttnArgs& a,
                          void* workspace, cudaStream_t stream) {
  if (a.B == 0 || a.Hq == 0 || a.D == 0) return;
  check_grid(a, a.Tq > a.Tk ? a.Tq : a.Tk, a.Hq);
  LLOCO_DISPATCH_FLOAT(dt, "attention", T, {
    using A = acc_t<T>;
    A* delta = static_cast<A*>(workspace);
    if (a.Tq > 0) {
      size_t smem = (3 * static_cast<size_t>(a.D) + kTile) * sizeof(A);
      set_smem(attn_bwd_dq_kernel<T>, smem);
      dim3 grid(static_cast<unsigned>(a.Tq), static_cast<unsigned>(a.Hq), static_cast<unsigned>(a.B));
      LLOCO_LAUNCH(grid, kTile, smem, stream, attn_bwd_dq_kernel<T>)(
          g, static_cast<const T*>(dout), static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v),
          static_cast<const T*>(out), lse, lse_dt, a, delta);
      CUDA_LAUNCH_CHECK(stream, "attention_bwd");
    }
    if (a.Tk > 0) {
      size_t smem = (4 * static_cast<size_t>(a.D) + 2 * kTile) * sizeof(A);
      set_smem(attn_bwd_dkdv_kernel<T>, smem);
      dim3 grid(static_cast<unsigned>(a.Tk), static_cast<unsigned>(a.Hkv), static_cast<unsigned>(a.B));
      LLOCO_LAUNCH(grid, kTile, smem, stream, attn_bwd_dkdv_kernel<T>)(g, static_cast<const T*>(dout), static_cast<const T*>(q),
                                                             static_cast<const T*>(k), static_cast<const T*>(v), lse,
                                                             lse_dt, a, delta);
    }
  });
  CUDA_LAUNCH_CHECK(stream, "attention_bwd");
}

}  // namespace lloco::cuda_kernels
