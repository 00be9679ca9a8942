// flash_attention.cu — causal/full attention on tensor cores for bf16 and f16
// heads of dim 64 or 128 (FlashAttention-2, Dao 2023), forward and backward.
//
// Semantics are the CPU kernel's (tensor/cpu/attention.cpp): q [B, H, L, Dh],
// k, v [B, Hkv, S, Dh] (query head bh reads key/value head bh / group,
// group = H / Hkv: grouped-query attention), scores = scale q k^T, causal query i sees keys
// j <= i + S - L, out = softmax(scores) v, lse = log Σ_j exp(score_ij) (f32).
// No [L, S] matrix exists anywhere: scores live in registers one tile at a
// time, so any L works (8192 and beyond) with memory linear in L.
//
// Forward: a block of 4 warps owns 64 query rows (16 per warp) and walks the
// key/value tiles of 64 keys that its rows can see, loading tile t+1 with
// cp.async while computing tile t. Per tile, each warp
//   S = Q K^T            16 x 64 scores, mma.m16n8k16, f32 accumulators
//   online softmax       running row max m and sum l; rescale O when m grows
//   O += P V             P rounded to bf16 straight from S's registers
// and at the end O / l and lse = m + log l. Scores are kept in log2 units
// (scale * log2 e folded in once) so each exponential is one exp2f.
//
// Backward (P recomputed from q, k and lse; D_i = dO_i . O_i precomputed):
//   dV = P^T dO,  dP = dO V^T,  dS = P (dP - D),  dK = scale dS^T Q,  dQ = scale dS K
// as two kernels that each own their outputs: one block per 64 keys of a
// key/value head computes dK and dV (walking the query tiles that see them,
// of every query head in its group), one block per 64 queries
// computes dQ (walking the key tiles). Nothing is accumulated with atomics, so
// the backward is deterministic, bit for bit, at the price of computing S and
// dP twice (7 tile products per tile pair instead of FlashAttention-2's 5).
//
// Shared-memory rows are padded by 8 elements (16 bytes) so the 8 rows an
// ldmatrix reads fall in 8 different bank groups. Loads past the end of a
// matrix are zero-filled by cp.async; masked scores are -inf (P = 0).
#include <cmath>
#include <mutex>
#include <set>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/mma.cuh"
#include "cuda/vec.cuh"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

constexpr int kWarps = 4;
constexpr int kBlockThreads = kWarps * 32;
constexpr int kPad = 8;  // elements of padding per shared-memory row
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int kD>
__host__ __device__ constexpr int row_stride() {
  return kD + kPad;
}

// Rows [row0, row0 + kRows) of a contiguous [n_rows, kD] matrix into shared
// memory (row stride kD + kPad), rows past n_rows zero-filled. Asynchronous:
// the caller commits and waits.
template <int kRows, int kD, typename T>
__device__ __forceinline__ void load_tile(T* smem, const T* g, int64_t row0, int64_t n_rows) {
  constexpr int kChunks = kD / 8;  // 16-byte pieces per row
  for (int idx = threadIdx.x; idx < kRows * kChunks; idx += kBlockThreads) {
    const int r = idx / kChunks, c = idx % kChunks;
    const int64_t gr = row0 + r;
    const bool inside = gr < n_rows;
    cp_async_16(smem + r * row_stride<kD>() + c * 8, g + (inside ? gr : 0) * kD + c * 8, inside ? 16 : 0);
  }
}

// A fragments of a warp's 16 rows (starting at row0 of the tile), all kD columns.
template <int kD, typename T>
__device__ __forceinline__ void load_a_rows(uint32_t (&a)[kD / 16][4], const T* tile, int row0) {
  const int lane = threadIdx.x % 32;
  const int row = row0 + (lane % 8) + ((lane / 8) % 2) * 8;
#pragma unroll
  for (int kc = 0; kc < kD / 16; ++kc) ldmatrix_x4(a[kc], tile + row * row_stride<kD>() + kc * 16 + (lane / 16) * 8);
}

