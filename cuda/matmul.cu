// matmul.cu — batched GEMM: out[i] = a[i] @ b[i] for a: [B, M, K],
// b: [B, K, N] (Backend::matmul; the CPU twin is tensor/cpu/matmul.cpp, the
// op bmm/matmul is tensor/ops/matmul.cpp).
//
// The method checks the contract (check_matmul_args, tensor/kernel_args.h:
// the same check and message as the CPU kernel, including the layouts a GEMM
// reads in place), handles the empty cases, and hands the product to the
// device's cuBLASLt wrapper (GemmContext, cuda/gemm.h), which turns each
// operand's layout into cuBLAS's transposition flag and leading dimension.
#include "cuda/cuda_backend.h"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "tensor/kernel_args.h"

namespace lory {

void CudaBackend::matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  const cudaStream_t stream = enter("matmul", {&a, &b, &out});
  check_matmul_args(a, b, out);
  if (out.numel() == 0) return;
  if (a.size(2) == 0) {  // K == 0, an empty sum: every output element is 0
    cuda::launch_fill(out, 0.0, stream);
    return;
  }
  gemm().matmul(a, b, out, stream);
}

}  // namespace lory
