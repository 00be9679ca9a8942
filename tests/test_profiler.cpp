// The profiler (tensor/profiler.h): what a forward and backward of a small
// LoryLM is charged to (op and Node names, phases, layer types, exact call
// counts), how nested scopes split total and self time, that times add up,
// and that an idle profiler records nothing. The trainer's --profile is
// tested in tests/test_train.cpp.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "nn/lory_lm.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"

using namespace lory;
using namespace lory::nn;
using profiler::Phase;

namespace {

// Every test starts from an empty, idle profiler and leaves one behind.
struct CleanProfiler {
  CleanProfiler() {
    profiler::disable();
    profiler::reset();
  }
  ~CleanProfiler() {
    profiler::disable();
    profiler::reset();
  }
};

// tiny preset (2 layers, d 32, 4 heads, f 48, vocab 64, segments of 4), dense or with 4 experts.
LoryConfig tiny(int64_t experts) {
  LoryConfig c = preset("tiny");
  c.num_experts = experts;
  return c;
}

// [2, 10] token ids: a loss over 2 x 9 predicted tokens.
Tensor tokens() {
  std::vector<int64_t> ids(20);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 29 + i * i * 7 + 3) % 64);
  return from_vector(ids, {2, 10}, {DType::i64});
}

// One forward and backward of `model`'s loss, profiled.
profiler::Summary profile_loss_and_backward(LoryLM& model) {
  const Tensor t = tokens();
  profiler::enable();
  model.loss(t).backward();
  profiler::disable();
  return profiler::summary(1);
}

int64_t calls(const profiler::Summary& s, const char* name, Phase phase, const char* layer) {
  const profiler::Row* row = s.find(name, phase, layer);
  return row ? row->calls : 0;
}

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Times are sums of differences of one clock: they agree to rounding.
constexpr double kRounding = 1e-9;

// What every summary must satisfy: non-negative times, self within total,
// every row within the wall time, the phases adding up to the tracked time.
void check_times_consistent(const profiler::Summary& s) {
  CHECK(s.wall_s > 0);
  double self_sum = 0;
  for (const profiler::Row& r : s.rows) {
    INFO(r.name, " ", profiler::phase_name(r.phase), " ", r.layer);
    CHECK(r.calls >= 1);
    CHECK(r.self_s >= -kRounding);
    CHECK(r.self_s <= r.total_s + kRounding);
    CHECK(r.total_s <= s.wall_s + kRounding);
    self_sum += r.self_s;
  }
  CHECK(self_sum == doctest::Approx(s.tracked_s()).epsilon(1e-12));
  CHECK(self_sum <= s.wall_s + kRounding);
  double phases = 0;
  for (int p = 0; p < profiler::kPhaseCount; ++p) phases += s.self_s(static_cast<Phase>(p));
  CHECK(phases == doctest::Approx(self_sum).epsilon(1e-12));
  double layers = 0;
  for (const profiler::LayerTotal& l : s.layers()) layers += l.total_s();
  CHECK(layers == doctest::Approx(self_sum).epsilon(1e-12));
  for (size_t i = 1; i < s.rows.size(); ++i) CHECK(s.rows[i - 1].self_s >= s.rows[i].self_s);
}

}  // namespace

TEST_CASE("profiler: while off, a forward and backward records nothing and Nodes carry no layer type") {
  CleanProfiler clean;
  LoryLM model(tiny(0));
  const Tensor loss = model.loss(tokens());
  CHECK(loss.grad_fn()->layer == nullptr);
  loss.backward();
  const profiler::Summary s = profiler::summary(1);
  CHECK(s.rows.empty());
  CHECK(s.wall_s == 0);
  CHECK(s.tracked_s() == 0);
  CHECK(profiler::current_layer() == nullptr);
  {
    profiler::LayerScope layer("attention");  // off: pushes nothing
    CHECK(profiler::current_layer() == nullptr);
  }
}

