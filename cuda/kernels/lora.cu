// LoRA kernels. lora_matmul has two shapes of work:
//  - shrink (x @ A^T, g @ B: I large, O = rank small): one warp per row and tile of <= 32 outputs;
//    lanes stride over I with 16-byte loads of x, keep TILE partial sums in registers and
//    warp-reduce them at the end. Reading x is the traffic; w[a] is re-read per row from L1/L2.
//  - expand (t @ B^T, dt @ A: I = rank small, O large): one block per row and chunk of
//    128 * pack outputs; the row's I values sit in shared memory, each thread owns one pack of
//    output columns and updates y with one 16-byte read-modify-write.
// Row -> adapter: each row binary-searches indptr in-kernel (segment mode) or reads adapter[n]
// (per-row mode), so grids are sized from N alone and never depend on host copies of indptr.
// lora_linear_small (decode, N <= 4 rows): the base projection and both LoRA products in one launch,
// so an unmerged adapter costs no extra launches where the base GEMV itself takes ~10 us. Every
// block first computes all of t = x A^T (N x r dots, A from L2) into shared memory, then its warps
// stream W rows (grid-stride over output features, 16-byte loads, kLinearUnroll in flight per lane)
// against x (read through L1) and add scale * t B^T before the single rounding of y. One block per
// SM bounds the repeated t work to about N * r / (O / num_sms) of the W traffic.
// lora_weight_grad: one block per (adapter, P tile, Q tile, row split) walks every splits-th
// chunk of that adapter's rows, staged in shared memory. With one split it writes dw directly;
// otherwise splits partial sums go to a workspace that a second kernel adds in a fixed order (a
// single adapter over 2k rows would else fill only ~32 blocks). No atomics, every dw element written.
#include "cuda/kernels/lora.cuh"

#include <algorithm>
#include <type_traits>

#include "cuda/common.cuh"

