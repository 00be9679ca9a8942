// gemm.cu — the cuBLASLt wrapper (GemmContext, cuda/gemm.h) that
// Backend::matmul (cuda/matmul.cu) runs its products on: out[b] = a[b] @ b[b]
// for a: [B, M, K], b: [B, K, N], out: [B, M, N]; and the fused Lory merge
// (cuda/merged_linear.cu) its own, through gemm(): + beta * out[b], out
// possibly f32 for 16-bit operands.
//
// cuBLAS is column-major; our matrices are row-major. A row-major [M, N]
// matrix is, byte for byte, the column-major matrix of its transpose, so we
// ask cuBLAS for
//   out^T [N, M] = b^T [N, K] @ a^T [K, M]
// i.e. the operand order is swapped (cuBLAS's "A" is our b). Which operands
// are read in place is not decided here: gemm_operand (tensor/kernel_args.h)
// decides it for both backends, and the op has packed the rest. An operand
// that is row-major becomes CUBLAS_OP_N; one that is a transposed view
// (column-major in its last two dims) is already the column-major matrix of
// itself, and becomes CUBLAS_OP_T instead of a copy. Batch strides go
// straight to the strided-batched layout (0 for a broadcast operand). The one
// copy made here is an alignment fallback: cuBLASLt may have no algorithm for
// an operand that starts at an odd address (a narrowed view), and both
// operands are then packed into fresh, aligned buffers.
//
// Precision: f32 in, f32 out, CUBLAS_COMPUTE_32F (TF32 only when allowed);
// bf16/f16 in with f32 accumulate, out in the operands' type or (gemm() only)
// f32; f64 with cublasDgemmStridedBatched. alpha is 1, beta 0 for matmul.
#include <climits>
#include <optional>

#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/gemm.h"
#include "cuda/kernels.h"
#include "cuda/stream.h"
#include "tensor/kernel_args.h"

namespace lory::cuda {

namespace {

constexpr size_t kWorkspaceBytes = size_t{32} << 20;

// A [B, R, C] operand as the column-major matrix cuBLAS reads: stored
// `rows x cols` with leading dimension `ld`, to be transposed by `op` into
// the X^T [C, R] the product needs.
struct Operand {
  const void* ptr;
  cublasOperation_t op;
  int64_t rows, cols, ld, batch_stride;
};

// x's layout as gemm_operand found it (the matmul contract guarantees there is one).
Operand as_operand(const Tensor& x) {
  const GemmOperand g = *gemm_operand(x);
  const int64_t R = x.size(1), C = x.size(2);
  if (g.row_major) return Operand{x.data_ptr(), CUBLAS_OP_N, C, R, g.ld, g.batch_stride};  // holds X^T column-major
  return Operand{x.data_ptr(), CUBLAS_OP_T, R, C, g.ld, g.batch_stride};                   // holds X column-major
}

// The largest power of two (up to 256) dividing the address: cuBLASLt's
// heuristic assumes 256-byte aligned operands unless told otherwise, and a
// narrowed view can start anywhere.
uint32_t alignment_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 1 && a % align != 0) align /= 2;
  return align;
}

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::f32:
      return CUDA_R_32F;
    case DType::f64:
      return CUDA_R_64F;
    case DType::bf16:
      return CUDA_R_16BF;
    case DType::f16:
      return CUDA_R_16F;
    default:
      fail("matmul: no CUDA GEMM for dtype ", dtype_name(t), " (expected f32, f64, bf16 or f16)");
  }
}

// RAII for the cuBLASLt descriptors of one call.
struct LtLayout {
  cublasLtMatrixLayout_t layout = nullptr;
  LtLayout(cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t batch_stride) {
    CUBLAS_CHECK(
        cublasLtMatrixLayoutCreate(&layout, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
    if (batch > 1) {
      const int32_t count = static_cast<int32_t>(batch);
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
      CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &batch_stride,
                                                    sizeof(batch_stride)));
    }
  }
  ~LtLayout() { cublasLtMatrixLayoutDestroy(layout); }
  LtLayout(const LtLayout&) = delete;
  LtLayout& operator=(const LtLayout&) = delete;
};

