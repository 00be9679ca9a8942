// profiler.cpp — the scope stack, the per-(name, phase, layer) records, and
// the table (see profiler.h).
#include "tensor/profiler.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <thread>
#include <unordered_map>

#include "tensor/backend.h"
#include "tensor/error.h"

namespace lory::profiler {

namespace {

using Clock = std::chrono::steady_clock;

enum class Kind : uint8_t { op, node, region };

// What a Row is kept under. The views point into the Row itself once it is
// stored, or into the caller's strings for a lookup; equality and hashing
// are by text, so every Node named "MulBackward" finds the same Row.
struct Key {
  std::string_view name;
  Phase phase;
  std::string_view layer;
  bool operator==(const Key&) const = default;
};
struct KeyHash {
  size_t operator()(const Key& k) const {
    const std::hash<std::string_view> h;
    return (h(k.name) * 0x9e3779b97f4a7c15ULL) ^ (h(k.layer) * 31) ^ static_cast<size_t>(k.phase);
  }
};

struct Frame {
  Kind kind;
  Key key;
  Clock::time_point start;
  double child_s = 0;  // time of the timed scopes closed inside this one
};

struct State {
  std::thread::id owner;
  Backend* sync = nullptr;  // a GPU's backend when enable() was given one
  std::string device = "cpu";
  bool ever_synchronised = false;
  std::vector<Frame> frames;
  std::vector<Phase> phases;        // pushed by regions and nodes
  std::vector<const char*> layers;  // LayerScopes and nodes; nullptr: no layer
  std::deque<Row> rows;             // stable addresses: the index's keys view their strings
  std::unordered_map<Key, Row*, KeyHash> index;
  double wall_s = 0;
  Clock::time_point enabled_at;
};

State& state() {
  static State s;
  return s;
}

bool on_owner_thread(const State& s) { return std::this_thread::get_id() == s.owner; }

Clock::time_point now(State& s) {
  if (s.sync) s.sync->synchronize();
  return Clock::now();
}

std::string_view layer_view(const char* layer) { return layer ? std::string_view(layer) : std::string_view(); }

Phase current_phase(const State& s) {
  if (!s.phases.empty()) return s.phases.back();
  return s.layers.empty() ? Phase::other : Phase::forward;
}

bool open(State& s, Kind kind, std::string_view name, Phase phase, const char* layer) {
  s.frames.push_back(Frame{kind, Key{name, phase, layer_view(layer)}, {}, 0});
  s.frames.back().start = now(s);
  return true;
}

Row& row_for(State& s, const Key& key) {
  if (auto it = s.index.find(key); it != s.index.end()) return *it->second;
  Row& row = s.rows.emplace_back();
  row.name = std::string(key.name);
  row.phase = key.phase;
  row.layer = std::string(key.layer);
  s.index.emplace(Key{row.name, row.phase, row.layer}, &row);
  return row;
}

}  // namespace

const char* phase_name(Phase phase) {
  static const char* names[] = {"forward", "backward", "optimizer", "communication", "other"};
  return names[static_cast<int>(phase)];
}

namespace detail {

bool open_op(const char* name) {
  State& s = state();
  if (!on_owner_thread(s)) return false;
  // An op inside another op, or inside a backward, is part of that one's time.
  if (!s.frames.empty() && s.frames.back().kind != Kind::region) return false;
  return open(s, Kind::op, name, current_phase(s), s.layers.empty() ? nullptr : s.layers.back());
}

bool open_region(const char* name, Phase phase) {
  State& s = state();
  if (!on_owner_thread(s)) return false;
  s.phases.push_back(phase);
  return open(s, Kind::region, name, phase, s.layers.empty() ? nullptr : s.layers.back());
}

bool open_node(std::string_view name, const char* layer) {
  State& s = state();
  if (!on_owner_thread(s)) return false;
  s.phases.push_back(Phase::backward);
  // The Node's layer type is the current one while its backward runs (a
  // block that checkpoint runs again opens its own inside).
  s.layers.push_back(layer);
  return open(s, Kind::node, name, Phase::backward, layer);
}

void close() {
  State& s = state();
  const Clock::time_point end = now(s);
  const Frame f = s.frames.back();
  s.frames.pop_back();
  if (f.kind != Kind::op) s.phases.pop_back();
  if (f.kind == Kind::node) s.layers.pop_back();
  const double elapsed = std::chrono::duration<double>(end - f.start).count();
  Row& row = row_for(s, f.key);
  ++row.calls;
  row.total_s += elapsed;
  row.self_s += elapsed - f.child_s;
  if (!s.frames.empty()) s.frames.back().child_s += elapsed;
}

bool push_layer(const char* layer) {
  State& s = state();
  if (!on_owner_thread(s)) return false;
  s.layers.push_back(layer);
  return true;
}

void pop_layer() { state().layers.pop_back(); }

const char* top_layer() {
  const State& s = state();
  return on_owner_thread(s) && !s.layers.empty() ? s.layers.back() : nullptr;
}

}  // namespace detail

void enable(Device device) {
  State& s = state();
  LORY_CHECK(!enabled() || s.owner == std::this_thread::get_id(),
             "profiler::enable: the profiler is already recording on another thread");
  if (enabled()) return;
  s.owner = std::this_thread::get_id();
  s.sync = device.is_cuda() ? &backend_for(device) : nullptr;
  s.device = device.str();
  s.ever_synchronised = s.ever_synchronised || s.sync != nullptr;
  s.enabled_at = now(s);
  detail::on.store(true, std::memory_order_relaxed);
}

void disable() {
  State& s = state();
  if (!enabled()) return;
  s.wall_s += std::chrono::duration<double>(now(s) - s.enabled_at).count();
  detail::on.store(false, std::memory_order_relaxed);
}

void reset() {
  State& s = state();
  LORY_CHECK(s.frames.empty(), "profiler::reset: called inside an open scope (", s.frames.back().key.name, ")");
  s.index.clear();
  s.rows.clear();
  s.wall_s = 0;
  s.ever_synchronised = s.sync != nullptr && enabled();
  if (enabled()) s.enabled_at = now(s);
}

double LayerTotal::total_s() const {
  double t = 0;
  for (double x : self_s) t += x;
  return t;
}

double Summary::tracked_s() const {
  double t = 0;
  for (const Row& r : rows) t += r.self_s;
  return t;
}

double Summary::self_s(Phase phase) const {
  double t = 0;
  for (const Row& r : rows)
    if (r.phase == phase) t += r.self_s;
  return t;
}

std::vector<LayerTotal> Summary::layers() const {
  std::vector<LayerTotal> out;
  for (const Row& r : rows) {
    auto it = std::find_if(out.begin(), out.end(), [&](const LayerTotal& l) { return l.layer == r.layer; });
    if (it == out.end()) {
      out.push_back(LayerTotal{r.layer, {}});
      it = out.end() - 1;
    }
    it->self_s[static_cast<int>(r.phase)] += r.self_s;
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const LayerTotal& a, const LayerTotal& b) { return a.total_s() > b.total_s(); });
  return out;
}