namespace lloco::cuda_kernels {

namespace {

// ---- CUDA kernels -------------------------------------------------------------------------------

constexpr int kShrinkWarps = 4;        // rows per 128-thread block
constexpr int kExpandThreads = 128;
constexpr int64_t kExpandMaxI = 256;   // shared-memory row buffer of the expand kernel
constexpr int kGradThreads = 256;
constexpr int kGradRows = 32;          // rows staged per step of the weight-grad kernel
constexpr int kGradOutputs = 4;        // dw elements per thread: tiles hold 1024

struct MatmulArgs {
  void* y;
  int64_t y_rs, y_cs;
  const void* x;
  int64_t x_rs, x_cs;
  LoraStack w;
  int64_t N, I, O, L;
  LoraRows rows;
  double scale;
  bool accumulate;
  bool x_vec, w_vec, y_vec;  // 16-byte packs legal along x's I, w's unit dim, y's O
  int* err;
};

// Segment mode: the last segment s with indptr[s] <= n, which skips empty segments
// (indptr[s] == indptr[s+1]); indptr[S] = N > n makes it the segment that holds n.
__device__ __forceinline__ int64_t adapter_of(const LoraRows& r, int64_t n) {
  if (r.indptr == nullptr) return r.adapter[n * r.adapter_stride];
  int64_t lo = 0, hi = r.segments;  // indptr[lo] <= n; the answer is in [lo, hi)
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (r.indptr[mid * r.indptr_stride] <= n) lo = mid;
    else hi = mid;
  }
  return r.adapter[lo * r.adapter_stride];
}

// Row n's adapter id, or -1 for none; an id >= L raises kErrIndexRange and counts as none.
__device__ __forceinline__ int64_t checked_adapter(const LoraRows& rows, int64_t L, int* err, int64_t n) {
  const int64_t l = adapter_of(rows, n);
  if (l >= L) {
    raise_error(err, kErrIndexRange);
    return -1;
  }
  return l;
}
__device__ __forceinline__ int64_t checked_adapter(const MatmulArgs& g, int64_t n) {
  return checked_adapter(g.rows, g.L, g.err, n);
}

template <typename T, typename A>
__device__ __forceinline__ void store_out(T* y, A sum, const MatmulArgs& g) {
  A v = static_cast<A>(g.scale) * sum;
  if (g.accumulate) v += to_acc<A>(*y);
  *y = from_acc<T>(v);
}

// Warp per (row, TILE outputs). KCONTIG: w's reduction dim is unit-stride (w [L, O, I] layout),
// so each output's weights stream as packs alongside x; otherwise w rows are read per i.
template <typename T, int TILE, bool KCONTIG>
__global__ void __launch_bounds__(kShrinkWarps * 32) lora_shrink_kernel(MatmulArgs g) {
  using A = acc_t<T>;
  constexpr int V = kVec<T>;
  const int lane = threadIdx.x & 31;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kShrinkWarps + (threadIdx.x >> 5);
  if (n >= g.N) return;  // whole warp: no block barrier below
  const int64_t o0 = static_cast<int64_t>(blockIdx.y) * TILE;
  const int count = static_cast<int>(g.O - o0 < TILE ? g.O - o0 : TILE);
  T* y = static_cast<T*>(g.y) + n * g.y_rs + o0 * g.y_cs;
  const int64_t l = checked_adapter(g, n);  // warp-uniform
  if (l < 0) {
    if (!g.accumulate && lane < count) y[lane * g.y_cs] = from_acc<T>(A(0));
    return;
  }
  const T* x = static_cast<const T*>(g.x) + n * g.x_rs;
  const T* w = static_cast<const T*>(g.w.data) + l * g.w.adapter_stride + o0 * g.w.m_stride;
  A acc[TILE];
#pragma unroll
  for (int o = 0; o < TILE; ++o) acc[o] = A(0);

  const int64_t packs = g.x_vec ? g.I / V : 0;
  for (int64_t p = lane; p < packs; p += 32) {
    const Pack<T, V> xp = reinterpret_cast<const Pack<T, V>*>(x)[p];
    A xv[V];
#pragma unroll
    for (int k = 0; k < V; ++k) xv[k] = to_acc<A>(xp.v[k]);
    if constexpr (KCONTIG) {
#pragma unroll
      for (int o = 0; o < TILE; ++o) {
        if (o >= count) break;
        const T* wo = w + o * g.w.m_stride + p * V;
        if (g.w_vec) {
          const Pack<T, V> wp = *reinterpret_cast<const Pack<T, V>*>(wo);
#pragma unroll
          for (int k = 0; k < V; ++k) acc[o] += xv[k] * to_acc<A>(wp.v[k]);
        } else {
#pragma unroll
          for (int k = 0; k < V; ++k) acc[o] += xv[k] * to_acc<A>(wo[k]);
        }
      }
    } else {
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const T* wi = w + (p * V + k) * g.w.k_stride;
        if (g.w_vec && count == TILE) {  // TILE outputs are whole packs of a unit-stride row
#pragma unroll
          for (int q = 0; q < TILE / V; ++q) {
            const Pack<T, V> wp = reinterpret_cast<const Pack<T, V>*>(wi)[q];
#pragma unroll
            for (int j = 0; j < V; ++j) acc[q * V + j] += xv[k] * to_acc<A>(wp.v[j]);
          }
        } else {
#pragma unroll
          for (int o = 0; o < TILE; ++o)
            if (o < count) acc[o] += xv[k] * to_acc<A>(wi[o * g.w.m_stride]);
        }
      }
    }
  }
  for (int64_t i = packs * V + lane; i < g.I; i += 32) {  // tail, or everything when unaligned
    const A xi = to_acc<A>(x[i * g.x_cs]);
    const T* wi = w + i * g.w.k_stride;
#pragma unroll
    for (int o = 0; o < TILE; ++o)
      if (o < count) acc[o] += xi * to_acc<A>(wi[o * g.w.m_stride]);
  }
#pragma unroll
  for (int o = 0; o < TILE; ++o) {
    const A sum = warp_reduce(acc[o], SumOp{});
    if (lane == o && o < count) store_out(y + o * g.y_cs, sum, g);
  }
}