// acc[nt] += A (16 x kD, fragments a) times B^T, where B is kN rows of a
// tile (starting at row0) holding kD columns each: acc = A B^T, 16 x kN.
// B^T's fragment is read with plain ldmatrix: B's rows are k-contiguous.
template <int kN, int kD, typename T>
__device__ __forceinline__ void mma_abt(float (&acc)[kN / 8][4], const uint32_t (&a)[kD / 16][4], const T* tile,
                                        int row0) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int nt = 0; nt < kN / 8; ++nt) {
#pragma unroll
    for (int kc2 = 0; kc2 < kD / 32; ++kc2) {
      uint32_t b[4];
      ldmatrix_x4(b, tile + (row0 + nt * 8 + lane % 8) * row_stride<kD>() + kc2 * 32 + (lane / 8) * 8);
      mma_16816<T>(acc[nt], a[2 * kc2], b[0], b[1]);
      mma_16816<T>(acc[nt], a[2 * kc2 + 1], b[2], b[3]);
    }
  }
}

// acc (16 x kD) += P (16 x kK, C fragments p) times B, where B is kK rows of
// a tile (from row0) with kD columns: B's rows are n-contiguous, so its
// fragment is read with ldmatrix.trans.
template <int kK, int kD, typename T>
__device__ __forceinline__ void mma_pb(float (&acc)[kD / 8][4], const float (&p)[kK / 8][4], const T* tile,
                                       int row0) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int kc = 0; kc < kK / 16; ++kc) {
    uint32_t a[4];
    c_to_a<T, kK / 8>(a, p, kc);
#pragma unroll
    for (int dp = 0; dp < kD / 16; ++dp) {
      uint32_t b[4];
      ldmatrix_x4_trans(
          b, tile + (row0 + kc * 16 + lane % 8 + ((lane / 8) % 2) * 8) * row_stride<kD>() + dp * 16 + (lane / 16) * 8);
      mma_16816<T>(acc[2 * dp], a, b[0], b[1]);
      mma_16816<T>(acc[2 * dp + 1], a, b[2], b[3]);
    }
  }
}

// Writes a warp's 16 x kD accumulator (rows row0 + g, row0 + g + 8), scaled,
// rounded to T, skipping rows >= n_rows.
template <int kD, typename T>
__device__ __forceinline__ void store_rows(T* g_out, const float (&acc)[kD / 8][4], int64_t row0, int64_t n_rows,
                                           float scale0, float scale1) {
  const int lane = threadIdx.x % 32, g = lane / 4, qd = lane % 4;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = row0 + g + r * 8;
    if (row >= n_rows) continue;
    const float s = r == 0 ? scale0 : scale1;
#pragma unroll
    for (int dt = 0; dt < kD / 8; ++dt)
      *reinterpret_cast<uint32_t*>(g_out + row * kD + dt * 8 + 2 * qd) =
          pack2<T>(acc[dt][2 * r] * s, acc[dt][2 * r + 1] * s);
  }
}

// ---------------------------------------------------------------- forward

constexpr int kFwdRows = 64, kFwdKeys = 64;

template <int kD>
constexpr size_t forward_smem() {
  return sizeof(uint16_t) * row_stride<kD>() * (kFwdRows + 4 * kFwdKeys);  // Q, K x2, V x2
}