const Row* Summary::find(std::string_view name, Phase phase, std::string_view layer) const {
  for (const Row& r : rows)
    if (r.name == name && r.phase == phase && r.layer == layer) return &r;
  return nullptr;
}

Summary summary(int64_t steps) {
  LORY_CHECK(steps >= 1, "profiler::summary: steps must be >= 1, got ", steps);
  State& s = state();
  Summary out;
  out.steps = steps;
  out.wall_s = s.wall_s + (enabled() ? std::chrono::duration<double>(Clock::now() - s.enabled_at).count() : 0.0);
  out.device = s.device;
  out.synchronised = s.ever_synchronised;
  out.rows.assign(s.rows.begin(), s.rows.end());
  std::stable_sort(out.rows.begin(), out.rows.end(), [](const Row& a, const Row& b) { return a.self_s > b.self_s; });
  return out;
}

namespace {

const char* layer_label(const std::string& layer) { return layer.empty() ? "-" : layer.c_str(); }

std::string json_string(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", x);
  return buf;
}

}  // namespace

void print_table(std::FILE* out, const Summary& s, size_t max_rows) {
  const double steps = static_cast<double>(s.steps);
  const double step_s = s.wall_s / steps;
  const double ms = 1e3 / steps;  // seconds over all steps -> ms per step
  auto pct = [&](double seconds) { return s.wall_s > 0 ? 100.0 * seconds / s.wall_s : 0.0; };
  if (!s.title.empty()) std::fprintf(out, "%s\n", s.title.c_str());
  std::fprintf(out, "profile: %lld step%s on %s, %.1f ms per step%s\n", static_cast<long long>(s.steps),
               s.steps == 1 ? "" : "s", s.device.c_str(), step_s * 1e3,
               s.synchronised ? " (GPU synchronised around every op: slower than an unprofiled step)" : "");

  std::fprintf(out, "\n%-14s %12s %8s\n", "phase", "self ms/step", "% step");
  for (int p = 0; p < kPhaseCount; ++p) {
    const double t = s.self_s(static_cast<Phase>(p));
    std::fprintf(out, "%-14s %12.3f %7.1f%%\n", phase_name(static_cast<Phase>(p)), t * ms, pct(t));
  }
  const double untracked = std::max(0.0, s.wall_s - s.tracked_s());
  std::fprintf(out, "%-14s %12.3f %7.1f%%   (host time outside every scope: module code, views, graph recording)\n",
               "untracked", untracked * ms, pct(untracked));

  std::fprintf(out, "\n%-14s %12s %12s %12s %12s %8s\n", "layer type", "forward ms", "backward ms",
               "other phases", "total ms", "% step");
  for (const LayerTotal& l : s.layers()) {
    const double fwd = l.self_s[static_cast<int>(Phase::forward)], bwd = l.self_s[static_cast<int>(Phase::backward)];
    double rest = 0;  // optimizer, communication, other
    for (int p = static_cast<int>(Phase::optimizer); p < kPhaseCount; ++p) rest += l.self_s[p];
    std::fprintf(out, "%-14s %12.3f %12.3f %12.3f %12.3f %7.1f%%\n", layer_label(l.layer), fwd * ms, bwd * ms,
                 rest * ms, l.total_s() * ms, pct(l.total_s()));
  }

  std::fprintf(out, "\n%-28s %-13s %-13s %10s %12s %13s %8s %10s\n", "op / backward node / region", "phase", "layer",
               "calls/step", "self ms/step", "total ms/step", "% step", "us/call");
  const size_t shown = std::min(max_rows, s.rows.size());
  for (size_t i = 0; i < shown; ++i) {
    const Row& r = s.rows[i];
    std::fprintf(out, "%-28s %-13s %-13s %10.1f %12.3f %13.3f %7.1f%% %10.1f\n", r.name.c_str(), phase_name(r.phase),
                 layer_label(r.layer), static_cast<double>(r.calls) / steps, r.self_s * ms, r.total_s * ms,
                 pct(r.self_s), r.calls ? 1e6 * r.total_s / static_cast<double>(r.calls) : 0.0);
  }
  if (shown < s.rows.size()) {
    double rest = 0;
    for (size_t i = shown; i < s.rows.size(); ++i) rest += s.rows[i].self_s;
    std::fprintf(out, "... %zu more rows, %.3f ms/step self (%.1f%%) together\n", s.rows.size() - shown, rest * ms,
                 pct(rest));
  }
  std::fflush(out);
}

