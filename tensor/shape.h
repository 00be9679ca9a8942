// shape.h — shapes, strides and the arithmetic on them that views and
// broadcasting need. Strides are in elements, not bytes (as in PyTorch).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lory {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
// Row-major ("C-contiguous") strides for a shape: the last dim has stride 1.
Strides contiguous_strides(const Shape& shape);
// "[4, 128]"
std::string shape_str(const Shape& shape);
// Maps a possibly negative dim into [0, ndim); the error names the op.
int64_t normalize_dim(int64_t dim, int64_t ndim, const char* op);
// NumPy broadcasting of two shapes; the error names the op and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Whether a and b broadcast together (no throw: callers name their operands in full).
bool shapes_broadcast(const Shape& a, const Shape& b);
// Whether `from` broadcasts to exactly `to` (as a source broadcasts to a destination).
bool broadcasts_to(const Shape& from, const Shape& to);

}  // namespace lory
