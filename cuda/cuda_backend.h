// cuda_backend.h — the CUDA implementation of the kernel interface (tensor/backend.h).
//
// One CudaBackend per GPU, created on first use by cuda_backend(index) and
// kept for the life of the process. It owns
//   * a caching allocator (cuda/caching_allocator.h): tensor memory is
//     recycled, so a training step does not call cudaMalloc after the first;
//   * one stream (cuda/stream.h): every kernel, cuBLAS call and copy of the
//     device runs on it in issue order; copy_to_host and synchronize wait for it;
//   * the GEMM context (cuda/gemm.h): cuBLASLt handle, workspace, algorithm cache.
// Each kernel method is defined next to its kernels, one family per file:
//   copy.cu (copy, fill, arange)   random.cu (random)   elementwise.cu (unary,
//   binary, where)   reduce.cu (reduce)   softmax.cu (softmax)   gemm.cu (matmul)
//   swiglu.cu (swiglu)
// so adding a CUDA op is one method definition in one .cu file plus its
// declaration below. Each method starts with enter(), which checks the
// operands' devices and returns the stream to launch on. Methods not
// overridden here (index_select, index_add and the other fused nn ops) fall
// back to Backend's default, which throws "<op>: not implemented on cuda:N".
// cuda_backend.cu holds the memory methods and the per-device registry.
//
// Numerics follow the CPU backend: bf16/f16 compute in f32 and round once,
// softmax accumulates in f32 (f64 for f64), random numbers come from the same
// Philox functions, and every reduction is deterministic. One difference:
// f32 sums accumulate in f32 here (in f64 on the CPU), so large f32 sums
// agree to f32 rounding, not bit for bit.
//
// This header includes no CUDA header, so plain C++ (the tests) can include
// it to reach the allocator statistics: dynamic_cast<CudaBackend&>(cuda_backend(0)).
// A stream is named by the struct cudaStream_t points to, declared below.
#pragma once

#include <initializer_list>
#include <memory>
#include <mutex>

#include "cuda/caching_allocator.h"
#include "tensor/backend.h"

struct CUstream_st;  // cudaStream_t is CUstream_st* (cuda_runtime_api.h)

namespace lory {

namespace cuda {
class GemmContext;
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index);
  ~CudaBackend() override;

  Device device() const override { return cuda_device(index_); }

  void* allocate(size_t nbytes) override;
  void deallocate(void* ptr, size_t nbytes) override;
  void copy_from_host(void* dst, const void* src, size_t nbytes) override;
  void copy_to_host(void* dst, const void* src, size_t nbytes) override;
  void synchronize() override;

  void copy(const Tensor& src, Tensor& dst) override;
  void fill(Tensor& out, double value) override;
  void arange(Tensor& out, double start, double step) override;
  void random(Tensor& out, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b) override;

  void unary(UnaryOp op, const Tensor& x, Tensor& out, double scalar) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& x, Tensor& out) override;
  void softmax(const Tensor& x, Tensor& out, bool log) override;

  void matmul(const Tensor& a, const Tensor& b, Tensor& out) override;

  void swiglu(const Tensor& gate, const Tensor& up, Tensor& out) override;

  cuda::CachingAllocator& allocator() { return allocator_; }
  // Lets f32 matmuls use TF32 tensor cores (see cuda/gemm.h); off by default.
  void set_allow_tf32(bool allow);

 private:
  // Makes this backend's GPU current for the calling thread, checks that
  // every tensor lives on it (`op` names the caller in the error) and returns
  // the stream to launch on.
  CUstream_st* enter(const char* op, std::initializer_list<const Tensor*> tensors) const;
  cuda::GemmContext& gemm();

  int index_;
  cuda::CachingAllocator allocator_;
  CUstream_st* stream_;
  std::once_flag gemm_once_;
  std::unique_ptr<cuda::GemmContext> gemm_;
};

}  // namespace lory