// Block per (row, 128 packs of outputs). KCONTIG: w [L, O, I] layout (dot products along I);
// otherwise w [L, I, O] layout (axpy of w rows, packs along O).
template <typename T, bool KCONTIG>
__global__ void __launch_bounds__(kExpandThreads) lora_expand_kernel(MatmulArgs g) {
  using A = acc_t<T>;
  constexpr int V = kVec<T>;
  __shared__ A xs[kExpandMaxI];
  const int64_t n = blockIdx.x;
  const int64_t c0 = (static_cast<int64_t>(blockIdx.y) * kExpandThreads + threadIdx.x) * V;
  const int64_t left = g.O - c0;
  const int count = left <= 0 ? 0 : (left < V ? static_cast<int>(left) : V);
  T* y = static_cast<T*>(g.y) + n * g.y_rs + c0 * g.y_cs;
  const int64_t l = checked_adapter(g, n);  // block-uniform: the early return skips no barrier
  if (l < 0) {
    if (!g.accumulate)
      for (int j = 0; j < count; ++j) y[j * g.y_cs] = from_acc<T>(A(0));
    return;
  }
  const T* x = static_cast<const T*>(g.x) + n * g.x_rs;
  for (int64_t k = threadIdx.x; k < g.I; k += kExpandThreads) xs[k] = to_acc<A>(x[k * g.x_cs]);
  __syncthreads();
  if (count == 0) return;
  const T* w = static_cast<const T*>(g.w.data) + l * g.w.adapter_stride + c0 * g.w.m_stride;
  A acc[V];
#pragma unroll
  for (int j = 0; j < V; ++j) acc[j] = A(0);
  if constexpr (KCONTIG) {
#pragma unroll
    for (int j = 0; j < V; ++j) {
      if (j >= count) break;
      const T* wj = w + j * g.w.m_stride;
      int64_t k = 0;
      if (g.w_vec)
        for (; k + V <= g.I; k += V) {
          const Pack<T, V> wp = *reinterpret_cast<const Pack<T, V>*>(wj + k);
#pragma unroll
          for (int q = 0; q < V; ++q) acc[j] += xs[k + q] * to_acc<A>(wp.v[q]);
        }
      for (; k < g.I; ++k) acc[j] += xs[k] * to_acc<A>(wj[k * g.w.k_stride]);
    }
  } else {
    const bool vec = g.w_vec && count == V;
    for (int64_t k = 0; k < g.I; ++k) {
      const T* wk = w + k * g.w.k_stride;
      const A xk = xs[k];
      if (vec) {
        const Pack<T, V> wp = *reinterpret_cast<const Pack<T, V>*>(wk);
#pragma unroll
        for (int j = 0; j < V; ++j) acc[j] += xk * to_acc<A>(wp.v[j]);
      } else {
#pragma unroll
        for (int j = 0; j < V; ++j)
          if (j < count) acc[j] += xk * to_acc<A>(wk[j * g.w.m_stride]);
      }
    }
  }
  if (g.y_vec && count == V) {
    Pack<T, V>* yp = reinterpret_cast<Pack<T, V>*>(y);
    Pack<T, V> out;
    if (g.accumulate) out = *yp;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      A v = static_cast<A>(g.scale) * acc[j];
      if (g.accumulate) v += to_acc<A>(out.v[j]);
      out.v[j] = from_acc<T>(v);
    }
    *yp = out;
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j)
      if (j < count) store_out(y + j * g.y_cs, acc[j], g);
  }
}

struct GradArgs {
  void* dw;
  int64_t dw_ls, dw_ps, dw_qs;
  LoraMat lhs, rhs;
  int64_t N, P, Q, L;
  LoraRows rows;
  double scale;
  int64_t splits;
  void* partial;  // [splits, L, P, Q] accumulator type; null when splits == 1
};