template <typename T, int kD>
__global__ void __launch_bounds__(kBlockThreads) flash_forward_kernel(const T* q, const T* k, const T* v, T* out,
                                                                      float* lse, int64_t group, int64_t L,
                                                                      int64_t S, float scale_log2, bool causal) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  constexpr int kStride = row_stride<kD>();
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sK = sQ + kFwdRows * kStride;  // two buffers of kFwdKeys rows
  T* sV = sK + 2 * kFwdKeys * kStride;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, qd = lane % 4;
  // The last query blocks see the most keys under a causal mask: they go
  // first (block x takes query block gridDim.x - 1 - x), so the long blocks
  // do not form a tail at the end of the grid.
  const int64_t bh = blockIdx.y, q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kFwdRows;
  const T* qh = q + bh * L * kD;
  const T* kh = k + (bh / group) * S * kD;
  const T* vh = v + (bh / group) * S * kD;

  int64_t n_tiles = (S + kFwdKeys - 1) / kFwdKeys;
  if (causal) n_tiles = min_i64(n_tiles, (min_i64(q0 + kFwdRows - 1, L - 1) + S - L) / kFwdKeys + 1);

  load_tile<kFwdRows, kD>(sQ, qh, q0, L);
  load_tile<kFwdKeys, kD>(sK, kh, 0, S);
  load_tile<kFwdKeys, kD>(sV, vh, 0, S);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[kD / 16][4];
  load_a_rows<kD>(qf, sQ, warp * 16);

  float o[kD / 8][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int64_t row_base = q0 + warp * 16 + g;  // this thread's rows: row_base, row_base + 8

  for (int64_t t = 0; t < n_tiles; ++t) {
    if (t > 0) {
      cp_async_wait<0>();
      __syncthreads();  // tile t has landed for every thread
    }
    if (t + 1 < n_tiles) {  // prefetch tile t+1 into the other buffer
      const int nb = static_cast<int>((t + 1) % 2);
      load_tile<kFwdKeys, kD>(sK + nb * kFwdKeys * kStride, kh, (t + 1) * kFwdKeys, S);
      load_tile<kFwdKeys, kD>(sV + nb * kFwdKeys * kStride, vh, (t + 1) * kFwdKeys, S);
    }
    cp_async_commit();
    const T* cK = sK + (t % 2) * kFwdKeys * kStride;
    const T* cV = sV + (t % 2) * kFwdKeys * kStride;

    float s[kFwdKeys / 8][4] = {};
    mma_abt<kFwdKeys, kD>(s, qf, cK, 0);

    const int64_t key0 = t * kFwdKeys;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t row = row_base + r * 8;
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kFwdKeys / 8; ++nt) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int64_t col = key0 + nt * 8 + 2 * qd + j;
          const bool visible = col < S && (!causal || col <= row + S - L);
          float& x = s[nt][2 * r + j];
          x = visible ? x * scale_log2 : -INFINITY;
          mx = fmaxf(mx, x);
        }
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[r], mx);
      const float m_use = m_new == -INFINITY ? 0.f : m_new;  // a row with nothing visible yet
      const float correction = exp2f(m[r] - m_use);
      float sum = 0.f;
#pragma unroll
      for (int nt = 0; nt < kFwdKeys / 8; ++nt) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const float p = exp2f(s[nt][2 * r + j] - m_use);
          s[nt][2 * r + j] = p;
          sum += p;
        }
      }
      l[r] = l[r] * correction + sum;  // this thread's share; the quad is summed at the end
#pragma unroll
      for (int dt = 0; dt < kD / 8; ++dt) {
        o[dt][2 * r] *= correction;
        o[dt][2 * r + 1] *= correction;
      }
      m[r] = m_new;
    }
    mma_pb<kFwdKeys, kD>(o, s, cV, 0);
  }

  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float total = l[r] + __shfl_xor_sync(0xffffffffu, l[r], 1);
    total += __shfl_xor_sync(0xffffffffu, total, 2);
    inv[r] = total > 0.f ? 1.f / total : 0.f;
    const int64_t row = row_base + r * 8;
    if (qd == 0 && row < L) lse[bh * L + row] = (m[r] + log2f(total)) * kLn2;
  }
  store_rows<kD>(out + bh * L * kD, o, q0 + warp * 16, L, inv[0], inv[1]);
}

// ---------------------------------------------------------------- backward: dK, dV

constexpr int kBwdKeys = 64;  // keys per block of the dK/dV kernel

template <int kD>
__host__ __device__ constexpr int dkdv_query_tile() {
  return kD <= 64 ? 64 : 32;  // keeps dK, dV, S^T and dP^T in registers at Dh 128
}

template <int kD>
constexpr size_t dkdv_smem() {
  return sizeof(uint16_t) * row_stride<kD>() * (2 * kBwdKeys + 2 * dkdv_query_tile<kD>()) +
         sizeof(float) * 2 * dkdv_query_tile<kD>();
}