std::string to_json(const Summary& s) {
  std::string j = "{\"title\": " + json_string(s.title) + ", \"steps\": " + std::to_string(s.steps) + ", \"wall_s\": " + json_number(s.wall_s) +
                  ", \"step_s\": " + json_number(s.wall_s / static_cast<double>(s.steps)) +
                  ", \"device\": " + json_string(s.device) +
                  ", \"synchronised\": " + (s.synchronised ? "true" : "false") + ",\n \"phases\": {";
  for (int p = 0; p < kPhaseCount; ++p)
    j += json_string(phase_name(static_cast<Phase>(p))) + ": " + json_number(s.self_s(static_cast<Phase>(p))) + ", ";
  j += "\"untracked\": " + json_number(std::max(0.0, s.wall_s - s.tracked_s())) + "},\n \"layers\": [";
  const std::vector<LayerTotal> layers = s.layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    j += std::string(i ? ",\n  " : "\n  ") + "{\"layer\": " + json_string(layers[i].layer);
    for (int p = 0; p < kPhaseCount; ++p)
      j += ", " + json_string(phase_name(static_cast<Phase>(p))) + ": " + json_number(layers[i].self_s[p]);
    j += ", \"total_s\": " + json_number(layers[i].total_s()) + "}";
  }
  j += "],\n \"rows\": [";
  for (size_t i = 0; i < s.rows.size(); ++i) {
    const Row& r = s.rows[i];
    j += std::string(i ? ",\n  " : "\n  ") + "{\"name\": " + json_string(r.name) +
         ", \"phase\": " + json_string(phase_name(r.phase)) + ", \"layer\": " + json_string(r.layer) +
         ", \"calls\": " + std::to_string(r.calls) + ", \"self_s\": " + json_number(r.self_s) +
         ", \"total_s\": " + json_number(r.total_s) + "}";
  }
  return j + "]}\n";
}

}  // namespace lory::profiler