TEST_CASE("profiler: a dense LoryLM's forward and backward are charged to their ops, Nodes and layer types") {
  CleanProfiler clean;
  LoryLM model(tiny(0));  // 2 layers
  const profiler::Summary s = profile_loss_and_backward(model);
  check_times_consistent(s);

  // Forward: one row per op and layer type, counted exactly (2 layers).
  CHECK(calls(s, "embedding", Phase::forward, "embedding") == 1);
  CHECK(calls(s, "rms_norm", Phase::forward, "norm") == 3);      // input_layernorm x 2, model.norm
  CHECK(calls(s, "add_rms_norm", Phase::forward, "norm") == 2);  // residual add + post_attention_layernorm
  CHECK(calls(s, "matmul", Phase::forward, "attention") == 8);   // q, k, v, o x 2
  CHECK(calls(s, "rope", Phase::forward, "attention") == 4);     // q, k x 2
  CHECK(calls(s, "scaled_dot_product_attention", Phase::forward, "attention") == 2);
  CHECK(calls(s, "matmul", Phase::forward, "ffn") == 6);  // gate, up, down x 2
  CHECK(calls(s, "swiglu", Phase::forward, "ffn") == 2);
  CHECK(calls(s, "add", Phase::forward, "residual") == 2);
  CHECK(calls(s, "matmul", Phase::forward, "lm_head") == 1);
  CHECK(calls(s, "cross_entropy", Phase::forward, "loss") == 1);

  // Backward: each Node under the layer type it was recorded in.
  CHECK(calls(s, "CrossEntropyBackward", Phase::backward, "loss") == 1);
  CHECK(calls(s, "BmmBackward", Phase::backward, "lm_head") == 1);
  CHECK(calls(s, "BmmBackward", Phase::backward, "ffn") == 6);
  CHECK(calls(s, "SwigluBackward", Phase::backward, "ffn") == 2);
  CHECK(calls(s, "BmmBackward", Phase::backward, "attention") == 8);
  CHECK(calls(s, "AttentionBackward", Phase::backward, "attention") == 2);
  CHECK(calls(s, "RopeBackward", Phase::backward, "attention") == 4);
  CHECK(calls(s, "RmsNormBackward", Phase::backward, "norm") == 5);  // 3 rms_norm + 2 add_rms_norm
  CHECK(calls(s, "AddBackward", Phase::backward, "norm") == 2);      // add_rms_norm's add
  CHECK(calls(s, "AddBackward", Phase::backward, "residual") == 2);
  CHECK(calls(s, "IndexSelectBackward", Phase::backward, "embedding") == 1);
  CHECK(calls(s, "AccumulateGrad", Phase::backward, "") == static_cast<int64_t>(model.parameters().size()));
  CHECK(calls(s, "autograd_engine", Phase::backward, "") == 1);

  // An op inside another op, or inside a backward, has no row of its own:
  // matmul's bmm, BmmBackward's two bmm.
  for (int p = 0; p < profiler::kPhaseCount; ++p) CHECK(s.find("bmm", static_cast<Phase>(p), "ffn") == nullptr);
  for (const profiler::Row& r : s.rows) {
    INFO(r.name, " ", profiler::phase_name(r.phase), " ", r.layer);
    CHECK(r.phase != Phase::optimizer);
    CHECK(r.phase != Phase::communication);
    if (r.phase == Phase::forward) {
      CHECK(!ends_with(r.name, "Backward"));
      CHECK(!r.layer.empty());  // every forward op ran inside a layer
    }
    if (r.phase == Phase::backward)  // Nodes, the sweep, and the seed gradient (ones)
      CHECK((ends_with(r.name, "Backward") || r.name == "AccumulateGrad" || r.name == "autograd_engine" ||
             r.name == "full"));
    if (r.phase == Phase::other) CHECK(r.layer.empty());
  }
  // The sweep holds every backward row: its total less its self time is
  // exactly their totals (no Node runs inside another here).
  const profiler::Row* sweep = s.find("autograd_engine", Phase::backward, "");
  REQUIRE(sweep != nullptr);
  double inside = 0;
  for (const profiler::Row& r : s.rows)
    if (r.phase == Phase::backward && &r != sweep) inside += r.total_s;
  CHECK(sweep->total_s - sweep->self_s == doctest::Approx(inside).epsilon(1e-9));
  CHECK(s.self_s(Phase::backward) == doctest::Approx(sweep->total_s).epsilon(1e-9));
  // Every layer type of the model appears, in both phases where it has a backward.
  for (const char* layer : {"embedding", "attention", "ffn", "norm", "lm_head", "loss"}) {
    INFO(layer);
    const auto layers = s.layers();
    const auto it = std::find_if(layers.begin(), layers.end(), [&](const auto& l) { return l.layer == layer; });
    REQUIRE(it != layers.end());
    CHECK(it->self_s[static_cast<int>(Phase::forward)] > 0);
    CHECK(it->self_s[static_cast<int>(Phase::backward)] > 0);
  }
}