// Block per (adapter, row split) = blockIdx.z and TP x TQ tile of dw. Chunks of kGradRows rows are staged in
// shared memory as zeros wherever a row is outside the segment or (per-row mode) belongs to
// another adapter, so every thread runs the same loop and the barriers stay uniform.
template <typename T, int TP, int TQ>
__global__ void __launch_bounds__(kGradThreads) lora_weight_grad_kernel(GradArgs g) {
  using A = acc_t<T>;
  static_assert(TP * TQ == kGradThreads * kGradOutputs, "a tile is kGradOutputs elements per thread");
  __shared__ A ls[kGradRows][TP];
  __shared__ A rs[kGradRows][TQ];
  const int64_t l = blockIdx.z / g.splits, split = blockIdx.z % g.splits;
  const int64_t p0 = static_cast<int64_t>(blockIdx.y) * TP, q0 = static_cast<int64_t>(blockIdx.x) * TQ;
  const T* lhs = static_cast<const T*>(g.lhs.data);
  const T* rhs = static_cast<const T*>(g.rhs.data);
  const bool per_row = g.rows.indptr == nullptr;
  A acc[kGradOutputs];
#pragma unroll
  for (int k = 0; k < kGradOutputs; ++k) acc[k] = A(0);
  const int64_t spans = per_row ? 1 : g.rows.segments;
  int64_t chunk = 0;  // chunks of this adapter seen so far: split k takes chunk k, k + splits, ...
  for (int64_t s = 0; s < spans; ++s) {
    int64_t lo = 0, hi = g.N;
    if (!per_row) {
      if (g.rows.adapter[s * g.rows.adapter_stride] != l) continue;  // block-uniform
      lo = g.rows.indptr[s * g.rows.indptr_stride];
      hi = g.rows.indptr[(s + 1) * g.rows.indptr_stride];
    }
    for (int64_t r0 = lo; r0 < hi; r0 += kGradRows) {
      if (chunk++ % g.splits != split) continue;  // block-uniform
      for (int e = threadIdx.x; e < kGradRows * TP; e += kGradThreads) {
        const int rr = e / TP, pp = e % TP;
        const int64_t r = r0 + rr, p = p0 + pp;
        bool use = r < hi && p < g.P;
        if (use && per_row) use = g.rows.adapter[r * g.rows.adapter_stride] == l;
        ls[rr][pp] = use ? to_acc<A>(lhs[r * g.lhs.row_stride + p * g.lhs.col_stride]) : A(0);
      }
      for (int e = threadIdx.x; e < kGradRows * TQ; e += kGradThreads) {
        const int rr = e / TQ, qq = e % TQ;
        const int64_t r = r0 + rr, q = q0 + qq;
        bool use = r < hi && q < g.Q;
        if (use && per_row) use = g.rows.adapter[r * g.rows.adapter_stride] == l;
        rs[rr][qq] = use ? to_acc<A>(rhs[r * g.rhs.row_stride + q * g.rhs.col_stride]) : A(0);
      }
      __syncthreads();
#pragma unroll 4
      for (int rr = 0; rr < kGradRows; ++rr)
#pragma unroll
        for (int k = 0; k < kGradOutputs; ++k) {
          const int idx = threadIdx.x + k * kGradThreads;
          acc[k] += ls[rr][idx / TQ] * rs[rr][idx % TQ];
        }
      __syncthreads();  // the next chunk overwrites the stage
    }
  }
  T* dw = static_cast<T*>(g.dw) + l * g.dw_ls;
  A* partial = g.partial == nullptr ? nullptr : static_cast<A*>(g.partial) + (split * g.L + l) * g.P * g.Q;
#pragma unroll
  for (int k = 0; k < kGradOutputs; ++k) {
    const int idx = threadIdx.x + k * kGradThreads;
    const int64_t p = p0 + idx / TQ, q = q0 + idx % TQ;
    if (p >= g.P || q >= g.Q) continue;
    if (g.partial == nullptr) dw[p * g.dw_ps + q * g.dw_qs] = from_acc<T>(static_cast<A>(g.scale) * acc[k]);
    else partial[p * g.Q + q] = acc[k];
  }
}