struct LtMatmulDesc {
  cublasLtMatmulDesc_t desc = nullptr;
  LtMatmulDesc(cublasComputeType_t compute, cudaDataType_t scale, cublasOperation_t ta, cublasOperation_t tb) {
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, compute, scale));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  }
  ~LtMatmulDesc() { cublasLtMatmulDescDestroy(desc); }
  LtMatmulDesc(const LtMatmulDesc&) = delete;
  LtMatmulDesc& operator=(const LtMatmulDesc&) = delete;
};

struct LtPreference {
  cublasLtMatmulPreference_t pref = nullptr;
  LtPreference(uint64_t workspace, uint32_t align_a, uint32_t align_b, uint32_t align_c) {
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
                                                      sizeof(workspace)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                      sizeof(align_a)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                      sizeof(align_b)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                      sizeof(align_c)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                                      sizeof(align_c)));
  }
  ~LtPreference() { cublasLtMatmulPreferenceDestroy(pref); }
  LtPreference(const LtPreference&) = delete;
  LtPreference& operator=(const LtPreference&) = delete;
};

void check_int(int64_t v, const char* what, const Tensor& a, const Tensor& b) {
  LORY_CHECK(v <= INT_MAX, "matmul: ", what, " = ", v, " exceeds the 32-bit limit of cuBLAS: a is ", a.describe(),
             ", b is ", b.describe());
}

}  // namespace

GemmContext::GemmContext(int device, CachingAllocator& allocator) : device_(device), allocator_(allocator) {
  ensure_device(device_);
  CUBLAS_CHECK(cublasLtCreate(&lt_));
  CUBLAS_CHECK(cublasCreate(&blas_));
  workspace_ = allocator_.allocate(kWorkspaceBytes);
  // Both libraries share the workspace: every call is on the one stream, so
  // they never use it at the same time.
  CUBLAS_CHECK(cublasSetWorkspace(blas_, workspace_, kWorkspaceBytes));
}

GemmContext::~GemmContext() {
  // Errors are ignored here: a destructor must not throw, and there is
  // nothing left to do about them.
  if (blas_) cublasDestroy(blas_);
  if (lt_) cublasLtDestroy(lt_);
  allocator_.deallocate(workspace_);
}

void GemmContext::gemm(const Tensor& a, const Tensor& b, const Tensor& out, double beta, cudaStream_t stream) {
  LORY_CHECK(
      out.dtype() == a.dtype() || (out.dtype() == DType::f32 && (a.dtype() == DType::bf16 || a.dtype() == DType::f16)),
      "matmul: out must have the operands' dtype (or be f32 for bf16/f16 operands): a is ", a.describe(), ", out is ",
      out.describe());
  if (out.dtype() == DType::f64) {
    dgemm(a, b, out, beta, stream);
    return;
  }
  if (lt_matmul(a, b, out, beta, stream)) return;
  // No cuBLASLt algorithm for these pointer alignments (a view starting at an
  // odd offset): pack both operands into fresh, 512-byte aligned row-major
  // buffers. They live until the end of this call; their memory may be reused
  // afterwards because everything after is queued behind the GEMM.
  auto packed = [stream](const Tensor& x) {
    Tensor p = empty(x.shape(), TensorOptions{x.dtype(), x.device(), false});
    launch_copy(x, p, stream);
    return p;
  };
  LORY_CHECK(lt_matmul(packed(a), packed(b), out, beta, stream), "matmul: cuBLASLt has no algorithm for a ",
             a.describe(), " @ b ", b.describe(), ", even with packed operands");
}