TEST_CASE("profiler: a Lory model's routing, merging and expert FFN are charged to lory_ffn") {
  CleanProfiler clean;
  LoryLM model(tiny(4));  // 2 Lory layers, segments of 4 tokens
  const profiler::Summary s = profile_loss_and_backward(model);
  check_times_consistent(s);
  CHECK(calls(s, "segment_mean", Phase::forward, "lory_ffn") == 2);
  CHECK(calls(s, "SegmentMeanBackward", Phase::backward, "lory_ffn") == 2);
  CHECK(calls(s, "softmax", Phase::forward, "lory_ffn") == 2);  // the router's
  CHECK(calls(s, "SoftmaxBackward", Phase::backward, "lory_ffn") == 2);
  CHECK(calls(s, "matmul", Phase::forward, "attention") == 8);  // attention as in the dense model
  for (const profiler::Row& r : s.rows) {
    INFO(r.name);
    CHECK(r.layer != "ffn");
  }
  const auto layers = s.layers();
  const auto lory = std::find_if(layers.begin(), layers.end(), [](const auto& l) { return l.layer == "lory_ffn"; });
  REQUIRE(lory != layers.end());
  CHECK(lory->self_s[static_cast<int>(Phase::forward)] > 0);
  CHECK(lory->self_s[static_cast<int>(Phase::backward)] > 0);
}

TEST_CASE("profiler: nested scopes: a region keeps what its ops leave, an op inside an op is the outer op's time") {
  CleanProfiler clean;
  const Tensor a = randn({16, 8}), b = randn({8, 4});
  profiler::enable();
  {
    profiler::Region region("outer", Phase::optimizer);
    sleep_ms(20);
    (void)matmul(a, b);
    (void)matmul(a, b);
    {
      profiler::OpScope op("sleepy_op");
      sleep_ms(30);
      profiler::OpScope inner("hidden_op");  // inside an op: part of sleepy_op
      sleep_ms(5);
    }
  }
  profiler::disable();
  const profiler::Summary s = profiler::summary(1);
  check_times_consistent(s);
  REQUIRE(s.rows.size() == 3);
  const profiler::Row* outer = s.find("outer", Phase::optimizer, "");
  const profiler::Row* mm = s.find("matmul", Phase::optimizer, "");  // a region's phase is its ops' phase
  const profiler::Row* sleepy = s.find("sleepy_op", Phase::optimizer, "");
  REQUIRE(outer != nullptr);
  REQUIRE(mm != nullptr);
  REQUIRE(sleepy != nullptr);
  CHECK(outer->calls == 1);
  CHECK(mm->calls == 2);
  CHECK(sleepy->calls == 1);
  CHECK(sleepy->total_s >= 0.035);
  CHECK(sleepy->self_s == sleepy->total_s);  // hidden_op is not timed apart
  CHECK(outer->total_s >= 0.055);
  CHECK(outer->self_s >= 0.02);
  CHECK(outer->self_s == doctest::Approx(outer->total_s - mm->total_s - sleepy->total_s).epsilon(1e-9));
  CHECK(s.rows[0].name == "sleepy_op");  // the largest self time first
  CHECK(s.wall_s >= outer->total_s);
}

