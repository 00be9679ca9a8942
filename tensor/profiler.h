// profiler.h — where the time of a training step goes: per op, per backward
// node, per layer type, and per phase (forward, backward, optimizer, ...),
// printed as one table (torch.profiler's key_averages, for this engine).
//
// Four kinds of scope feed it, each an RAII object that costs one branch on a
// global flag while the profiler is off (no clock, no allocation):
//   OpScope      every public op that launches a kernel (tensor/ops/*.cpp,
//                the in-place methods of tensor.cpp), under the op's name:
//                "matmul", "swiglu", "rms_norm". An op that another op calls
//                (bmm under matmul, the casts under mul) is part of the outer
//                op's time, not a row of its own, so a row is what one call
//                at the user's level costs; views cost nothing and have none.
//   NodeScope    the autograd engine (autograd/engine.cpp) around each Node's
//                backward, under the Node's name ("SwigluBackward"), in phase
//                backward. Ops called inside a backward are part of its time.
//   Region       a named stretch of the trainer with its phase ("adamw_step",
//                optimizer; "reduce_scatter", communication). Ops inside a
//                region are rows of their own; the region keeps the rest.
//   LayerScope   set by the model (nn/lory_lm.cpp) around each layer:
//                "embedding", "attention", "norm", "ffn", "lory_ffn",
//                "lm_head", "loss". The innermost one is the layer type of
//                every op that runs inside it, and record() (tensor/graph.h)
//                stores it in the Node, so the Node's backward is charged to
//                the same layer type.
// Nested timed scopes give each row a total time and a self time (total less
// the timed scopes inside it); self times add up to at most the profiled wall
// time, and what they leave ("untracked") is the host work outside every
// scope: module code, views, the graph's bookkeeping, the data loader.
//
// An op's phase: the innermost Region or NodeScope decides; with none open,
// an op inside a LayerScope is forward and any other op is "other" (the
// trainer's loss scaling, a batch copied to the device).
//
// GPUs: kernels run asynchronously, so a host clock around a launch measures
// the launch, not the kernel. When enable() is given a CUDA device, every
// timed scope synchronises that device when it opens and when it closes.
// That serialises the GPU with the host (no launch runs ahead), which is the
// price of per-op times from the host: the profiled step is slower than an
// unprofiled one, and the table says so ("synchronised").
//
// Use (one thread: the one that called enable(); scopes on other threads,
// the data loader's, are ignored):
//   profiler::enable(device);           // records from here (and clocks the wall time)
//   ... train `steps` steps ...
//   profiler::disable();
//   profiler::print_table(stdout, profiler::summary(steps));
// enable()/disable() may alternate (the trainer profiles only its steps, not
// the evaluation between them); records accumulate until reset().
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "tensor/device.h"

namespace lory::profiler {

enum class Phase : uint8_t { forward, backward, optimizer, communication, other };
inline constexpr int kPhaseCount = 5;
const char* phase_name(Phase phase);

namespace detail {
inline std::atomic<bool> on{false};
bool open_op(const char* name);
bool open_region(const char* name, Phase phase);
bool open_node(std::string_view name, const char* layer);
void close();
bool push_layer(const char* layer);
void pop_layer();
const char* top_layer();
}  // namespace detail

inline bool enabled() { return detail::on.load(std::memory_order_relaxed); }

// Starts (or resumes) recording. `device`: when a GPU, it is synchronised
// around every timed scope (see above). Clears nothing: see reset().
void enable(Device device = cpu_device());
// Stops recording; the wall time since enable() is added to the profile's.
void disable();
// Forgets every record and the wall time (not while a scope is open).
void reset();

// The layer type of the innermost LayerScope: what record() stores in a
// Node. nullptr when the profiler is off or no layer is open.
inline const char* current_layer() { return enabled() ? detail::top_layer() : nullptr; }

class OpScope {
 public:
  explicit OpScope(const char* op) : open_(enabled() && detail::open_op(op)) {}
  ~OpScope() {
    if (open_) detail::close();
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  bool open_;
};

class Region {
 public:
  Region(const char* name, Phase phase) : open_(enabled() && detail::open_region(name, phase)) {}
  ~Region() {
    if (open_) detail::close();
  }
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

 private:
  bool open_;
};

// `name` must outlive the scope (the engine passes the Node's name).
class NodeScope {
 public:
  NodeScope(std::string_view name, const char* layer) : open_(enabled() && detail::open_node(name, layer)) {}
  ~NodeScope() {
    if (open_) detail::close();
  }
  NodeScope(const NodeScope&) = delete;
  NodeScope& operator=(const NodeScope&) = delete;

 private:
  bool open_;
};

// `layer` must be a string that lives as long as the program (a literal).
class LayerScope {
 public:
  explicit LayerScope(const char* layer) : pushed_(enabled() && detail::push_layer(layer)) {}
  ~LayerScope() {
    if (pushed_) detail::pop_layer();
  }
  LayerScope(const LayerScope&) = delete;
  LayerScope& operator=(const LayerScope&) = delete;

 private:
  bool pushed_;
};

// One row of the table: everything recorded under one (name, phase, layer).
struct Row {
  std::string name;   // op ("matmul"), Node ("MatmulBackward") or region ("adamw_step")
  Phase phase = Phase::other;
  std::string layer;  // layer type, "" outside every layer
  int64_t calls = 0;
  double total_s = 0;  // wall time inside the scope, over every call
  double self_s = 0;   // total_s less the timed scopes nested in it
};

// Self time of one layer type per phase.
struct LayerTotal {
  std::string layer;  // "" outside every layer
  double self_s[kPhaseCount] = {};
  double total_s() const;
};

struct Summary {
  std::string title;      // the table's first line, when given (what was profiled)
  std::vector<Row> rows;  // by self time, largest first
  int64_t steps = 1;      // what "per step" divides by
  double wall_s = 0;      // time between enable() and disable(), summed
  std::string device;     // "cpu", "cuda:0"
  bool synchronised = false;

  double tracked_s() const;         // Σ self time: the wall time inside timed scopes
  double self_s(Phase phase) const;
  std::vector<LayerTotal> layers() const;  // by total self time, largest first
  const Row* find(std::string_view name, Phase phase, std::string_view layer) const;  // nullptr if absent
};

// What has been recorded since the last reset(), `steps` steps of it.
Summary summary(int64_t steps);

// The phase totals, the layer types, and the `max_rows` rows with the most
// self time, in ms per step and % of the step.
void print_table(std::FILE* out, const Summary& summary, size_t max_rows = 30);
// The same as one JSON object (every row; seconds over all steps).
std::string to_json(const Summary& summary);

}  // namespace lory::profiler