// dw[l, p, q] = scale * sum over splits of partial[split, l, p, q], splits in order.
template <typename T>
__global__ void lora_weight_grad_sum_kernel(GradArgs g) {
  using A = acc_t<T>;
  const int64_t total = g.L * g.P * g.Q;
  const A* partial = static_cast<const A*>(g.partial);
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    A sum = 0;
    for (int64_t k = 0; k < g.splits; ++k) sum += partial[k * total + e];
    const int64_t l = e / (g.P * g.Q), p = (e / g.Q) % g.P, q = e % g.Q;
    static_cast<T*>(g.dw)[l * g.dw_ls + p * g.dw_ps + q * g.dw_qs] = from_acc<T>(static_cast<A>(g.scale) * sum);
  }
}

// ---- kernel launchers ---------------------------------------------------------------------------

// 16-byte packs along a unit-stride dim are legal when the base and every row start are aligned.
template <typename T>
bool packable(const void* base, int64_t unit_stride, int64_t row_stride_a, int64_t row_stride_b = 0) {
  const int64_t sz = static_cast<int64_t>(sizeof(T));
  return unit_stride == 1 && aligned16(base) && (row_stride_a * sz) % 16 == 0 && (row_stride_b * sz) % 16 == 0;
}

template <typename T, int TILE>
void launch_shrink(const MatmulArgs& g, bool kcontig, cudaStream_t stream) {
  const int64_t tiles = (g.O + TILE - 1) / TILE;
  LLOCO_CHECK(tiles <= 65535, "lora_matmul", "too many output features for the shrink kernel: ", g.O);
  const dim3 grid(static_cast<unsigned>((g.N + kShrinkWarps - 1) / kShrinkWarps), static_cast<unsigned>(tiles));
  if (kcontig) LLOCO_LAUNCH(grid, kShrinkWarps * 32, 0, stream, lora_shrink_kernel<T, TILE, true>)(g);
  else LLOCO_LAUNCH(grid, kShrinkWarps * 32, 0, stream, lora_shrink_kernel<T, TILE, false>)(g);
}

// ---- lora_linear_small -------------------------------------------------------------------------

constexpr int kLinearWarps = 8;
constexpr int kLinearUnroll = 8;  // 16-byte W packs in flight per lane: 32 KB per block

struct LinearArgs {
  void* y;           // [N, O], unit column stride
  int64_t y_rs;
  void* t;           // [N, R] or nullptr, unit column stride
  int64_t t_rs;
  const void* x;     // [N, I], unit column stride
  int64_t x_rs;
  const void* w;     // [O, I], unit column stride
  int64_t w_rs;
  LoraStack a;       // a[l, i, k]: i along I (k_stride 1), k along the rank (m_stride)
  LoraStack b;       // b[l, k, o]: k along the rank, o along O
  int64_t N, I, O, R, L;
  LoraRows rows;
  float scale;
  int* err;
};

// Dot product of pack q (V elements) of two unit-stride rows.
template <typename T>
__device__ __forceinline__ float dot_pack(const Pack<T, kVec<T>>& u, const T* v_row, int64_t q) {
  constexpr int V = kVec<T>;
  const Pack<T, V> v = reinterpret_cast<const Pack<T, V>*>(v_row)[q];
  float s = 0.f;
#pragma unroll
  for (int e = 0; e < V; ++e) s += to_acc<float>(u.v[e]) * to_acc<float>(v.v[e]);
  return s;
}

