// creation.cpp — new tensors: empty/zeros/ones/full/arange, from host vectors,
// and random numbers from the global counter-based generator.
#include <cmath>
#include <cstring>
#include <mutex>

#include "tensor/ops/op_util.h"
#include "tensor/philox.h"

namespace lory {

using namespace ops_detail;

Tensor empty(const Shape& shape, TensorOptions options) {
  for (int64_t s : shape)
    LORY_CHECK(s >= 0, "empty: negative dimension in shape ", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(options.dtype),
                                            options.device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = options.dtype;
  Tensor t(std::move(impl));
  if (options.requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor full(const Shape& shape, double value, TensorOptions options) {
  profiler::OpScope timed("full");
  const bool requires_grad = options.requires_grad;
  options.requires_grad = false;
  Tensor t = empty(shape, options);
  if (t.numel() > 0) kernels(t).fill(t, value);
  if (requires_grad) t.set_requires_grad(true);
  return t;
}

Tensor zeros(const Shape& shape, TensorOptions options) { return full(shape, 0.0, options); }
Tensor ones(const Shape& shape, TensorOptions options) { return full(shape, 1.0, options); }
Tensor scalar_tensor(double value, TensorOptions options) { return full({}, value, options); }
Tensor empty_like(const Tensor& t) { return empty(t.shape(), {t.dtype(), t.device(), false}); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), {t.dtype(), t.device(), false}); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), {t.dtype(), t.device(), false}); }

Tensor arange(double start, double end, double step, TensorOptions options) {
  profiler::OpScope timed("arange");
  LORY_CHECK(step != 0.0, "arange: step must be nonzero");
  LORY_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step), "arange: start=", start,
             ", end=", end, ", step=", step, " must be finite");
  const double n = std::ceil((end - start) / step);
  const int64_t count = n > 0 ? static_cast<int64_t>(n) : 0;
  Tensor t = empty({count}, {options.dtype, options.device, false});
  if (count > 0) kernels(t).arange(t, start, step);
  if (options.requires_grad) t.set_requires_grad(true);
  return t;
}

namespace {
template <typename T>
constexpr DType host_dtype() {
  if constexpr (std::is_same_v<T, float>) return DType::f32;
  else if constexpr (std::is_same_v<T, double>) return DType::f64;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::i32;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::i64;
  else if constexpr (std::is_same_v<T, uint8_t>) return DType::u8;
  else static_assert(sizeof(T) == 0, "from_vector: unsupported element type");
}
}  // namespace

template <typename T>
Tensor from_vector(const std::vector<T>& values, const Shape& shape, TensorOptions options) {
  LORY_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
             " values do not fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  Tensor host;
  if constexpr (std::is_same_v<T, bool>) {
    host = empty(shape, {DType::boolean, cpu_device(), false});
    auto* p = static_cast<uint8_t*>(host.data_ptr());
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i] ? 1 : 0;
  } else {
    host = empty(shape, {host_dtype<T>(), cpu_device(), false});
    if (!values.empty()) std::memcpy(host.data_ptr(), values.data(), values.size() * sizeof(T));
  }
  Tensor t = host.to(options.dtype).to(options.device);  // host is a fresh leaf: no graph is recorded
  if (options.requires_grad) t.set_requires_grad(true);
  return t;
}
template Tensor from_vector(const std::vector<float>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<double>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<int32_t>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<int64_t>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<uint8_t>&, const Shape&, TensorOptions);
template Tensor from_vector(const std::vector<bool>&, const Shape&, TensorOptions);

// ---- the global generator ----
// One (seed, offset) pair: a draw of n elements uses counters [offset, offset
// + ceil(n/4)) and then moves offset past them, so draws never overlap and a
// seed fixes every number of a run on any device.
namespace {
std::mutex generator_mutex;
GeneratorState generator{0x5EED, 0};

GeneratorState reserve(int64_t n) {
  std::lock_guard<std::mutex> lock(generator_mutex);
  GeneratorState at = generator;
  generator.offset += philox::offset_advance(static_cast<uint64_t>(n));
  return at;
}
}  // namespace

void manual_seed(uint64_t seed) {
  std::lock_guard<std::mutex> lock(generator_mutex);
  generator = GeneratorState{seed, 0};
}
GeneratorState generator_state() {
  std::lock_guard<std::mutex> lock(generator_mutex);
  return generator;
}
void set_generator_state(GeneratorState state) {
  std::lock_guard<std::mutex> lock(generator_mutex);
  generator = state;
}

Tensor random_with_key(const Shape& shape, RandomDist dist, uint64_t seed, uint64_t offset, double a, double b,
                       TensorOptions options) {
  profiler::OpScope timed("random");
  LORY_CHECK(is_floating(options.dtype), "random: dtype must be floating, got ", dtype_name(options.dtype));
  if (dist == RandomDist::normal) LORY_CHECK(b >= 0, "normal: std must be >= 0, got ", b);
  Tensor t = empty(shape, {options.dtype, options.device, false});
  if (t.numel() > 0) kernels(t).random(t, dist, seed, offset, a, b);
  if (options.requires_grad) t.set_requires_grad(true);
  return t;
}

static Tensor draw(const Shape& shape, RandomDist dist, double a, double b, TensorOptions options) {
  const GeneratorState at = reserve(shape_numel(shape));
  return random_with_key(shape, dist, at.seed, at.offset, a, b, options);
}

Tensor randn(const Shape& shape, TensorOptions options) { return draw(shape, RandomDist::normal, 0, 1, options); }
Tensor rand(const Shape& shape, TensorOptions options) { return draw(shape, RandomDist::uniform, 0, 1, options); }
Tensor normal(const Shape& shape, double mean, double std, TensorOptions options) {
  return draw(shape, RandomDist::normal, mean, std, options);
}
Tensor uniform(const Shape& shape, double low, double high, TensorOptions options) {
  LORY_CHECK(low <= high, "uniform: low ", low, " > high ", high);
  return draw(shape, RandomDist::uniform, low, high, options);
}

}  // namespace lory