template <typename T, int kD>
__global__ void __launch_bounds__(kBlockThreads)
    flash_backward_dkdv_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* D,
                               T* dk, T* dv, int64_t group, int64_t L, int64_t S, float scale, float scale_log2,
                               bool causal) {
  constexpr int kQ = dkdv_query_tile<kD>();
  constexpr int kStride = row_stride<kD>();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sK = reinterpret_cast<T*>(smem_raw);
  T* sV = sK + kBwdKeys * kStride;
  T* sQ = sV + kBwdKeys * kStride;
  T* sdO = sQ + kQ * kStride;
  float* sL = reinterpret_cast<float*>(sdO + kQ * kStride);  // lse * log2 e of the tile's queries
  float* sD = sL + kQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, qd = lane % 4;
  const int64_t kvh = blockIdx.y, k0 = static_cast<int64_t>(blockIdx.x) * kBwdKeys;

  load_tile<kBwdKeys, kD>(sK, k + kvh * S * kD, k0, S);
  load_tile<kBwdKeys, kD>(sV, v + kvh * S * kD, k0, S);
  cp_async_commit();

  float dK[kD / 8][4] = {}, dV[kD / 8][4] = {};
  const int64_t key_base = k0 + warp * 16 + g;  // this thread's keys: key_base, key_base + 8
  // The first query that sees any of this block's keys.
  const int64_t first_query = causal ? max_i64(0, k0 - (S - L)) : 0;
  const int64_t first_qt = first_query / kQ, tiles_per_head = (L + kQ - 1) / kQ - first_qt;

  // Every (query head of the group, query tile) pair, heads in order: dK and
  // dV sum over the group's heads in registers.
  for (int64_t it = 0; it < group * tiles_per_head; ++it) {
    const int64_t bh = kvh * group + it / tiles_per_head, qt = first_qt + it % tiles_per_head;
    const T* qh = q + bh * L * kD;
    const T* doh = dout + bh * L * kD;
    __syncthreads();  // everyone is done with the previous query tile
    load_tile<kQ, kD>(sQ, qh, qt * kQ, L);
    load_tile<kQ, kD>(sdO, doh, qt * kQ, L);
    cp_async_commit();
    for (int i = threadIdx.x; i < kQ; i += kBlockThreads) {
      const int64_t row = qt * kQ + i;
      sL[i] = row < L ? lse[bh * L + row] * kLog2e : INFINITY;  // +inf: P = 0 for padding rows
      sD[i] = row < L ? D[bh * L + row] : 0.f;
    }
    cp_async_wait<0>();
    __syncthreads();

    uint32_t kf[kD / 16][4], vf[kD / 16][4];
    load_a_rows<kD>(kf, sK, warp * 16);
    float pt[kQ / 8][4] = {};  // S^T, then P^T: 16 keys x kQ queries
    mma_abt<kQ, kD>(pt, kf, sQ, 0);
    load_a_rows<kD>(vf, sV, warp * 16);
    float dpt[kQ / 8][4] = {};  // dP^T = V dO^T, then dS^T
    mma_abt<kQ, kD>(dpt, vf, sdO, 0);
#pragma unroll
    for (int nt = 0; nt < kQ / 8; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t key = key_base + (i / 2) * 8;
        const int local = nt * 8 + 2 * qd + (i % 2);
        const int64_t query = qt * kQ + local;
        const bool visible = !causal || key <= query + S - L;
        const float p = visible ? exp2f(pt[nt][i] * scale_log2 - sL[local]) : 0.f;
        pt[nt][i] = p;
        dpt[nt][i] = p * (dpt[nt][i] - sD[local]);
      }
    }
    mma_pb<kQ, kD>(dV, pt, sdO, 0);
    mma_pb<kQ, kD>(dK, dpt, sQ, 0);
  }
  store_rows<kD>(dk + kvh * S * kD, dK, k0 + warp * 16, S, scale, scale);
  store_rows<kD>(dv + kvh * S * kD, dV, k0 + warp * 16, S, 1.f, 1.f);
}

// ---------------------------------------------------------------- backward: dQ

constexpr int kBwdQueries = 64;  // queries per block of the dQ kernel