template <typename T>
__global__ void __launch_bounds__(kLinearWarps * 32) lora_linear_small_kernel(LinearArgs g) {
  constexpr int V = kVec<T>;
  __shared__ float t_s[kLoraLinearMaxRows][kLoraLinearMaxRank];  // t rounded to T, as the composed path has it
  __shared__ int64_t id_s[kLoraLinearMaxRows];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int N = static_cast<int>(g.N), R = static_cast<int>(g.R);
  const int64_t packs = g.I / V;
  if (static_cast<int>(threadIdx.x) < N) id_s[threadIdx.x] = checked_adapter(g.rows, g.L, g.err, threadIdx.x);
  __syncthreads();

  // 1. t[n, k] = x[n] . a[id(n), k], a warp per (n, k); 0 for rows without an adapter.
  for (int p = warp; p < N * R; p += kLinearWarps) {
    const int n = p / R, k = p % R;
    const int64_t l = id_s[n];  // warp-uniform
    float acc = 0.f;
    if (l >= 0) {
      const T* x = static_cast<const T*>(g.x) + n * g.x_rs;
      const T* a = static_cast<const T*>(g.a.data) + l * g.a.adapter_stride + k * g.a.m_stride;
      for (int64_t q = lane; q < packs; q += 32) acc += dot_pack<T>(reinterpret_cast<const Pack<T, V>*>(x)[q], a, q);
      acc = warp_reduce(acc, SumOp{});
    }
    if (lane == 0) {
      const T tv = from_acc<T>(acc);
      t_s[n][k] = to_acc<float>(tv);
      if (g.t != nullptr && blockIdx.x == 0) static_cast<T*>(g.t)[n * g.t_rs + k] = tv;
    }
  }
  __syncthreads();

  // 2. y[n, o] = x[n] . w[o] + scale * t[n] . b[id(n), :, o], a warp per output feature o.
  for (int64_t o = static_cast<int64_t>(blockIdx.x) * kLinearWarps + warp; o < g.O;
       o += static_cast<int64_t>(gridDim.x) * kLinearWarps) {
    const T* w = static_cast<const T*>(g.w) + o * g.w_rs;
    float acc[kLoraLinearMaxRows];
#pragma unroll
    for (int n = 0; n < kLoraLinearMaxRows; ++n) acc[n] = 0.f;
    for (int64_t q0 = lane; q0 < packs; q0 += 32 * kLinearUnroll) {
      Pack<T, V> wp[kLinearUnroll];
#pragma unroll
      for (int u = 0; u < kLinearUnroll; ++u)
        if (q0 + u * 32 < packs) wp[u] = reinterpret_cast<const Pack<T, V>*>(w)[q0 + u * 32];
#pragma unroll
      for (int u = 0; u < kLinearUnroll; ++u) {
        if (q0 + u * 32 >= packs) break;
#pragma unroll
        for (int n = 0; n < kLoraLinearMaxRows; ++n)
          if (n < N) acc[n] += dot_pack<T>(wp[u], static_cast<const T*>(g.x) + n * g.x_rs, q0 + u * 32);
      }
    }
    float mine = 0.f;  // lane n finishes row n
#pragma unroll
    for (int n = 0; n < kLoraLinearMaxRows; ++n) {
      if (n >= N) break;
      const float v = warp_reduce(acc[n], SumOp{});
      if (lane == n) mine = v;
    }
    if (lane < N) {
      const int64_t l = id_s[lane];
      float delta = 0.f;
      if (l >= 0) {
        const T* b = static_cast<const T*>(g.b.data) + l * g.b.adapter_stride + o * g.b.m_stride;
        for (int k = 0; k < R; ++k) delta += t_s[lane][k] * to_acc<float>(b[k * g.b.k_stride]);
      }
      static_cast<T*>(g.y)[lane * g.y_rs + o] = from_acc<T>(mine + g.scale * delta);
    }
  }
}

}  // namespace

