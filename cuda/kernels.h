// kernels.h — the host-side launchers of the CUDA kernels, one family per file.
//
// CudaBackend (cuda/cuda_backend.cu) checks devices and calls these; each
// launcher picks the kernel for the operands' dtypes and layouts and queues
// it on `stream`. Arguments follow tensor/backend.h: outputs are contiguous
// (except copy's dst) and already allocated, inputs are views with the
// output's shape. Tensors are passed as const& because a launcher changes the
// data an output points to, never the handle.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace lory::cuda {

class CachingAllocator;

// copy.cu
void launch_copy(const Tensor& src, const Tensor& dst, cudaStream_t stream);
void launch_fill(const Tensor& out, double value, cudaStream_t stream);
void launch_arange(const Tensor& out, double start, double step, cudaStream_t stream);

// random.cu
void launch_random(const Tensor& out, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b,
                   cudaStream_t stream);

// elementwise.cu
void launch_unary(UnaryOp op, const Tensor& x, const Tensor& out, double scalar, cudaStream_t stream);
void launch_binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t stream);
void launch_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out, cudaStream_t stream);

// reduce.cu; `allocator` provides scratch space for split rows.
void launch_reduce(ReduceOp op, const Tensor& x, const Tensor& out, CachingAllocator& allocator, cudaStream_t stream);

// softmax.cu
void launch_softmax(const Tensor& x, const Tensor& out, bool log, cudaStream_t stream);

}  // namespace lory::cuda
