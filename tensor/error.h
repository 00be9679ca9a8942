// error.h — the one exception type of the engine and the checks that throw it.
//
// Every error a user can cause (a shape mismatch, a bad dtype, a freed graph)
// throws lory::Error with a message that names the operation and the values
// involved, e.g.
//   matmul: inner dims differ: a is [4, 128] (bf16, cuda:0), b is [256, 64] (bf16, cuda:0)
// Internal invariants use the same macro; there is no separate assert path, so
// Release builds keep their checks (they are cheap next to any kernel).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lory {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {
template <typename... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

// Throws lory::Error built from the streamed arguments.
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(detail::concat(args...));
}

}  // namespace lory

// LORY_CHECK(cond, "op: what went wrong: ", values...) — throws lory::Error when cond is false.
#define LORY_CHECK(cond, ...)              \
  do {                                     \
    if (!(cond)) ::lory::fail(__VA_ARGS__); \
  } while (0)
