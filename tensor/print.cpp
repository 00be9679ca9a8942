// print.cpp — a PyTorch-like repr:
//   tensor([[ 0.1000, -1.2000],
//           [ 3.0000,  4.0000]], dtype=f32, device=cpu, shape=[2, 2])
// Large tensors show the first and last 3 entries of each dim around "...".
#include <cmath>
#include <cstdio>
#include <sstream>

#include "tensor/graph.h"
#include "tensor/ops.h"

namespace lory {

namespace {

constexpr int64_t kSummarizeAbove = 1000;  // elements; PyTorch's default threshold
constexpr int64_t kEdgeItems = 3;

struct Printer {
  std::vector<double> values;
  Shape shape;
  Strides strides;
  bool integral = false, scientific = false, summarize = false;
  size_t width = 0;

  std::string format(double v) const {
    char buf[64];
    if (integral) std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    else if (std::isnan(v)) std::snprintf(buf, sizeof buf, "nan");
    else if (std::isinf(v)) std::snprintf(buf, sizeof buf, v > 0 ? "inf" : "-inf");
    else std::snprintf(buf, sizeof buf, scientific ? "%.4e" : "%.4f", v);
    return buf;
  }

  // Indices of dim d that are shown (-1 marks the "..." gap).
  std::vector<int64_t> shown(int64_t d) const {
    std::vector<int64_t> idx;
    const int64_t n = shape[d];
    if (summarize && n > 2 * kEdgeItems) {
      for (int64_t i = 0; i < kEdgeItems; ++i) idx.push_back(i);
      idx.push_back(-1);
      for (int64_t i = n - kEdgeItems; i < n; ++i) idx.push_back(i);
    } else {
      for (int64_t i = 0; i < n; ++i) idx.push_back(i);
    }
    return idx;
  }

  void visit_widths(size_t d, int64_t base) {
    if (d == shape.size()) {
      width = std::max(width, format(values[base]).size());
      return;
    }
    for (int64_t i : shown(d))
      if (i >= 0) visit_widths(d + 1, base + i * strides[d]);
  }

  void print(std::ostream& os, size_t d, int64_t base, int indent) const {
    if (d == shape.size()) {
      const std::string s = format(values[base]);
      os << std::string(width - s.size(), ' ') << s;
      return;
    }
    os << '[';
    const auto idx = shown(d);
    for (size_t k = 0; k < idx.size(); ++k) {
      if (k > 0) {
        os << ',';
        if (d + 1 == shape.size()) os << ' ';
        else os << std::string(shape.size() - d - 1, '\n') << std::string(indent + d + 1, ' ');
      }
      if (idx[k] < 0) os << "...";
      else print(os, d + 1, base + idx[k] * strides[d], indent);
    }
    os << ']';
  }
};

}  // namespace

std::string Tensor::str() const {
  if (!defined()) return "tensor(undefined)";
  NoGradGuard no_grad;
  Printer p;
  p.values = to_vector<double>();
  p.shape = shape();
  p.strides = contiguous_strides(p.shape);
  p.integral = !is_floating(dtype());
  p.summarize = numel() > kSummarizeAbove;
  double max_abs = 0, min_abs = INFINITY;
  for (double v : p.values) {
    if (!std::isfinite(v)) continue;
    max_abs = std::max(max_abs, std::abs(v));
    if (v != 0) min_abs = std::min(min_abs, std::abs(v));
  }
  p.scientific = !p.integral && (max_abs >= 1e6 || (min_abs < 1e-4 && min_abs != INFINITY));
  std::ostringstream os;
  os << "tensor(";
  if (numel() == 0) {
    os << "[]";
  } else {
    p.visit_widths(0, 0);
    p.print(os, 0, 0, 7);
  }
  os << ", dtype=" << dtype_name(dtype()) << ", device=" << device().str() << ", shape=" << shape_str(shape());
  if (requires_grad()) os << (grad_fn() ? ", grad_fn=" + grad_fn()->name : std::string(", requires_grad=true"));
  os << ')';
  return os.str();
}

}  // namespace lory
