// kernels.h — launchers that CUDA code shares across files.
//
// Most launchers are private to the file of their kernels, which also defines
// the CudaBackend method that calls them (see cuda/cuda_backend.h). The ones
// here are also building blocks of other kernels' host code: gemm.cu packs
// operands with launch_copy when cuBLASLt has no algorithm for their
// alignment, and matmul.cu, reduce.cu and rms_norm.cu zero-fill outputs of
// empty sums with launch_fill. Arguments follow tensor/backend.h and are not
// checked here (CudaBackend::copy and fill check theirs with
// tensor/kernel_args.h; the callers above pass operands that already meet
// the contract); tensors are const& because a launcher changes the data an
// output points to, never the handle.
#pragma once

#include <cuda_runtime_api.h>

#include "tensor/tensor.h"

namespace lory::cuda {

// copy.cu: dst[i] = cast(src[i]) over dst's shape (both may be strided views).
void launch_copy(const Tensor& src, const Tensor& dst, cudaStream_t stream);
// copy.cu: out[i] = value; out contiguous.
void launch_fill(const Tensor& out, double value, cudaStream_t stream);

}  // namespace lory::cuda