template <int kD>
__host__ __device__ constexpr int dq_key_tile() {
  return kD <= 64 ? 64 : 32;
}

template <int kD>
constexpr size_t dq_smem() {
  return sizeof(uint16_t) * row_stride<kD>() * (2 * kBwdQueries + 2 * dq_key_tile<kD>());
}

template <typename T, int kD>
__global__ void __launch_bounds__(kBlockThreads)
    flash_backward_dq_kernel(const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* D,
                             T* dq, int64_t group, int64_t L, int64_t S, float scale, float scale_log2,
                             bool causal) {
  constexpr int kK = dq_key_tile<kD>();
  constexpr int kStride = row_stride<kD>();
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* sQ = reinterpret_cast<T*>(smem_raw);
  T* sdO = sQ + kBwdQueries * kStride;
  T* sK = sdO + kBwdQueries * kStride;
  T* sV = sK + kK * kStride;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, qd = lane % 4;
  const int64_t bh = blockIdx.y, q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * kBwdQueries;  // longest first
  const T* kh = k + (bh / group) * S * kD;
  const T* vh = v + (bh / group) * S * kD;

  load_tile<kBwdQueries, kD>(sQ, q + bh * L * kD, q0, L);
  load_tile<kBwdQueries, kD>(sdO, dout + bh * L * kD, q0, L);
  cp_async_commit();
  cp_async_wait<0>();
  __syncthreads();
  uint32_t qf[kD / 16][4], dof[kD / 16][4];
  load_a_rows<kD>(qf, sQ, warp * 16);
  load_a_rows<kD>(dof, sdO, warp * 16);

  const int64_t row_base = q0 + warp * 16 + g;
  float lse2[2], d_row[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int64_t row = row_base + r * 8;
    lse2[r] = row < L ? lse[bh * L + row] * kLog2e : INFINITY;
    d_row[r] = row < L ? D[bh * L + row] : 0.f;
  }

  int64_t n_tiles = (S + kK - 1) / kK;
  if (causal) n_tiles = min_i64(n_tiles, (min_i64(q0 + kBwdQueries - 1, L - 1) + S - L) / kK + 1);
  float dQ[kD / 8][4] = {};
  for (int64_t t = 0; t < n_tiles; ++t) {
    __syncthreads();  // everyone is done with the previous key tile
    load_tile<kK, kD>(sK, kh, t * kK, S);
    load_tile<kK, kD>(sV, vh, t * kK, S);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    float p[kK / 8][4] = {};
    mma_abt<kK, kD>(p, qf, sK, 0);
    float ds[kK / 8][4] = {};
    mma_abt<kK, kD>(ds, dof, sV, 0);
#pragma unroll
    for (int nt = 0; nt < kK / 8; ++nt) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int r = i / 2;
        const int64_t row = row_base + r * 8;
        const int64_t col = t * kK + nt * 8 + 2 * qd + (i % 2);
        const bool visible = col < S && (!causal || col <= row + S - L);
        const float pv = visible ? exp2f(p[nt][i] * scale_log2 - lse2[r]) : 0.f;
        ds[nt][i] = pv * (ds[nt][i] - d_row[r]);
      }
    }
    mma_pb<kK, kD>(dQ, ds, sK, 0);
  }
  store_rows<kD>(dq + bh * L * kD, dQ, q0 + warp * 16, L, scale, scale);
}

// Allows a kernel more than the default 48 KiB of dynamic shared memory:
// once per kernel and device (the attribute is per device), not per launch.
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return;
  static std::mutex mutex;
  static std::set<int> done;  // devices, for this kernel (one set per instantiation)
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  if (done.count(device)) return;
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  done.insert(device);
}

template <typename F>
bool dispatch_flash(const Tensor& q, F&& f) {
  const int64_t Dh = q.size(3);
  auto by_dim = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (Dh == 64) {
      f(tag, std::integral_constant<int, 64>{});
      return true;
    }
    if (Dh == 128) {
      f(tag, std::integral_constant<int, 128>{});
      return true;
    }
    return false;
  };
  if (q.dtype() == DType::bf16) return by_dim(TypeTag<__nv_bfloat16>{});
  if (q.dtype() == DType::f16) return by_dim(TypeTag<__half>{});
  return false;
}

}  // namespace

