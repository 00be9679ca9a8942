// rope.cu — rotary position embedding, HF LLaMA "rotate_half" layout, as in
// tensor/cpu/rope.cpp: for pair i in [0, Dh/2) at position p = pos_offset + l,
//   angle = p * theta^(-2i / Dh)
//   out[i]        = x[i] cos(angle) - x[i + Dh/2] sin(angle)
//   out[i + Dh/2] = x[i + Dh/2] cos(angle) + x[i] sin(angle)
// and the inverse (the backward) rotates by -angle.
//
// Angles are computed in f64 like the CPU's (an f32 angle at position 4096 is
// off by ~2e-4 rad), once per (position, pair) into a small cos/sin table
// [L, Dh/2] of the compute type; the rotation kernel then reads x once and
// writes out once, one thread per pair. The table costs L * Dh/2 sincos in f64,
// which is nothing next to the B * L * H rows it serves.
#include <cmath>

#include "cuda/check.h"
#include "cuda/cuda_backend.h"
#include "cuda/element.cuh"
#include "cuda/strided_index.cuh"
#include "tensor/kernel_args.h"
#include "tensor/tensor.h"

namespace lory::cuda {

namespace {

template <typename C>
__global__ void rope_table_kernel(C* cos_t, C* sin_t, int64_t L, int64_t half, int64_t Dh, int64_t pos_offset,
                                  double theta, double sign) {
  LORY_GRID_STRIDE_LOOP(e, L * half) {
    const int64_t l = e / half, i = e - l * half;
    const double inv_freq = pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(Dh));
    const double angle = static_cast<double>(pos_offset + l) * inv_freq;
    double s, c;
    sincos(angle, &s, &c);
    cos_t[e] = static_cast<C>(c);
    sin_t[e] = static_cast<C>(sign * s);
  }
}

// x, out: [B, L, H, Dh] contiguous; one thread per (row, pair).
template <typename T>
__global__ void rope_kernel(const T* x, T* out, const float_math_t<T>* cos_t, const float_math_t<T>* sin_t,
                            int64_t rows, int64_t L, int64_t H, int64_t half) {
  using C = float_math_t<T>;
  LORY_GRID_STRIDE_LOOP(e, rows * half) {
    const int64_t row = e / half, i = e - row * half;
    const int64_t l = (row / H) % L;
    const C c = cos_t[l * half + i], s = sin_t[l * half + i];
    const T* xr = x + row * 2 * half;
    T* orow = out + row * 2 * half;
    const C x1 = cast<C>(xr[i]), x2 = cast<C>(xr[i + half]);
    orow[i] = cast<T>(x1 * c - x2 * s);
    orow[i + half] = cast<T>(x2 * c + x1 * s);
  }
}

}  // namespace

void launch_rope(const Tensor& x, const Tensor& out, int64_t pos_offset, double theta, bool inverse,
                 cudaStream_t stream) {
  const char* kernel = inverse ? "rope_backward" : "rope";
  check_rope_args(x, out, kernel);
  const int64_t B = x.size(0), L = x.size(1), H = x.size(2), Dh = x.size(3), half = Dh / 2;
  if (x.numel() == 0) return;
  dispatch_dtype(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_floating_point_v<T> || is_half_v<T>) {
      using C = float_math_t<T>;
      const DType table_type = std::is_same_v<C, double> ? DType::f64 : DType::f32;
      Tensor cos_t = empty({L, half}, TensorOptions{table_type, x.device(), false});
      Tensor sin_t = empty({L, half}, TensorOptions{table_type, x.device(), false});
      rope_table_kernel<C><<<blocks_for(L * half), kThreads, 0, stream>>>(
          static_cast<C*>(cos_t.data_ptr()), static_cast<C*>(sin_t.data_ptr()), L, half, Dh, pos_offset, theta,
          inverse ? -1.0 : 1.0);
      CUDA_CHECK_LAUNCH();
      const int64_t rows = B * L * H;
      rope_kernel<T><<<blocks_for(rows * half), kThreads, 0, stream>>>(
          static_cast<const T*>(x.data_ptr()), static_cast<T*>(out.data_ptr()), static_cast<const C*>(cos_t.data_ptr()),
          static_cast<const C*>(sin_t.data_ptr()), rows, L, H, half);
      CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace lory::cuda

namespace lory {

void CudaBackend::rope(const Tensor& x, Tensor& out, int64_t pos_offset, double theta, bool inverse) {
  cuda::launch_rope(x, out, pos_offset, theta, inverse, enter(inverse ? "rope_backward" : "rope", {&x, &out}));
}

}  // namespace lory