// cuBLAS's A is our b (m = N, k = K), its B is our a (k = K, n = M), its C is
// out^T (N x M, ld N).
void GemmContext::dgemm(const Tensor& a, const Tensor& b, const Tensor& out, double beta, cudaStream_t stream) {
  const Operand oa = as_operand(a), ob = as_operand(b);
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  for (int64_t v : {M, N, K, B, oa.ld, ob.ld}) check_int(v, "a dimension", a, b);
  const double alpha = 1.0;
  CUBLAS_CHECK(cublasSetStream(blas_, stream));
  CUBLAS_CHECK(cublasDgemmStridedBatched(
      blas_, ob.op, oa.op, static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha,
      static_cast<const double*>(ob.ptr), static_cast<int>(ob.ld), ob.batch_stride, static_cast<const double*>(oa.ptr),
      static_cast<int>(oa.ld), oa.batch_stride, &beta, static_cast<double*>(out.data_ptr()), static_cast<int>(N),
      B == 1 ? 0 : M * N, static_cast<int>(B)));
}

bool GemmContext::lt_matmul(const Tensor& a, const Tensor& b, const Tensor& out, double beta, cudaStream_t stream) {
  const Operand oa = as_operand(a), ob = as_operand(b);
  const int64_t B = a.size(0), M = a.size(1), K = a.size(2), N = b.size(2);
  check_int(B, "the batch size", a, b);
  const cudaDataType_t type = cuda_type(a.dtype()), out_type = cuda_type(out.dtype());
  const cublasComputeType_t compute =
      (a.dtype() == DType::f32 && allow_tf32_) ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  const int64_t out_stride = B == 1 ? 0 : M * N;

  Key key;
  key.data_type = static_cast<int>(type);
  key.out_type = static_cast<int>(out_type);
  key.compute_type = static_cast<int>(compute);
  key.trans_a = static_cast<int>(ob.op);
  key.trans_b = static_cast<int>(oa.op);
  key.m = N, key.n = M, key.k = K;
  key.lda = ob.ld, key.ldb = oa.ld, key.ldc = N;
  key.stride_a = ob.batch_stride, key.stride_b = oa.batch_stride, key.stride_c = out_stride;
  key.batch = B;
  key.align_a = alignment_of(ob.ptr), key.align_b = alignment_of(oa.ptr), key.align_c = alignment_of(out.data_ptr());

  LtMatmulDesc desc(compute, CUDA_R_32F, ob.op, oa.op);
  LtLayout layout_a(type, ob.rows, ob.cols, ob.ld, B, ob.batch_stride);
  LtLayout layout_b(type, oa.rows, oa.cols, oa.ld, B, oa.batch_stride);
  LtLayout layout_c(out_type, N, M, N, B, out_stride);

  std::optional<cublasLtMatmulAlgo_t> algo;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = algos_.find(key);
    if (it != algos_.end()) {
      algo = it->second;
    } else {
      LtPreference pref(kWorkspaceBytes, key.align_a, key.align_b, key.align_c);
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      const cublasStatus_t status =
          cublasLtMatmulAlgoGetHeuristic(lt_, desc.desc, layout_a.layout, layout_b.layout, layout_c.layout,
                                         layout_c.layout, pref.pref, 1, &result, &found);
      // NOT_SUPPORTED means "no algorithm for this problem", like found == 0.
      if (status != CUBLAS_STATUS_NOT_SUPPORTED) CUBLAS_CHECK(status);
      if (status == CUBLAS_STATUS_SUCCESS && found > 0) algo = result.algo;
      algos_.emplace(key, algo);
    }
  }
  if (!algo) return false;
  const float alpha = 1.0f, beta_f = static_cast<float>(beta);
  CUBLAS_CHECK(cublasLtMatmul(lt_, desc.desc, &alpha, ob.ptr, layout_a.layout, oa.ptr, layout_b.layout, &beta_f,
                              out.data_ptr(), layout_c.layout, out.data_ptr(), layout_c.layout, &*algo, workspace_,
                              kWorkspaceBytes, stream));
  return true;
}

}  // namespace lory::cuda
