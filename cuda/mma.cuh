// mma.cuh — warp-level tensor-core building blocks (sm_80+, used on sm_90):
// the m16n8k16 MMA on 16-bit inputs with f32 accumulation, ldmatrix to feed
// it from shared memory, and cp.async to fill shared memory from global
// memory without a trip through registers.
//
// The fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16"; g = lane / 4,
// q = lane % 4):
//   A (16 x 16, row-major), 4 registers of two 16-bit values:
//     a[0] = A[g][2q, 2q+1]   a[1] = A[g+8][2q, 2q+1]
//     a[2] = A[g][2q+8, +9]   a[3] = A[g+8][2q+8, +9]
//   B (16 x 8, k x n), 2 registers:
//     b[0] = B[2q, 2q+1][g]   b[1] = B[2q+8, 2q+9][g]
//   C/D (16 x 8, f32), 4 registers:
//     c[0], c[1] = C[g][2q, 2q+1]   c[2], c[3] = C[g+8][2q, 2q+1]
// Two facts make attention work in registers:
//   * ldmatrix gives thread t row t/4, elements 2(t%4), 2(t%4)+1 of an 8 x 8
//     tile whose 8 rows it is pointed at: for a matrix stored with k
//     contiguous (Q, K, dO rows, all [rows, Dh]) that is exactly the A and B
//     layouts above; ldmatrix.trans gives the transpose, for a B stored with
//     n contiguous (V as the B of P V).
//   * The C fragments of two neighbouring 16 x 8 tiles are, element for
//     element, the A fragment of the 16 x 16 tile they form: a score block
//     computed by one MMA is the left operand of the next after a round to
//     16 bits, without touching shared memory (FlashAttention-2's trick).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace lory::cuda {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8x8 tiles of 16-bit elements; lane l points at row l % 8 of tile l / 8.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row))
               : "memory");
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(row))
               : "memory");
}

// d += a b for one 16 x 8 x 16 tile; T is __nv_bfloat16 or __half.
template <typename T>
__device__ __forceinline__ void mma_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats rounded to one register of two 16-bit values (lo in the low half).
template <typename T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

// The A fragment of columns [16 kc, 16 kc + 16) of a 16 x N block held as C
// fragments c[N / 8][4] (see the header comment).
template <typename T, int kTiles>
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c)[kTiles][4], int kc) {
  a[0] = pack2<T>(c[2 * kc][0], c[2 * kc][1]);
  a[1] = pack2<T>(c[2 * kc][2], c[2 * kc][3]);
  a[2] = pack2<T>(c[2 * kc + 1][0], c[2 * kc + 1][1]);
  a[3] = pack2<T>(c[2 * kc + 1][2], c[2 * kc + 1][3]);
}

// 16 bytes global -> shared, asynchronously; src_bytes < 16 zero-fills the
// rest (0: the whole line, for rows past the end of a matrix).
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(smem)), "l"(gmem),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
// Waits until at most kPending committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending) : "memory");
}

}  // namespace lory::cuda