TEST_CASE("profiler: an op is forward inside a layer, other outside; record() stores the layer in the Node") {
  CleanProfiler clean;
  const Tensor x = randn({4}, {DType::f32, cpu_device(), true});
  profiler::enable();
  const Tensor outside = x * 2.0;
  Tensor inside;
  {
    profiler::LayerScope layer("attention");
    CHECK(std::strcmp(profiler::current_layer(), "attention") == 0);
    {
      profiler::LayerScope inner("norm");  // the innermost layer wins
      CHECK(std::strcmp(profiler::current_layer(), "norm") == 0);
    }
    inside = x + x;
  }
  profiler::disable();
  CHECK(outside.grad_fn()->layer == nullptr);
  REQUIRE(inside.grad_fn()->layer != nullptr);
  CHECK(std::strcmp(inside.grad_fn()->layer, "attention") == 0);
  const profiler::Summary s = profiler::summary(1);
  CHECK(calls(s, "mul_scalar", Phase::other, "") == 1);
  CHECK(calls(s, "add", Phase::forward, "attention") == 1);
  CHECK(s.rows.size() == 2);
}

TEST_CASE("profiler: records accumulate over enable/disable until reset; other threads' ops are not recorded") {
  CleanProfiler clean;
  const Tensor a = randn({8});
  profiler::enable();
  (void)(a + a);
  std::thread other([&] { (void)(a * a); });  // the data loader's thread, say
  other.join();
  profiler::disable();
  (void)(a + a);  // off
  profiler::enable();
  (void)(a + a);
  profiler::disable();
  profiler::Summary s = profiler::summary(2);
  CHECK(calls(s, "add", Phase::other, "") == 2);
  CHECK(calls(s, "mul", Phase::other, "") == 0);
  CHECK(s.steps == 2);
  const double wall = s.wall_s;
  CHECK(wall > 0);
  CHECK(profiler::summary(1).wall_s == wall);  // nothing runs the clock while off
  profiler::reset();
  s = profiler::summary(1);
  CHECK(s.rows.empty());
  CHECK(s.wall_s == 0);
}

TEST_CASE("profiler: the table and the JSON show the phases, the layer types and every row") {
  CleanProfiler clean;
  LoryLM model(tiny(0));
  profiler::Summary s = profile_loss_and_backward(model);
  s.title = "test profile";

  char* buffer = nullptr;
  size_t size = 0;
  std::FILE* out = open_memstream(&buffer, &size);
  REQUIRE(out != nullptr);
  profiler::print_table(out, s, 5);
  std::fclose(out);
  const std::string table(buffer, size);
  std::free(buffer);
  INFO(table);
  CHECK(table.rfind("test profile\nprofile: 1 step on cpu", 0) == 0);
  for (const char* phase : {"forward", "backward", "optimizer", "communication", "other", "untracked"})
    CHECK(table.find(std::string("\n") + phase + " ") != std::string::npos);
  for (const char* layer : {"\nattention ", "\nffn ", "\nnorm ", "\nlm_head ", "\nloss ", "\nembedding "})
    CHECK(table.find(layer) != std::string::npos);
  CHECK(table.find("\n" + s.rows[0].name + " ") != std::string::npos);  // the top row is shown
  CHECK(table.find("... " + std::to_string(s.rows.size() - 5) + " more rows") != std::string::npos);

  const nlohmann::json j = nlohmann::json::parse(profiler::to_json(s));
  CHECK(j["title"] == "test profile");
  CHECK(j["steps"] == 1);
  CHECK(j["device"] == "cpu");
  CHECK(j["synchronised"] == false);
  CHECK(j["wall_s"].get<double>() == doctest::Approx(s.wall_s).epsilon(1e-8));
  CHECK(j["phases"]["backward"].get<double>() == doctest::Approx(s.self_s(Phase::backward)).epsilon(1e-8));
  CHECK(j["layers"].size() == s.layers().size());
  REQUIRE(j["rows"].size() == s.rows.size());
  for (size_t i = 0; i < s.rows.size(); ++i) {
    CHECK(j["rows"][i]["name"] == s.rows[i].name);
    CHECK(j["rows"][i]["phase"] == profiler::phase_name(s.rows[i].phase));
    CHECK(j["rows"][i]["layer"] == s.rows[i].layer);
    CHECK(j["rows"][i]["calls"] == s.rows[i].calls);
  }
}