bool launch_lora_linear_small(LoraMat y, LoraMat t, LoraMat x, LoraMat w, LoraStack a, LoraStack b, DType dt,
                              int64_t N, int64_t I, int64_t O, int64_t R, int64_t L, LoraRows rows, double scale,
                              cudaStream_t stream) {
  if (N < 1 || N > kLoraLinearMaxRows || R < 1 || R > kLoraLinearMaxRank || O < 1 || I < 1) return false;
  if (x.col_stride != 1 || w.col_stride != 1 || y.col_stride != 1 || a.k_stride != 1) return false;
  if (t.data != nullptr && t.col_stride != 1) return false;
  bool ok = false;
  auto launch = [&](auto type_tag) {  // f32 / bf16 / f16 only: no f64 instantiation
    using T = decltype(type_tag);
    constexpr int V = kVec<T>;
    ok = I % V == 0 && packable<T>(x.data, 1, x.row_stride) && packable<T>(w.data, 1, w.row_stride) &&
         packable<T>(a.data, 1, a.adapter_stride, a.m_stride);
    if (!ok) return;
    const LinearArgs g{y.data, y.row_stride, t.data, t.row_stride, x.data, x.row_stride, w.data, w.row_stride,
                       a, b, N, I, O, R, L, rows, static_cast<float>(scale), device_error_flag()};
    const int64_t blocks = std::min<int64_t>((O + kLinearWarps - 1) / kLinearWarps, device_sm_count());
    LLOCO_LAUNCH(static_cast<unsigned>(blocks), kLinearWarps * 32, 0, stream, lora_linear_small_kernel<T>)(g);
  };
  if (dt == DType::F32) launch(float{});
  else if (dt == DType::BF16) launch(__nv_bfloat16{});
  else if (dt == DType::F16) launch(__half{});
  if (ok) CUDA_LAUNCH_CHECK(stream, "lora_linear_small");
  return ok;
}

void launch_lora_matmul(LoraMat y, LoraMat x, LoraStack w, DType dt, int64_t N, int64_t I, int64_t O, int64_t L,
                        LoraRows rows, double scale, bool accumulate, cudaStream_t stream) {
  if (N == 0 || O == 0) return;
  LLOCO_CHECK(N < (int64_t(1) << 31), "lora_matmul", "too many rows: ", N);
  MatmulArgs g{y.data, y.row_stride, y.col_stride, x.data, x.row_stride, x.col_stride, w, N, I, O, L, rows, scale,
               accumulate, false, false, false, device_error_flag()};
  // Expand when the reduction is short (a rank) and the output wide; shrink handles everything else.
  const bool expand = I <= kExpandMaxI && O > I;
  const bool kcontig = w.k_stride == 1;
  LLOCO_DISPATCH_FLOAT(dt, "lora_matmul", T, {
    constexpr int V = kVec<T>;
    g.x_vec = packable<T>(x.data, x.col_stride, x.row_stride);
    g.y_vec = packable<T>(y.data, y.col_stride, y.row_stride);
    g.w_vec = kcontig ? packable<T>(w.data, w.k_stride, w.adapter_stride, w.m_stride)
                      : packable<T>(w.data, w.m_stride, w.adapter_stride, w.k_stride);
    if (expand) {
      const int64_t chunks = (O + kExpandThreads * V - 1) / (kExpandThreads * V);
      LLOCO_CHECK(chunks <= 65535, "lora_matmul", "too many output features for the expand kernel: ", O);
      const dim3 grid(static_cast<unsigned>(N), static_cast<unsigned>(chunks));
      if (kcontig) LLOCO_LAUNCH(grid, kExpandThreads, 0, stream, lora_expand_kernel<T, true>)(g);
      else LLOCO_LAUNCH(grid, kExpandThreads, 0, stream, lora_expand_kernel<T, false>)(g);
    } else if (O <= 8) {
      launch_shrink<T, 8>(g, kcontig, stream);
    } else if (O <= 16) {
      launch_shrink<T, 16>(g, kcontig, stream);
    } else {
      launch_shrink<T, 32>(g, kcontig, stream);
    }
  });
  CUDA_LAUNCH_CHECK(stream, "lora_matmul");
}