bool flash_attention_supports(const Tensor& q, std::initializer_list<const Tensor*> others) {
  if (q.dtype() != DType::bf16 && q.dtype() != DType::f16) return false;
  if (q.size(3) != 64 && q.size(3) != 128) return false;
  if (q.size(0) * q.size(1) > 65535) return false;
  if (!aligned16({q.data_ptr()})) return false;
  for (const Tensor* t : others)
    if (!aligned16({t->data_ptr()})) return false;
  return true;
}

void launch_flash_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale, bool causal,
                                    const Tensor& out, const Tensor& lse, cudaStream_t stream) {
  const int64_t B = q.size(0), H = q.size(1), group = H / k.size(1), L = q.size(2), S = k.size(2);
  const dim3 grid(static_cast<unsigned>((L + kFwdRows - 1) / kFwdRows), static_cast<unsigned>(B * H));
  const float scale_log2 = static_cast<float>(scale) * kLog2e;
  dispatch_flash(q, [&](auto tag, auto dim) {
    using T = typename decltype(tag)::type;
    constexpr int kD = decltype(dim)::value;
    constexpr size_t smem = forward_smem<kD>();
    allow_smem(flash_forward_kernel<T, kD>, smem);
    flash_forward_kernel<T, kD><<<grid, kBlockThreads, smem, stream>>>(
        static_cast<const T*>(q.data_ptr()), static_cast<const T*>(k.data_ptr()), static_cast<const T*>(v.data_ptr()),
        static_cast<T*>(out.data_ptr()), lse.data<float>(), group, L, S, scale_log2, causal);
    CUDA_CHECK_LAUNCH();
  });
}

void launch_flash_attention_backward(const Tensor& dout, const Tensor& q, const Tensor& k, const Tensor& v,
                                     const Tensor& lse, const Tensor& D, double scale, bool causal, const Tensor& dq,
                                     const Tensor& dk, const Tensor& dv, cudaStream_t stream) {
  const int64_t B = q.size(0), H = q.size(1), Hkv = k.size(1), group = H / Hkv, L = q.size(2), S = k.size(2);
  const float sc = static_cast<float>(scale), scale_log2 = sc * kLog2e;
  dispatch_flash(q, [&](auto tag, auto dim) {
    using T = typename decltype(tag)::type;
    constexpr int kD = decltype(dim)::value;
    const T* qp = static_cast<const T*>(q.data_ptr());
    const T* kp = static_cast<const T*>(k.data_ptr());
    const T* vp = static_cast<const T*>(v.data_ptr());
    const T* dop = static_cast<const T*>(dout.data_ptr());
    {
      constexpr size_t smem = dkdv_smem<kD>();
      allow_smem(flash_backward_dkdv_kernel<T, kD>, smem);
      const dim3 grid(static_cast<unsigned>((S + kBwdKeys - 1) / kBwdKeys), static_cast<unsigned>(B * Hkv));
      flash_backward_dkdv_kernel<T, kD><<<grid, kBlockThreads, smem, stream>>>(
          qp, kp, vp, dop, lse.data<float>(), D.data<float>(), static_cast<T*>(dk.data_ptr()),
          static_cast<T*>(dv.data_ptr()), group, L, S, sc, scale_log2, causal);
      CUDA_CHECK_LAUNCH();
    }
    {
      constexpr size_t smem = dq_smem<kD>();
      allow_smem(flash_backward_dq_kernel<T, kD>, smem);
      const dim3 grid(static_cast<unsigned>((L + kBwdQueries - 1) / kBwdQueries), static_cast<unsigned>(B * H));
      flash_backward_dq_kernel<T, kD><<<grid, kBlockThreads, smem, stream>>>(
          qp, kp, vp, dop, lse.data<float>(), D.data<float>(), static_cast<T*>(dq.data_ptr()), group, L, S, sc,
          scale_log2, causal);
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace lory::cuda