// Tile of dw per block: it follows the small (rank) side so few threads idle.
static void grad_tile(int64_t P, int64_t Q, int& tp, int& tq) {
  if (P <= 8) tp = 8, tq = 128;
  else if (Q <= 8) tp = 128, tq = 8;
  else tp = 32, tq = 32;
}

int64_t lora_weight_grad_splits(int64_t N, int64_t P, int64_t Q, int64_t L) {
  if (L == 0 || P == 0 || Q == 0) return 1;
  int tp, tq;
  grad_tile(P, Q, tp, tq);
  const int64_t blocks = L * ((P + tp - 1) / tp) * ((Q + tq - 1) / tq);
  const int64_t want = (2 * static_cast<int64_t>(device_sm_count()) + blocks - 1) / blocks;  // ~2 waves
  const int64_t chunks = (N + kGradRows - 1) / kGradRows;  // no split without its own chunk of rows
  int64_t splits = want < chunks ? want : chunks;
  if (splits > 64) splits = 64;
  if (splits * L > 65535) splits = 65535 / L;
  return splits < 1 ? 1 : splits;
}

size_t lora_weight_grad_workspace_bytes(int64_t N, int64_t P, int64_t Q, int64_t L, DType dt) {
  const int64_t splits = lora_weight_grad_splits(N, P, Q, L);
  if (splits == 1) return 0;
  const size_t acc = dt == DType::F64 ? sizeof(double) : sizeof(float);
  return static_cast<size_t>(splits * L * P * Q) * acc;
}

void launch_lora_weight_grad(void* dw, const int64_t (&dw_strides)[3], LoraMat lhs, LoraMat rhs, DType dt, int64_t N,
                             int64_t P, int64_t Q, int64_t L, LoraRows rows, double scale, void* workspace,
                             cudaStream_t stream) {
  if (L == 0 || P == 0 || Q == 0) return;
  LLOCO_CHECK(L <= 65535, "lora_weight_grad", "too many adapters for one launch: ", L);
  const int64_t splits = lora_weight_grad_splits(N, P, Q, L);
  LLOCO_CHECK(splits == 1 || workspace != nullptr, "lora_weight_grad", "needs ",
              lora_weight_grad_workspace_bytes(N, P, Q, L, dt), " bytes of workspace for ", splits, " row splits");
  GradArgs g{dw, dw_strides[0], dw_strides[1], dw_strides[2], lhs, rhs, N, P, Q, L, rows, scale, splits,
             splits == 1 ? nullptr : workspace};
  auto launch = [&](auto tile_p, auto tile_q, auto type_tag) {
    using T = decltype(type_tag);
    constexpr int TP = decltype(tile_p)::value, TQ = decltype(tile_q)::value;
    const int64_t tp = (P + TP - 1) / TP, tq = (Q + TQ - 1) / TQ;
    LLOCO_CHECK(tp <= 65535 && tq <= 65535, "lora_weight_grad", "dw [L, P, Q] too large: P = ", P, ", Q = ", Q);
    const dim3 grid(static_cast<unsigned>(tq), static_cast<unsigned>(tp), static_cast<unsigned>(L * splits));
    LLOCO_LAUNCH(grid, kGradThreads, 0, stream, lora_weight_grad_kernel<T, TP, TQ>)(g);
    if (splits > 1) LLOCO_LAUNCH(grid_for(L * P * Q, 256), 256, 0, stream, lora_weight_grad_sum_kernel<T>)(g);
  };
  using C8 = std::integral_constant<int, 8>;
  using C32 = std::integral_constant<int, 32>;
  using C128 = std::integral_constant<int, 128>;
  int tp, tq;
  grad_tile(P, Q, tp, tq);
  LLOCO_DISPATCH_FLOAT(dt, "lora_weight_grad", T, {
    if (tp == 8) launch(C8{}, C128{}, T{});
    else if (tp == 128) launch(C128{}, C8{}, T{});
    else launch(C32{}, C32{}, T{});
  });
  CUDA_LAUNCH_CHECK(stream, "lora_weight_grad");
}

}  // namespace lloco::cuda_kernels
