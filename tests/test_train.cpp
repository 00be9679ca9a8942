// The trainer (train/): the LR schedule, AdamW against a double-precision
// reference of PyTorch's formula, gradient accumulation, upcycling inside a
// run, exact resume, config errors, a short real training run, activation
// recomputation, NaN detection, stop signals, checkpoint housekeeping and
// per-domain evaluation.
//
// Data: the committed fixture corpus (tests/data/corpus) encoded with the
// fixture tokenizer (vocab 2000) and packed into instances of 64 + 1 tokens,
// once per process, under a temporary directory removed at exit.
// Model: the "tiny" preset (2 layers, d 32, 4 heads, f 48, 4 experts) with
// segments of 16 tokens and the data's vocabulary; a step is 4 sequences.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numbers>
#include <sstream>
#include <string>
#include <vector>

#include "tensor/graph.h"
#include "nn/checkpoint.h"
#include "nn/lory_lm.h"
#include "io/safetensors.h"
#include "tensor/ops.h"
#include "tensor/profiler.h"
#include "corpus/data_loader.h"
#include "corpus/encode_corpus.h"
#include "corpus/similarity_batching.h"
#include "corpus/token_shard.h"
#include "corpus/tokenizer.h"
#include "train/adamw.h"
#include "train/evaluate.h"
#include "train/flat_parameters.h"
#include "train/lr_schedule.h"
#include "train/routing_stats.h"
#include "train/train_checkpoint.h"
#include "train/train_config.h"
#include "train/trainer.h"
#include "train/upcycle_moments.h"
#include "tests/train_fixture.h"
#include "tests/errors.h"

using namespace lory;
using lory::test::error_of;
using namespace lory::train;
using lory::test::TrainData;
using lory::test::make_train_data;
using lory::test::tiny_train_config;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(LORY_SOURCE_DIR) + "/tests/data/";
constexpr int64_t kSeqLen = 64;

// This process's scratch directory, removed when the tests end.
struct TempRoot {
  fs::path path = fs::temp_directory_path() / ("lory-test-train-" + std::to_string(::getpid()));
  TempRoot() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

const fs::path& temp_root() {
  static TempRoot root;
  return root.path;
}

// An empty run directory (the trainer creates it).
std::string fresh_dir(const std::string& name) {
  const fs::path p = temp_root() / "runs" / name;
  fs::remove_all(p);
  return p.string();
}

const TrainData& train_data() {
  static const TrainData d = make_train_data((temp_root() / "data").string());
  return d;
}

TrainConfig tiny_config(const std::string& dir, const std::vector<ConfigOverride>& overrides = {}) {
  return tiny_train_config(train_data(), dir, overrides);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<uint32_t> bits_of(const Tensor& t) {
  const std::vector<float> v = t.detach().to(DType::f32).contiguous().to_vector<float>();
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

// Every tensor of a safetensors file as f32 bits, by name.
std::map<std::string, std::vector<uint32_t>> tensor_bits(const std::string& path) {
  std::map<std::string, std::vector<uint32_t>> out;
  for (const auto& [name, t] : io::load_safetensors(path).tensors) out[name] = bits_of(t);
  return out;
}

std::vector<float> values_of(const io::SafetensorsFile& file, const std::string& name) {
  return file.get(name).to(DType::f32).contiguous().to_vector<float>();
}

// The mean loss of `model` over `n` micro-batches drawn from `loader`.
double loss_on_batches(nn::LoryLM& model, corpus::DataLoader& loader, int64_t n) {
  NoGradGuard no_grad;
  double total = 0;
  for (int64_t a = 0; a < n; ++a) {
    const int32_t* b = loader.next();
    const std::vector<int64_t> ids(b, b + loader.batch_size() * loader.instance_tokens());
    total += model.loss(from_vector(ids, {loader.batch_size(), loader.instance_tokens()}, {DType::i64})).item();
  }
  return total / static_cast<double>(n);
}

Tensor random_tokens(int64_t batch, int64_t length, int64_t vocab, uint64_t seed) {
  std::vector<int64_t> ids(static_cast<size_t>(batch * length));
  uint64_t s = seed;
  for (auto& id : ids) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    id = static_cast<int64_t>((s >> 33) % static_cast<uint64_t>(vocab));
  }
  return from_vector(ids, {batch, length}, {DType::i64});
}

// Trainer::stop_signal is process-wide: put it back whatever happens.
struct StopSignalReset {
  ~StopSignalReset() { Trainer::stop_signal = 0; }
};

std::vector<std::string> checkpoint_dirs(const std::string& run_dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(fs::path(run_dir) / "checkpoints"))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}


}  // namespace

// ---------------------------------------------------------------------------
// The LR schedule
// ---------------------------------------------------------------------------

TEST_CASE("train: the LR warms up linearly from peak/W and decays to the floor exactly at the last step") {
  for (Decay decay : {Decay::cosine, Decay::linear}) {
    INFO(decay_name(decay));
    const LrSchedule s{2.0, 0.2, 4, 20, decay};
    CHECK(s.at(0) == doctest::Approx(0.5).epsilon(1e-15));  // peak / W: never 0
    CHECK(s.at(1) == doctest::Approx(1.0).epsilon(1e-15));
    CHECK(s.at(3) == doctest::Approx(2.0).epsilon(1e-15));   // the last warm-up step reaches the peak
    CHECK(s.at(4) == doctest::Approx(2.0).epsilon(1e-15));   // the first decay step is still the peak
    CHECK(s.at(19) == doctest::Approx(0.2).epsilon(1e-15));  // the last step is the floor
    CHECK(s.at(30) == doctest::Approx(0.2).epsilon(1e-15));  // past the end it stays there
    // A third of the way through the decay (15 decay intervals): p = 1/3.
    const double third =
        decay == Decay::cosine ? 0.2 + 1.8 * 0.5 * (1 + std::cos(std::numbers::pi / 3)) : 2.0 - 1.8 / 3;
    CHECK(s.at(9) == doctest::Approx(third).epsilon(1e-14));
    for (int64_t step = 4; step < 19; ++step) CHECK(s.at(step + 1) < s.at(step));
  }
  const LrSchedule constant{2.0, 0.2, 4, 20, Decay::constant};
  CHECK(constant.at(0) == doctest::Approx(0.5));
  CHECK(constant.at(4) == 2.0);
  CHECK(constant.at(19) == 2.0);

  const LrSchedule no_warmup{1.0, 0.1, 0, 11, Decay::linear};
  CHECK(no_warmup.at(0) == 1.0);
  CHECK(no_warmup.at(5) == doctest::Approx(0.55).epsilon(1e-15));
  CHECK(no_warmup.at(10) == doctest::Approx(0.1).epsilon(1e-15));

  // A one-step run trains at the peak (there is no decay to do), with or without warm-up.
  for (int64_t w : {0, 1}) {
    const LrSchedule one{1.0, 0.1, w, 1, Decay::cosine};
    CHECK(one.at(0) == 1.0);
  }
  CHECK_THROWS_WITH_AS(no_warmup.at(-1), doctest::Contains("negative step -1"), Error);

  CHECK(parse_decay("linear") == Decay::linear);
  CHECK(std::string(decay_name(parse_decay("cosine"))) == "cosine");
  CHECK_THROWS_WITH_AS(
      parse_decay("exponential", "schedule.decay"),
      doctest::Contains("schedule.decay: unknown decay 'exponential' (allowed: cosine, linear, constant)"), Error);
}

// ---------------------------------------------------------------------------
// AdamW
// ---------------------------------------------------------------------------

TEST_CASE("train: AdamW matches a double-precision PyTorch AdamW over 3 steps with clipping and bias correction") {
  manual_seed(3);
  nn::LoryLM model(nn::preset("tiny"));  // embeddings, norms, attention, expert stacks [E, f, d], routers
  FlatParameters flat(model, DType::f32);
  const AdamWOptions o{0.9, 0.95, 1e-8, 0.1, false};
  AdamW opt(flat, o);
  const auto& slots = flat.slots();

  // Which parameters decay: matrices and expert stacks, not norms, not embeddings.
  for (size_t i = 0; i < slots.size(); ++i) {
    const std::string& n = slots[i].name;
    INFO(n);
    const bool norm = n.find("norm") != std::string::npos;
    const bool embedding = n == "model.embed_tokens.weight" || n == "lm_head.weight";
    CHECK(opt.decay[i] == (!norm && !embedding));
    CHECK(gets_weight_decay(slots[i], true) == !norm);
  }
  CHECK(flat.find("model.layers.0.mlp.experts.gate_proj.weight")->shape == Shape{4, 48, 32});
  CHECK(opt.decay[static_cast<size_t>(flat.find("model.layers.0.mlp.router.weight") - slots.data())]);

  // The reference state, in double.
  std::vector<std::vector<double>> p(slots.size()), m(slots.size()), v(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    p[i] = flat.view(flat.master, i).to_vector<double>();
    m[i].assign(p[i].size(), 0.0);
    v[i].assign(p[i].size(), 0.0);
  }
  const double lrs[3] = {1e-2, 3e-3, 2e-2};
  const double max_norms[3] = {0.5, 1.0, 1e3};  // clipped, clipped, not clipped
  for (int t = 1; t <= 3; ++t) {
    INFO("step " << t);
    // Gradients of a different size per parameter; the norm weights get none
    // at step 2; every 4th parameter gets gradients of the size of eps, so
    // that where eps enters the update shows.
    for (size_t i = 0; i < slots.size(); ++i) {
      double std = 0.01 * static_cast<double>(1 + i % 5);
      if (i % 4 == 3) std = 2e-8;
      if (t == 2 && slots[i].shape.size() == 1) std = 0;
      flat.view(flat.master_grads, i)
          .copy_(random_with_key(slots[i].shape, RandomDist::normal, 99, static_cast<uint64_t>(t * 7919 + i) << 20, 0.0,
                                 std));
    }
    std::vector<std::vector<double>> g(slots.size());
    double ss = 0;
    for (size_t i = 0; i < slots.size(); ++i) {
      g[i] = flat.view(flat.master_grads, i).to_vector<double>();
      for (double x : g[i]) ss += x * x;
    }
    const double norm = std::sqrt(ss), max_norm = max_norms[t - 1], lr = lrs[t - 1];
    const double clip = norm > max_norm ? max_norm / (norm + 1e-6) : 1.0;
    CHECK((t < 3) == (clip < 1.0));
    const double bc1 = 1 - std::pow(o.beta1, t), bc2 = 1 - std::pow(o.beta2, t);
    std::vector<std::vector<double>> m_scale = m;  // |terms| of the new first moment
    for (size_t i = 0; i < slots.size(); ++i) {
      const std::string& n = slots[i].name;
      const bool decay = slots[i].shape.size() >= 2 && n != "model.embed_tokens.weight" && n != "lm_head.weight";
      for (size_t k = 0; k < p[i].size(); ++k) {
        const double gk = g[i][k] * clip;
        m_scale[i][k] = o.beta1 * std::abs(m[i][k]) + (1 - o.beta1) * std::abs(gk);
        m[i][k] = o.beta1 * m[i][k] + (1 - o.beta1) * gk;
        v[i][k] = o.beta2 * v[i][k] + (1 - o.beta2) * gk * gk;
        if (decay) p[i][k] *= 1 - lr * o.weight_decay;
        p[i][k] -= lr / bc1 * m[i][k] / (std::sqrt(v[i][k]) / std::sqrt(bc2) + o.eps);
      }
    }

    const StepReport report = opt.step(flat, lr, max_norm);
    CHECK(report.grad_norm == doctest::Approx(norm).epsilon(1e-12));
    CHECK(report.clip_scale == doctest::Approx(clip).epsilon(1e-12));

    double worst_p = 0, worst_m = 0, worst_v = 0;
    for (size_t i = 0; i < slots.size(); ++i) {
      const std::vector<double> fp = flat.view(flat.master, i).to_vector<double>();
      const std::vector<double> fm = flat.view(opt.exp_avg, i).to_vector<double>();
      const std::vector<double> fv = flat.view(opt.exp_avg_sq, i).to_vector<double>();
      for (size_t k = 0; k < fp.size(); ++k) {
        // Relative to the size of the value, or of what made it where it
        // is near 0 (p: the step, about lr; m: its two terms).
        worst_p = std::max(worst_p, std::abs(fp[k] - p[i][k]) / (std::abs(p[i][k]) + lr));
        worst_m = std::max(worst_m, std::abs(fm[k] - m[i][k]) / (m_scale[i][k] + 1e-30));
        worst_v = std::max(worst_v, std::abs(fv[k] - v[i][k]) / (std::abs(v[i][k]) + 1e-30));
      }
    }
    CHECK(worst_p < 1e-6);
    CHECK(worst_m < 5e-6);  // f32: 1 - 0.9f alone is 2.4e-7 off 0.1
    CHECK(worst_v < 5e-6);
    // The model reads the updated weights (its parameters are views of the buffer).
    CHECK(model.lm_head->weight.to_vector<double>() ==
          flat.view(flat.master, static_cast<size_t>(flat.find("lm_head.weight") - slots.data())).to_vector<double>());
  }
  for (int64_t s : opt.steps) CHECK(s == 3);
}

TEST_CASE("train: with zero gradients AdamW only decays: matrices shrink, norms never, embeddings only when asked") {
  for (bool decay_embeddings : {false, true}) {
    INFO("decay_embeddings " << decay_embeddings);
    manual_seed(4);
    nn::LoryLM model(nn::preset("tiny"));
    FlatParameters flat(model, DType::f32);
    AdamW opt(flat, {0.9, 0.95, 1e-8, 0.1, decay_embeddings});
    const std::vector<float> before = flat.master.to_vector<float>();
    const StepReport r = opt.step(flat, 0.5, 1.0);
    CHECK(r.grad_norm == 0.0);
    CHECK(r.clip_scale == 1.0);
    const std::vector<float> after = flat.master.to_vector<float>();
    const float keep = static_cast<float>(1.0 - 0.5 * 0.1);
    for (const FlatSlot& s : flat.slots()) {
      INFO(s.name);
      const bool embedding = s.name == "model.embed_tokens.weight" || s.name == "lm_head.weight";
      const bool decays = s.shape.size() >= 2 && (!embedding || decay_embeddings);
      int64_t wrong = 0;
      for (int64_t k = s.offset; k < s.offset + s.numel; ++k) {
        const float want = decays ? before[static_cast<size_t>(k)] * keep : before[static_cast<size_t>(k)];
        if (after[static_cast<size_t>(k)] != want) ++wrong;
      }
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("train: optim.router_lr_scale multiplies the routers' update (weight decay included) and nothing else") {
  std::vector<std::vector<float>> before, after;
  for (double scale : {1.0, 10.0}) {
    manual_seed(6);
    nn::LoryLM model(nn::preset("tiny"));
    FlatParameters flat(model, DType::f32);
    model.loss(random_tokens(2, 33, 64, 2)).backward();
    AdamW opt(flat, {0.9, 0.95, 1e-8, 0.1, false, scale});
    before.push_back(flat.master.to_vector<float>());
    opt.step(flat, 1e-3, 0.0);
    after.push_back(flat.master.to_vector<float>());
  }
  REQUIRE(before[0] == before[1]);
  manual_seed(6);
  nn::LoryLM model(nn::preset("tiny"));
  const FlatParameters flat(model, DType::f32);
  int64_t routers = 0;
  for (const FlatSlot& s : flat.slots()) {
    INFO(s.name);
    const bool router = s.name.find(".mlp.router.") != std::string::npos;
    routers += router;
    double worst = 0, largest = 0;
    for (int64_t k = s.offset; k < s.offset + s.numel; ++k) {
      const auto i = static_cast<size_t>(k);
      const double base = double(after[0][i]) - before[0][i], scaled = double(after[1][i]) - before[1][i];
      worst = std::max(worst, std::abs(scaled - (router ? 10 : 1) * base));
      largest = std::max(largest, std::abs(base));
    }
    CHECK(largest > 1e-5);
    CHECK(worst <= 1e-4 * largest);  // f32 weights: the differences carry their rounding
  }
  CHECK(routers == 2);
}

// ---------------------------------------------------------------------------
// Flat buffers and in-place gradient accumulation
// ---------------------------------------------------------------------------

TEST_CASE("train: Tensor::add_ accumulates in place, into views and transposed views, keeping their storage") {
  Tensor base = zeros({2, 6});
  Tensor view = base.narrow(1, 1, 4);
  void* const where = view.data_ptr();
  const uint64_t version = base.version();
  view.add_(ones({2, 4}));
  view.add_(full({4}, 2.0));                    // broadcast
  view.add_(full({2, 1}, 0.5, {DType::bf16}));  // broadcast and dtype conversion
  CHECK(view.data_ptr() == where);
  CHECK(base.version() > version);
  CHECK(base.to_vector<float>() == std::vector<float>{0, 3.5, 3.5, 3.5, 3.5, 0, 0, 3.5, 3.5, 3.5, 3.5, 0});
  Tensor transposed = base.t();  // [6, 2], not contiguous
  REQUIRE(!transposed.is_contiguous());
  transposed.add_(from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {6, 2}));
  CHECK(base.to_vector<float>() == std::vector<float>{1, 6.5, 8.5, 10.5, 12.5, 11, 2, 7.5, 9.5, 11.5, 13.5, 12});
  CHECK_THROWS_WITH_AS(view.add_(ones({3})), doctest::Contains("cannot be broadcast"), Error);
  Tensor leaf = zeros({2}).set_requires_grad(true);
  CHECK_THROWS_WITH_AS(leaf.add_(ones({2})), doctest::Contains("add_"), Error);
}

TEST_CASE("train: FlatParameters makes parameters and gradients views of flat buffers that backward accumulates into") {
  manual_seed(5);
  nn::LoryLM model(nn::preset("tiny"));
  const Tensor tokens = random_tokens(2, 21, 64, 1);
  const double loss_before = model.loss(tokens).item();
  FlatParameters flat(model, DType::f32);
  CHECK(!flat.has_separate_master());
  CHECK(flat.compute_dtype() == DType::f32);
  CHECK(model.loss(tokens).item() == loss_before);  // the values moved unchanged
  int64_t expected_offset = 0;
  for (const FlatSlot& s : flat.slots()) {
    CHECK(s.offset == expected_offset);
    CHECK(s.offset % FlatParameters::kAlign == 0);
    expected_offset += (s.numel + FlatParameters::kAlign - 1) / FlatParameters::kAlign * FlatParameters::kAlign;
  }
  CHECK(flat.size() == expected_offset);

  model.loss(tokens).backward();
  const char* gbegin = static_cast<const char*>(flat.grads.data_ptr());
  const char* gend = gbegin + flat.grads.nbytes();
  for (size_t i = 0; i < flat.slots().size(); ++i) {
    const Tensor& p = *flat.slots()[i].slot;
    INFO(flat.slots()[i].name);
    CHECK(p.data_ptr() == flat.view(flat.params, i).data_ptr());
    const Tensor g = p.grad();
    REQUIRE(g.defined());
    const char* at = static_cast<const char*>(g.data_ptr());
    CHECK((at >= gbegin && at < gend));
    CHECK(g.data_ptr() == flat.view(flat.grads, i).data_ptr());
  }
  const std::vector<float> once = flat.grads.to_vector<float>();
  CHECK(AdamW::grad_norm(flat) > 0);
  model.loss(tokens).backward();  // a second micro-batch accumulates
  const std::vector<float> twice = flat.grads.to_vector<float>();
  int64_t wrong = 0;
  for (size_t k = 0; k < once.size(); ++k) wrong += twice[k] != 2 * once[k];
  CHECK(wrong == 0);
  flat.zero_grads();
  CHECK(AdamW::grad_norm(flat) == 0.0);
  CHECK(model.lm_head->weight.grad().data_ptr() == flat.view(flat.grads, flat.slots().size() - 1).data_ptr());
}

TEST_CASE("train: bf16 FlatParameters accumulate micro-batches into f32 master gradients and publish rounded weights") {
  manual_seed(6);
  nn::LoryLM model(nn::preset("tiny"));
  FlatParameters flat(model, DType::bf16);
  CHECK(flat.has_separate_master());
  CHECK(flat.params.dtype() == DType::bf16);
  CHECK(flat.master.dtype() == DType::f32);
  CHECK(model.lm_head->weight.dtype() == DType::bf16);
  model.loss(random_tokens(2, 21, 64, 2)).backward();
  CHECK(AdamW::grad_norm(flat) == 0.0);  // nothing in master_grads until accumulated
  const std::vector<float> micro = flat.grads.to(DType::f32).to_vector<float>();
  flat.accumulate_micro_batch();
  CHECK(flat.master_grads.to_vector<float>() == micro);
  CHECK(flat.grads.to(DType::f32).to_vector<float>() == std::vector<float>(micro.size(), 0.0f));
  CHECK(AdamW::grad_norm(flat) > 0);
  // publish_master rounds the f32 master into the bf16 parameters the model reads.
  flat.master.fill_(1.0 + 1.0 / 1024);  // not representable in bf16 (8 mantissa bits): rounds to 1
  flat.publish_master();
  CHECK(model.lm_head->weight.to(DType::f32).to_vector<float>() ==
        std::vector<float>(static_cast<size_t>(model.lm_head->weight.numel()), 1.0f));
}

// ---------------------------------------------------------------------------
// Activation recomputation
// ---------------------------------------------------------------------------

TEST_CASE("train: activation recomputation gives the gradients of the stored forward, dense and Lory (f64)") {
  for (int64_t experts : {0, 4}) {
    INFO("experts " << experts);
    manual_seed(7);
    nn::LoryConfig c = nn::preset("tiny");
    c.num_experts = experts;
    nn::LoryLM model(c);
    model.to(DType::f64);
    const Tensor tokens = random_tokens(2, 23, c.vocab_size, 3);  // 22 predicted tokens: 6 segments of 4
    auto run = [&](bool recompute) {
      model.recompute_activations = recompute;
      model.zero_grad();
      const Tensor loss = model.loss(tokens);
      loss.backward();
      std::vector<std::vector<double>> grads;
      for (auto& [name, p] : model.named_parameters()) grads.push_back(p->grad().to_vector<double>());
      return std::make_pair(loss.item(), grads);
    };
    const auto stored = run(false), recomputed = run(true);
    CHECK(std::abs(stored.first - recomputed.first) < 1e-12);
    REQUIRE(stored.second.size() == recomputed.second.size());
    double worst = 0, largest = 0;
    for (size_t i = 0; i < stored.second.size(); ++i)
      for (size_t k = 0; k < stored.second[i].size(); ++k) {
        worst = std::max(worst, std::abs(stored.second[i][k] - recomputed.second[i][k]));
        largest = std::max(largest, std::abs(stored.second[i][k]));
      }
    CHECK(largest > 1e-4);
    CHECK(worst < 1e-10);
  }
}

// ---------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------

TEST_CASE("train: config errors name the file, the key and what is allowed") {
  const std::string steps = "[schedule]\nsteps = 10\n";
  auto parse_error = [&](const std::string& toml, const std::vector<ConfigOverride>& overrides = {}) {
    return error_of([&] { parse_train_config(toml, "cfg.toml", overrides); });
  };
  CHECK(parse_error(steps) == "no error");

  const std::string section = parse_error(steps + "[bogus]\nx = 1\n");
  CHECK(section.find("cfg.toml: unknown section [bogus]") != std::string::npos);
  CHECK(section.find("sections: model, data, optim, schedule, train, eval, checkpoint, log") != std::string::npos);

  const std::string key = parse_error(steps + "[optim]\nlearning_rate = 0.1\n");
  CHECK(key.find("cfg.toml: unknown key 'learning_rate' in [optim]") != std::string::npos);
  CHECK(key.find("keys of [optim]: lr, min_lr_ratio, beta1, beta2, eps, weight_decay, decay_embeddings, grad_clip") !=
        std::string::npos);

  CHECK(parse_error(steps + "[optim]\nlr = \"fast\"\n").find("cfg.toml: optim.lr = \"fast\": must be a number") !=
        std::string::npos);
  CHECK(parse_error(steps + "[train]\nmicro_batch = 2.5\n").find("train.micro_batch = 2.5: must be an integer") !=
        std::string::npos);
  CHECK(parse_error(steps + "[optim]\nlr = -1\n").find("cfg.toml: optim.lr = -1: must be > 0") != std::string::npos);
  CHECK(parse_error(steps + "[optim]\nbeta1 = 1.0\n").find("optim.beta1 = 1: must lie in [0, 1)") != std::string::npos);
  CHECK(parse_error(steps + "[model]\nnum_experts = -2\n").find("model.num_experts = -2: must be >= 0") !=
        std::string::npos);
  CHECK(parse_error(steps + "[train]\nprecision = \"fp8\"\n")
            .find("cfg.toml: train.precision = \"fp8\": allowed values: f32, bf16") != std::string::npos);
  CHECK(parse_error("[schedule]\nsteps = 10\ndecay = \"step\"\n")
            .find("schedule.decay = \"step\": allowed values: cosine, linear, constant") != std::string::npos);
  CHECK(parse_error(steps + "[model]\nexpert_choice_gates = \"sigmoid\"\n")
            .find("cfg.toml: model.expert_choice_gates = \"sigmoid\": allowed values: softmax, softmax_times_experts") !=
        std::string::npos);
  CHECK(parse_error(steps + "[model]\nrouting = \"prompt\"\n")
            .find("model.routing = \"prompt\": allowed values: causal_segment, prefix") != std::string::npos);

  const std::string unknown_override = parse_error(steps, {{"optim.nope", "1"}});
  CHECK(unknown_override.find("command line: unknown key --optim.nope") != std::string::npos);
  CHECK(unknown_override.find("keys of [optim]: lr,") != std::string::npos);
  CHECK(parse_error(steps, {{"nope.lr", "1"}}).find("command line: unknown option --nope.lr") != std::string::npos);
  CHECK(parse_error(steps, {{"optim.lr", "fast"}}).find("command line: --optim.lr=fast: must be a number") !=
        std::string::npos);
  CHECK(parse_error(steps, {{"optim.lr", "0"}}).find("command line: optim.lr = 0: must be > 0") != std::string::npos);

  CHECK(parse_error("[schedule]\nsteps = 10\ntokens = 100\n")
            .find("give exactly one of schedule.steps and schedule.tokens (got steps = 10, tokens = 100)") !=
        std::string::npos);
  CHECK(parse_error("[optim]\nlr = 0.1\n").find("(got steps = 0, tokens = 0)") != std::string::npos);

  const std::string syntax = parse_error("[schedule]\nsteps = 10\n[optim]\nlr = = 3\n");
  CHECK(syntax.find("cfg.toml:4:") != std::string::npos);
  CHECK(syntax.find("TOML syntax error") != std::string::npos);
}

TEST_CASE("train: plan_run derives accumulation and steps, and names the keys when the global batch does not divide") {
  TrainConfig c =
      parse_train_config("[schedule]\nsteps = 40\n[train]\nglobal_batch_tokens = 1024\nmicro_batch = 2\n", "cfg.toml");
  RunPlan p = plan_run(c, 65, 2);
  CHECK(p.seq_len == 64);
  CHECK(p.accum == 4);  // 1024 = 2 sequences x 4 micro-batches x 2 ranks x 64 tokens
  CHECK(p.total_steps == 40);
  CHECK(p.dense_steps == 2);  // 5% of 40 (the default small-8e preset has experts)
  CHECK(p.tokens_per_step == 1024);
  c.schedule.steps = 0;
  c.schedule.tokens = 10000;
  CHECK(plan_run(c, 65, 1).total_steps == 10);  // ceil(10000 / 1024)
  c.model.resolved.num_experts = 0;
  CHECK(plan_run(c, 65, 1).dense_steps == 0);

  c.train.global_batch_tokens = 1000;
  const std::string e = error_of([&] { plan_run(c, 65, 1); });
  CHECK(e.find("train.global_batch_tokens = 1000 is not a multiple of train.micro_batch (2) x ranks (1) x sequence "
               "length (64") != std::string::npos);
  CHECK(e.find("= 128; the nearest multiples are 896 and 1024") != std::string::npos);
  CHECK(error_of([&] { plan_run(c, 1, 1); }).find("too short to train on") != std::string::npos);
}

TEST_CASE("train: a Lory run keeps at least one Lory step however the dense warm-up rounds") {
  // dense_warmup may be anything below 1; rounded to steps it must still
  // leave the run a Lory phase (or be refused), else a Lory config trains
  // and saves a dense model without a word.
  TrainConfig c = parse_train_config(
      "[model]\npreset = \"tiny\"\n[schedule]\nsteps = 2\ndense_warmup = 0.9\n"
      "[train]\nglobal_batch_tokens = 64\n",
      "cfg.toml");
  REQUIRE(c.model.resolved.num_experts == 4);
  RunPlan p;
  const std::string e = error_of([&] { p = plan_run(c, 65, 1); });
  if (e == "no error")
    CHECK(p.dense_steps < p.total_steps);
  else
    CHECK(e.find("schedule.dense_warmup") != std::string::npos);
}

TEST_CASE("train: a model too small for the data, or a device the machine lacks, is refused naming the key") {
  const std::string dir = fresh_dir("too-small");
  CHECK(error_of([&] {
          Trainer t(tiny_config(dir, {{"model.vocab_size", "1000"}}), false, true);
        }).find("model.vocab_size = 1000 is smaller than the vocabulary of " + train_data().instances + " (2000)") !=
        std::string::npos);
  CHECK(error_of([&] {
          Trainer t(tiny_config(dir, {{"model.max_position_embeddings", "32"}}), false, true);
        }).find("model.max_position_embeddings = 32 is shorter than the training sequences") != std::string::npos);
  CHECK(error_of([&] {
          Trainer t(tiny_config(dir, {{"train.global_batch_tokens", "200"}}), false, true);
        }).find("train.global_batch_tokens = 200 is not a multiple") != std::string::npos);
  // The device check cites where the key was set, and says what is missing (this test runs without a GPU).
  const std::string device = error_of([&] { Trainer t(tiny_config(dir, {{"train.device", "cuda"}}), false, true); });
  CHECK(device.find("command line: train.device = \"cuda\"") == 0);
  CHECK((device.find("this build has no CUDA support") != std::string::npos ||
         device.find("no GPU is visible to rank 0") != std::string::npos));
  CHECK(!fs::exists(fs::path(dir) / "checkpoints"));
}

TEST_CASE("train: a config remembers where each key was set: the file, the command line, or the default") {
  const TrainConfig c = parse_train_config("[train]\ndevice = \"cuda\"\nseed = 3\n[schedule]\nsteps = 10\n",
                                           "cfg.toml", {{"train.seed", "4"}});
  CHECK(c.origin_of("train.device") == "cfg.toml");
  CHECK(c.origin_of("train.seed") == "command line");  // the override wins
  CHECK(c.origin_of("optim.lr") == "default");
}

TEST_CASE("train: a resolved config round-trips through its TOML; overrides win; model keys change only themselves") {
  const std::string toml = R"([model]
hidden_size = 64
preset = "tiny"
[optim]
lr = 0.0003
weight_decay = 0.05
[schedule]
tokens = 123456
decay = "linear"
upcycle_moments = "reset"
[train]
precision = "bf16"
[checkpoint]
dir = "runs/with \"quotes\" and \\ backslash"
)";
  const TrainConfig c = parse_train_config(toml, "cfg.toml", {{"optim.lr", "5e-4"}, {"model.num_experts", "2"}});
  CHECK(c.optim.lr == 5e-4);  // the command line wins over the file
  CHECK(c.optim.weight_decay == 0.05);
  CHECK(c.schedule.decay == "linear");
  CHECK(c.checkpoint.dir == "runs/with \"quotes\" and \\ backslash");
  // The preset, then exactly the keys given (wherever they appear).
  nn::LoryConfig expected = nn::preset("tiny");
  expected.hidden_size = 64;
  expected.num_experts = 2;
  CHECK(nn::config_to_json(c.model.resolved) == nn::config_to_json(expected));

  const std::string text = train_config_to_toml(c);
  const TrainConfig again = parse_train_config(text, "resolved");
  CHECK(train_config_to_toml(again) == text);
  CHECK(again.optim.lr == 5e-4);
  CHECK(again.schedule.tokens == 123456);
  CHECK(again.checkpoint.dir == c.checkpoint.dir);
  CHECK(nn::config_to_json(again.model.resolved) == nn::config_to_json(expected));
  // Defaults that were never written survive the trip too.
  CHECK(again.optim.beta2 == 0.95);
  CHECK(again.optim.eps == 1e-8);
  CHECK(again.optim.min_lr_ratio == 0.1);

  // Setting the heads keeps the KV heads equal (no GQA).
  const TrainConfig heads =
      parse_train_config("[schedule]\nsteps = 1\n[model]\npreset = \"tiny\"\nnum_attention_heads = 8\n", "cfg.toml");
  CHECK(heads.model.resolved.num_key_value_heads == 8);
  CHECK(heads.model.resolved.hidden_size == 32);
}

// ---------------------------------------------------------------------------
// Training runs
// ---------------------------------------------------------------------------

TEST_CASE("train: k micro-batches of m sequences make the same step as one batch of k*m sequences") {
  // 3 steps of 4 sequences of a Lory model from step 0. (Not across the
  // dense-to-Lory switch: right after it the experts are identical, the
  // router's true gradient is exactly 0, and Adam turns the rounding noise
  // that stands in for it into updates of up to lr * noise / eps, which
  // differ with the summation order.)
  std::vector<FlatSlot> slots;
  auto train = [&slots](int64_t micro) {
    TrainConfig c = tiny_config(
        fresh_dir("accum-" + std::to_string(micro)),
        {{"train.micro_batch", std::to_string(micro)}, {"schedule.steps", "3"}, {"schedule.dense_warmup", "0"}});
    Trainer t(c, false, true);
    CHECK(t.plan().accum == 4 / micro);
    CHECK(t.plan().dense_steps == 0);
    const RunResult r = t.run();
    CHECK(r.end == RunEnd::finished);
    CHECK(t.model().config.num_experts == 4);
    slots = t.flat().slots();
    return std::make_pair(r.losses, t.flat().master.to_vector<float>());
  };
  const auto whole = train(4), halves = train(2), singles = train(1);
  const double lr = 0.003;
  for (const auto* other : {&halves, &singles}) {
    REQUIRE(other->first.size() == 3);
    REQUIRE(whole.first.size() == 3);
    for (size_t s = 0; s < 3; ++s) CHECK(other->first[s] == doctest::Approx(whole.first[s]).epsilon(1e-5));
    REQUIRE(other->second.size() == whole.second.size());
    // Per parameter: the weights agree to 1e-4 (relative L2), and every
    // element to 1e-4 or a hundredth of an LR step (Adam moves an element
    // whose gradient is ~0 by lr * g / (|g| + eps), which is as sensitive to
    // the summation order as g is).
    for (const FlatSlot& s : slots) {
      INFO(s.name);
      double diff2 = 0, norm2 = 0;
      int64_t off = 0;
      for (int64_t k = s.offset; k < s.offset + s.numel; ++k) {
        const double w = whole.second[static_cast<size_t>(k)];
        const double d = static_cast<double>(other->second[static_cast<size_t>(k)]) - w;
        diff2 += d * d;
        norm2 += w * w;
        if (std::abs(d) > 1e-4 * std::abs(w) + 0.01 * lr) ++off;
      }
      CHECK(std::sqrt(diff2 / norm2) < 1e-4);
      CHECK(off == 0);
    }
  }
  CHECK(whole.first[2] < whole.first[0]);  // it did train
}

TEST_CASE("train: a run with train.recompute = blocks trains like one without") {
  auto train = [](const std::string& recompute) {
    TrainConfig c =
        tiny_config(fresh_dir("recompute-" + recompute),
                    {{"train.recompute", recompute}, {"schedule.steps", "3"}, {"schedule.dense_warmup", "0.34"}});
    Trainer t(c, false, true);
    CHECK(t.model().recompute_activations == (recompute == "blocks"));
    const RunResult r = t.run();
    CHECK(t.model().recompute_activations == (recompute == "blocks"));  // the upcycled model keeps it
    return std::make_pair(r.losses, t.flat().master.to_vector<float>());
  };
  const auto plain = train("none"), recomputed = train("blocks");
  REQUIRE(plain.first.size() == 3);
  REQUIRE(recomputed.first.size() == 3);
  for (size_t s = 0; s < 3; ++s) CHECK(recomputed.first[s] == plain.first[s]);
  int64_t differ = 0;
  for (size_t k = 0; k < plain.second.size(); ++k) differ += plain.second[k] != recomputed.second[k];
  CHECK(differ == 0);
}

TEST_CASE("train: an upcycled model computes the dense model's loss: identical experts are the dense FFN") {
  manual_seed(8);
  nn::LoryConfig c = nn::preset("tiny");
  c.num_experts = 0;
  c.segment_length = 16;
  nn::LoryLM dense(c);
  const Tensor tokens = random_tokens(3, 50, c.vocab_size, 4);  // 49 predicted tokens: 4 segments, the last partial
  const double dense_loss = dense.loss(tokens).item();
  const std::unique_ptr<nn::LoryLM> lory = nn::upcycle(dense, 4);
  CHECK(lory->config.num_experts == 4);
  CHECK(lory->model.layers[0]->lory_mlp != nullptr);
  for (const nn::ForwardRouting& r : std::vector<nn::ForwardRouting>{
           nn::TrainingRouting::causal_segment, nn::TrainingRouting::prefix, nn::InferenceRouting::prompt}) {
    INFO(nn::routing_name(r));
    CHECK(std::abs(lory->loss(tokens, {r}).item() - dense_loss) < 1e-5);
  }
  // The router is fresh (not zero), so the routing weights are not all uniform.
  const std::vector<float> router = lory->parameter("model.layers.0.mlp.router.weight").to_vector<float>();
  CHECK(*std::max_element(router.begin(), router.end()) > 0.005f);
}

TEST_CASE(
    "train: at the switch the loss does not jump and the Adam state is what upcycle_moments says; routers start at 0") {
  const TrainData& d = train_data();
  constexpr double b1 = 0.9, b2 = 0.95;
  constexpr double E = 4;
  for (const std::string mode : {"reset", "reset_all", "inherit", "copy_unscaled"}) {
    INFO("upcycle_moments = " << mode);
    const std::string dir = fresh_dir("switch-" + mode);
    TrainConfig c = tiny_config(
        dir, {{"schedule.steps", "4"}, {"schedule.dense_warmup", "0.5"}, {"schedule.upcycle_moments", mode}});
    double dense_loss = 0;
    {
      Trainer dense(c, false, true);
      REQUIRE(dense.plan().dense_steps == 2);
      dense.stop_after(2);
      const RunResult r = dense.run();
      REQUIRE(r.end == RunEnd::stopped);
      REQUIRE(r.step == 2);
      CHECK(!dense.model().config.is_lory());
      const CheckpointInfo at2 = read_checkpoint_info(latest_checkpoint(dir));
      CHECK(!at2.state.lory_phase);
      CHECK(at2.model_config.num_experts == 0);
      // The dense model's loss on the batch of step 3 (the first after the switch).
      corpus::DataLoader loader(d.instances, c.train.micro_batch, 0, 1, static_cast<uint64_t>(c.train.seed),
                              at2.state.loader, d.vocab);
      dense_loss = loss_on_batches(dense.model(), loader, dense.plan().accum);
    }
    const io::SafetensorsFile m2 = io::load_safetensors(latest_checkpoint(dir) + "/optimizer.safetensors");

    // Step 3 runs with its gradient clipped to ~1e-30: the moments it saves are
    // what the switch left, times beta (the gradient's share underflows).
    TrainConfig after = c;
    after.optim.grad_clip = 1e-30;
    Trainer lory(after, true, true);
    CHECK(lory.step() == 2);
    lory.stop_after(3);
    const RunResult r = lory.run();
    REQUIRE(r.end == RunEnd::stopped);
    REQUIRE(r.losses.size() == 1);
    CHECK(lory.model().config.num_experts == 4);
    CHECK(std::abs(r.losses[0] - dense_loss) < 1e-5);

    const CheckpointInfo at3 = read_checkpoint_info(latest_checkpoint(dir));
    CHECK(at3.state.lory_phase);
    CHECK(at3.model_config.num_experts == 4);
    const io::SafetensorsFile m3 = io::load_safetensors(at3.path + "/optimizer.safetensors");
    int64_t checked_experts = 0, checked_routers = 0;
    for (const auto& [name, steps] : at3.param_steps) {
      INFO(name);
      const std::vector<float> m = values_of(m3, name + ".exp_avg"), v = values_of(m3, name + ".exp_avg_sq");
      const bool router = name.find(".mlp.router.") != std::string::npos;
      const bool expert_stack = name.find(".mlp.experts.") != std::string::npos;
      if (router || mode == "reset_all" || (mode == "reset" && expert_stack)) {
        CHECK(steps == 1);  // born (or reborn) at the switch, one step since
        double largest = 0;
        for (float x : m) largest = std::max(largest, std::abs(static_cast<double>(x)));
        CHECK(largest < 1e-29);
        CHECK(*std::max_element(v.begin(), v.end()) == 0.0f);
        checked_routers += router;
        continue;
      }
      CHECK(steps == 3);
      const auto experts = name.find(".mlp.experts.");
      const std::string source =
          experts == std::string::npos ? name : name.substr(0, experts) + ".mlp." + name.substr(experts + 13);
      const std::vector<float> m_dense = values_of(m2, source + ".exp_avg"),
                               v_dense = values_of(m2, source + ".exp_avg_sq");
      REQUIRE(m_dense.size() > 0);
      const size_t copies = experts == std::string::npos ? 1 : 4;
      REQUIRE(m.size() == copies * m_dense.size());
      // inherit: an expert's gradient is ~1/E of the FFN's, so m/E and v/E^2.
      const double m_scale = mode == "inherit" && expert_stack ? 1 / E : 1;
      const double v_scale = mode == "inherit" && expert_stack ? 1 / (E * E) : 1;
      int64_t wrong = 0;
      double largest = 0;
      for (size_t k = 0; k < m.size(); ++k) {
        const double want_m = b1 * m_scale * m_dense[k % m_dense.size()],
                     want_v = b2 * v_scale * v_dense[k % v_dense.size()];
        largest = std::max(largest, std::abs(want_m));
        if (std::abs(m[k] - want_m) > 1e-6 * std::abs(want_m) + 1e-28) ++wrong;
        if (std::abs(v[k] - want_v) > 1e-6 * want_v + 1e-38) ++wrong;
      }
      CHECK(wrong == 0);
      CHECK(largest > 1e-6);
      checked_experts += experts != std::string::npos;
    }
    CHECK(checked_routers == 2);
    CHECK(checked_experts == (mode == "inherit" || mode == "copy_unscaled" ? 6 : 0));
  }
}


TEST_CASE("train: under upcycle_moments = inherit, steps after the switch move the merged weights exactly as dense steps") {
  // Identical experts and uniform routing (a zero router whose LR is ~0):
  // every expert's gradient is exactly 1/E of the dense FFN's, and Adam with
  // m/E, v/E^2 then takes the dense model's steps (eps aside, made tiny
  // here: eps acts E times larger on the scaled moments). The unscaled copy
  // of the moments does not: its second moment is E^2 too large.
  manual_seed(21);
  nn::LoryConfig c = nn::preset("tiny");
  c.num_experts = 0;
  c.segment_length = 8;
  const int64_t E = 4;
  const AdamWOptions o{0.9, 0.95, 1e-14, 0.1, false, 1e-30};
  const double lr = 1e-2;
  auto step = [&](nn::LoryLM& model, FlatParameters& flat, AdamW& opt, const Tensor& tokens) {
    flat.zero_grads();
    model.loss(tokens).backward();
    flat.accumulate_micro_batch();
    opt.step(flat, lr, 0.0);
  };
  std::vector<Tensor> batches;
  for (int i = 0; i < 6; ++i) batches.push_back(random_tokens(2, 33, c.vocab_size, 100 + i));

  // Three dense steps, so the moments hold history; then the switch.
  nn::LoryLM dense(c);
  FlatParameters dense_flat(dense, DType::f32);
  AdamW dense_opt(dense_flat, o);
  for (int i = 0; i < 3; ++i) step(dense, dense_flat, dense_opt, batches[static_cast<size_t>(i)]);
  const std::vector<float> before = dense_flat.master.to_vector<float>();

  std::map<std::string, double> worst;  // mode -> the largest |lory - dense| over the dense update
  for (const UpcycleMoments mode : {UpcycleMoments::inherit, UpcycleMoments::copy_unscaled}) {
    const std::unique_ptr<nn::LoryLM> lory = nn::upcycle(dense, E);
    FlatParameters lory_flat(*lory, DType::f32);
    AdamW lory_opt(lory_flat, o);
    transfer_moments_at_upcycle(dense_flat, dense_opt, lory_flat, lory_opt, E, mode);
    for (size_t j = 0; j < lory_flat.slots().size(); ++j)
      if (lory_flat.slots()[j].name.find(".mlp.router.") != std::string::npos)
        lory_flat.view(lory_flat.master, j).copy_(zeros(lory_flat.slots()[j].shape));
    worst[upcycle_moments_name(mode)] = 0;
    // The dense twin continues from the same state.
    nn::LoryLM twin(c);
    FlatParameters twin_flat(twin, DType::f32);
    twin_flat.master.copy_(dense_flat.master);
    AdamW twin_opt(twin_flat, o);
    twin_opt.exp_avg.copy_(dense_opt.exp_avg);
    twin_opt.exp_avg_sq.copy_(dense_opt.exp_avg_sq);
    twin_opt.steps = dense_opt.steps;
    for (int i = 3; i < 6; ++i) {
      step(*lory, lory_flat, lory_opt, batches[static_cast<size_t>(i)]);
      step(twin, twin_flat, twin_opt, batches[static_cast<size_t>(i)]);
    }
    const std::vector<float> after = twin_flat.master.to_vector<float>();
    double moved = 0;
    for (size_t k = 0; k < after.size(); ++k) moved = std::max(moved, std::abs(double(after[k]) - before[k]));
    REQUIRE(moved > 1e-3);
    for (size_t j = 0; j < lory_flat.slots().size(); ++j) {
      const FlatSlot& s = lory_flat.slots()[j];
      bool expert_stack = false;
      const std::string source = nn::upcycle_source(s.name, &expert_stack);
      if (source.empty()) continue;
      const FlatSlot* d = twin_flat.find(source);
      REQUIRE(d);
      const std::vector<float> want = twin_flat.view(twin_flat.master, static_cast<size_t>(d - twin_flat.slots().data()))
                                          .contiguous()
                                          .to_vector<float>();
      const std::vector<float> got = lory_flat.view(lory_flat.master, j).contiguous().to_vector<float>();
      REQUIRE(got.size() == want.size() * (expert_stack ? E : 1));
      for (size_t k = 0; k < got.size(); ++k)
        worst[upcycle_moments_name(mode)] =
            std::max(worst[upcycle_moments_name(mode)], std::abs(double(got[k]) - want[k % want.size()]) / moved);
    }
  }
  MESSAGE("largest difference from the dense steps, as a share of the largest dense update: inherit ",
          worst["inherit"], ", copy_unscaled ", worst["copy_unscaled"]);
  CHECK(worst["inherit"] < 1e-4);
  CHECK(worst["copy_unscaled"] > 0.05);
}

namespace {

// Trains `steps` straight in one directory, and in another stops after
// `stop`, resumes and finishes; the losses and the final checkpoints must be
// the same bits.
void check_exact_resume(const std::string& name, const std::vector<ConfigOverride>& overrides, int64_t stop,
                        int64_t dense_steps) {
  const std::string a = fresh_dir(name + "-straight"), b = fresh_dir(name + "-resumed");
  RunResult straight;
  {
    Trainer t(tiny_config(a, overrides), false, true);
    REQUIRE(t.plan().dense_steps == dense_steps);
    straight = t.run();
  }
  REQUIRE(straight.end == RunEnd::finished);
  const TrainConfig cb = tiny_config(b, overrides);
  std::vector<double> losses;
  {
    Trainer t(cb, false, true);
    t.stop_after(stop);
    const RunResult r = t.run();
    REQUIRE(r.end == RunEnd::stopped);
    CHECK(r.step == stop);
    losses = r.losses;
  }
  CHECK(read_checkpoint_info(latest_checkpoint(b)).state.lory_phase == (stop > dense_steps));
  {
    Trainer t(cb, true, true);
    CHECK(t.step() == stop);
    const RunResult r = t.run();
    REQUIRE(r.end == RunEnd::finished);
    CHECK(r.step == straight.step);
    losses.insert(losses.end(), r.losses.begin(), r.losses.end());
  }
  REQUIRE(losses.size() == straight.losses.size());
  for (size_t s = 0; s < losses.size(); ++s) {
    INFO("step " << s + 1);
    CHECK(losses[s] == straight.losses[s]);  // bitwise
  }
  const std::string ca = latest_checkpoint(a), cr = latest_checkpoint(b);
  CHECK(fs::path(ca).filename() == fs::path(cr).filename());
  const auto wa = tensor_bits(ca + "/model.safetensors"), wb = tensor_bits(cr + "/model.safetensors");
  CHECK(wa.size() == wb.size());
  CHECK(wa.count("model.layers.1.mlp.router.weight") == 1);
  for (const auto& [n, bits] : wa) {
    INFO(n);
    REQUIRE(wb.count(n) == 1);
    CHECK(wb.at(n) == bits);
  }
  CHECK(tensor_bits(ca + "/optimizer.safetensors") == tensor_bits(cr + "/optimizer.safetensors"));
  CHECK(read_checkpoint_info(ca).param_steps == read_checkpoint_info(cr).param_steps);
  CHECK(read_checkpoint_info(cr).model_config.segment_length ==
        16);  // the config's Lory keys, not config.json defaults
  // The resumed run's metrics hold every step once.
  std::vector<int64_t> train_steps;
  std::ifstream metrics(b + "/metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.at("type") == "train") train_steps.push_back(j.at("step").get<int64_t>());
  }
  std::vector<int64_t> want(straight.losses.size());
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<int64_t>(i) + 1;
  CHECK(train_steps == want);
}

}  // namespace

TEST_CASE("train: stop and resume after the dense-to-Lory switch repeats the straight run bit for bit") {
  check_exact_resume("resume-after-switch", {{"schedule.dense_warmup", "0.17"}}, 3, 1);
}

TEST_CASE(
    "train: stop and resume before the switch (a dense checkpoint of a Lory run) repeats the straight run bit for "
    "bit") {
  check_exact_resume("resume-before-switch", {{"schedule.dense_warmup", "0.67"}}, 3, 4);
  // Stopped exactly at the switch: the checkpoint is dense, the resumed run upcycles first.
  check_exact_resume("resume-at-switch", {{"schedule.dense_warmup", "0.5"}}, 3, 3);
}

TEST_CASE("train: the Expert Choice baselines upcycle from the dense warm-up, train, and resume bit for bit") {
  for (const std::string type : {"expert_choice_token", "expert_choice_segment"}) {
    INFO(type);
    const std::vector<ConfigOverride> overrides{{"schedule.dense_warmup", "0.17"}, {"model.moe_type", type}};
    check_exact_resume("resume-" + type, overrides, 3, 1);
    std::vector<ConfigOverride> scaled_gates = overrides;
    scaled_gates.push_back({"model.expert_choice_gates", "softmax_times_experts"});
    const std::string dir = fresh_dir("ec-" + type);
    Trainer t(tiny_config(dir, scaled_gates), false, true);
    const RunResult r = t.run();
    CHECK(t.model().model.layers[0]->expert_choice_mlp != nullptr);
    CHECK(nn::moe_type_name(t.model().config.moe_type) == type);
    CHECK(t.model().model.layers[0]->expert_choice_mlp->gates == nn::ExpertChoiceGates::softmax_times_experts);
    CHECK(r.losses.back() < r.losses.front());
    // Resuming it under other gates would train another model from the same tensors: refused, naming the key.
    CHECK(error_of([&] { Trainer(tiny_config(dir, overrides), true, true); })
              .find("expert_choice_gates softmax_times_experts vs softmax") != std::string::npos);
  }
}

TEST_CASE("train: stop and resume in bf16 with gradient accumulation repeats the straight run bit for bit") {
  check_exact_resume("resume-bf16", {{"train.precision", "bf16"}, {"schedule.steps", "4"}}, 2, 1);
}

TEST_CASE("train: 50 steps on the fixture corpus bring the loss well below ln(vocab) and the start") {
  const std::string dir = fresh_dir("fifty");
  TrainConfig c = tiny_config(dir, {{"schedule.steps", "50"},
                                    {"optim.lr", "0.01"},
                                    {"schedule.dense_warmup", "0.1"},
                                    {"data.valid", train_data().valid}});
  Trainer t(c, false, true);
  const RunResult r = t.run();
  REQUIRE(r.end == RunEnd::finished);
  REQUIRE(r.losses.size() == 50);
  const double uniform = std::log(static_cast<double>(train_data().vocab));
  CHECK(std::abs(r.losses[0] - uniform) < 0.1);  // a fresh model predicts about uniformly
  double last = 0;
  for (size_t s = 45; s < 50; ++s) last += r.losses[s] / 5;
  INFO("first loss " << r.losses[0] << ", mean of the last 5 " << last);
  CHECK(last < r.losses[0] - 1.0);
  CHECK(last < uniform - 1.0);
  // The final evaluation on the held-out shards was written.
  const auto eval = nlohmann::json::parse(read_text(dir + "/eval.json"));
  CHECK(eval.at("domains").size() == 8);
  CHECK(eval.at("loss").get<double>() < uniform - 1.0);
  CHECK(eval.at("num_experts").get<int64_t>() == 4);
  CHECK(eval.at("routing_weights").size() == 8);
}

TEST_CASE("train: --profile times N Lory steps after a warm-up step into profile.json, and trains the same") {
  // 6 steps: step 1 dense, then upcycling; step 2 is the Lory warm-up.
  const std::string plain_dir = fresh_dir("profile-plain"), dir = fresh_dir("profile");
  Trainer plain(tiny_config(plain_dir), false, true);
  const RunResult expected = plain.run();
  Trainer t(tiny_config(dir), false, true);
  t.profile(2);
  const RunResult r = t.run();
  REQUIRE(r.end == RunEnd::finished);
  CHECK(r.losses == expected.losses);  // bit for bit: profiling only reads clocks
  CHECK(!profiler::enabled());

  const auto j = nlohmann::json::parse(read_text(dir + "/profile.json"));
  CHECK(j.at("steps") == 2);
  CHECK(j.at("title").get<std::string>().find("steps 3-4 (Lory model)") != std::string::npos);
  CHECK(j.at("wall_s").get<double>() > 0);
  std::map<std::string, int64_t> calls;  // "name/phase/layer"
  for (const auto& row : j.at("rows"))
    calls[row.at("name").get<std::string>() + "/" + row.at("phase").get<std::string>() + "/" +
          row.at("layer").get<std::string>()] = row.at("calls").get<int64_t>();
  // Per step: 2 micro-batches (256 tokens in micro-batches of 2 x 64), one update.
  CHECK(calls["zero_grads/optimizer/"] == 2);
  CHECK(calls["load_batch/other/"] == 4);
  CHECK(calls["autograd_engine/backward/"] == 4);
  CHECK(calls["accumulate_grads/optimizer/"] == 4);
  CHECK(calls["grad_norm/optimizer/"] == 2);
  CHECK(calls["adamw_step/optimizer/"] == 2);
  CHECK(calls["check_weights_finite/optimizer/"] == 2);
  CHECK(calls["cross_entropy/forward/loss"] == 4);
  CHECK(calls["segment_mean/forward/lory_ffn"] == 2 * 2 * 2);  // 2 layers x 2 micro-batches x 2 steps
  CHECK(calls["swiglu/forward/ffn"] == 0);                      // no dense FFN is left
  double phases = 0;
  for (const auto& [phase, seconds] : j.at("phases").items()) phases += seconds.get<double>();
  CHECK(phases == doctest::Approx(j.at("wall_s").get<double>()).epsilon(1e-6));  // untracked included

  // More steps asked than the run has: the ones it had (3-6), reported at the end.
  const std::string rest_dir = fresh_dir("profile-rest");
  Trainer rest(tiny_config(rest_dir), false, true);
  rest.profile(10);
  REQUIRE(rest.run().end == RunEnd::finished);
  const auto k = nlohmann::json::parse(read_text(rest_dir + "/profile.json"));
  CHECK(k.at("steps") == 4);
  CHECK(k.at("title").get<std::string>().find("steps 3-6 (Lory model)") != std::string::npos);
}

// ---------------------------------------------------------------------------
// Failures, signals, checkpoint housekeeping
// ---------------------------------------------------------------------------

TEST_CASE("train: a NaN in a parameter stops the run at step 1 naming the parameter, and writes no checkpoint") {
  const std::string dir = fresh_dir("nan-param");
  Trainer t(tiny_config(dir, {{"schedule.dense_warmup", "0"}}), false, true);
  REQUIRE(t.model().config.num_experts == 4);
  t.model().parameter("model.layers.1.self_attn.q_proj.weight").data<float>()[5] = NAN;
  const RunResult r = t.run();
  CHECK(r.end == RunEnd::non_finite);
  CHECK(r.step == 0);
  CHECK(r.losses.empty());
  CHECK(r.message.find("step 1: the loss is") != std::string::npos);
  CHECK(r.message.find("parameter model.layers.1.self_attn.q_proj.weight holds NaN/Inf values") != std::string::npos);
  CHECK(r.message.find("no checkpoint was written") != std::string::npos);
  CHECK(latest_checkpoint(dir).empty());
  CHECK(read_text(dir + "/metrics.jsonl").find("\"event\":\"non_finite\"") != std::string::npos);
}

TEST_CASE("train: a huge learning rate stops the run at the first non-finite step, naming the step and where") {
  const std::string dir = fresh_dir("nan-lr");
  Trainer t(tiny_config(dir, {{"optim.lr", "1e30"}, {"schedule.warmup", "0"}, {"checkpoint.every", "1"}}), false, true);
  const RunResult r = t.run();
  REQUIRE(r.end == RunEnd::non_finite);
  INFO(r.message);
  CHECK(r.step >= 1);
  CHECK(r.step < 6);
  CHECK(static_cast<int64_t>(r.losses.size()) == r.step);
  for (double l : r.losses) CHECK(std::isfinite(l));
  CHECK(r.message.rfind("step " + std::to_string(r.step + 1) + ": ", 0) == 0);
  const bool names_where = r.message.find("model.") != std::string::npos ||
                           r.message.find("lm_head") != std::string::npos ||
                           r.message.find("logits") != std::string::npos;
  CHECK(names_where);
  // The checkpoints written so far hold only finite weights, and the message points at the last.
  const std::string last = latest_checkpoint(dir);
  REQUIRE(!last.empty());
  CHECK(r.message.find("the last good checkpoint is " + last) != std::string::npos);
  CHECK(read_checkpoint_info(last).state.step == r.step);
  for (const auto& [name, tensor] : io::load_safetensors(last + "/model.safetensors").tensors) {
    INFO(name);
    const std::vector<float> v = tensor.to_vector<float>();
    CHECK(std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); }));
  }
}

TEST_CASE("train: an update that overflows the weights stops the run before a checkpoint keeps them") {
  // lr 1e38: lr / (1 - beta1) overflows f32, so the first update writes
  // Inf/NaN into the weights from perfectly finite gradients (0 * Inf for
  // the embedding rows of tokens not in the batch). The loss and gradient
  // checks cannot see that; the weights must be checked before they are
  // saved as a "good" checkpoint.
  const std::string dir = fresh_dir("overflow");
  Trainer t(tiny_config(dir, {{"optim.lr", "1e38"}, {"schedule.warmup", "0"}, {"checkpoint.every", "1"}}), false, true);
  const RunResult r = t.run();
  REQUIRE(r.end == RunEnd::non_finite);
  CHECK(r.message.find("model.embed_tokens.weight") != std::string::npos);
  const std::string last = latest_checkpoint(dir);
  if (!last.empty()) {
    CHECK(r.message.find("the last good checkpoint is " + last) != std::string::npos);
    std::vector<std::string> non_finite;
    for (const auto& [name, tensor] : io::load_safetensors(last + "/model.safetensors").tensors) {
      const std::vector<float> v = tensor.to_vector<float>();
      if (!std::all_of(v.begin(), v.end(), [](float x) { return std::isfinite(x); })) non_finite.push_back(name);
    }
    INFO("NaN/Inf in " << non_finite.size() << " tensors of " << last << ", first "
                       << (non_finite.empty() ? "" : non_finite.front()));
    CHECK(non_finite.empty());
  } else {
    CHECK(r.message.find("no checkpoint was written") != std::string::npos);
  }
}

TEST_CASE("train: a stop signal ends the run after the current step with a checkpoint that resumes") {
  const std::string dir = fresh_dir("signal");
  const TrainConfig c = tiny_config(dir);
  {
    StopSignalReset reset;
    Trainer t(c, false, true);
    Trainer::stop_signal = 15;
    const RunResult r = t.run();
    CHECK(r.end == RunEnd::stopped);
    CHECK(r.step == 1);
    CHECK(r.losses.size() == 1);
  }
  CHECK(Trainer::stop_signal == 0);
  CHECK(fs::path(latest_checkpoint(dir)).filename() == "step-00000001");
  Trainer resumed(c, true, true);
  const RunResult r = resumed.run();
  CHECK(r.end == RunEnd::finished);
  CHECK(r.losses.size() == 5);
  CHECK(fs::path(latest_checkpoint(dir)).filename() == "step-00000006");
}

TEST_CASE(
    "train: checkpoints keep only the newest keep_last, skip half-written ones, and a fresh run refuses the dir") {
  const std::string dir = fresh_dir("keep");
  const TrainConfig c =
      tiny_config(dir, {{"schedule.steps", "5"}, {"checkpoint.every", "1"}, {"checkpoint.keep_last", "2"}});
  {
    Trainer t(c, false, true);
    REQUIRE(t.run().end == RunEnd::finished);
  }
  CHECK(checkpoint_dirs(dir) == std::vector<std::string>{"step-00000004", "step-00000005"});
  const std::string newest = (fs::path(dir) / "checkpoints" / "step-00000005").string();
  for (const char* file :
       {"config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "train_config.toml"})
    CHECK(fs::exists(fs::path(newest) / file));
  // The saved config is the resolved one and reads back to the same text.
  const std::string saved = read_text(newest + "/train_config.toml");
  CHECK(train_config_to_toml(parse_train_config(saved, "train_config.toml")) == saved);
  CHECK(saved.find("vocab_size = " + std::to_string(train_data().vocab)) != std::string::npos);

  // A half-written checkpoint (temporary name) and a directory without its
  // trainer_state.json are not checkpoints.
  const fs::path tmp = fs::path(dir) / "checkpoints" / ".step-00000009.tmp";
  fs::create_directories(tmp);
  fs::copy_file(fs::path(newest) / "trainer_state.json", tmp / "trainer_state.json");
  fs::create_directories(fs::path(dir) / "checkpoints" / "step-00000010");
  CHECK(latest_checkpoint(dir) == newest);

  const std::string refused = error_of([&] { Trainer t(c, false, true); });
  CHECK(refused.find("already holds checkpoints") != std::string::npos);
  CHECK(refused.find("--resume") != std::string::npos);
  CHECK(error_of([&] {
          Trainer t(tiny_config(fresh_dir("keep-empty")), true, true);
        }).find("--resume: no checkpoint in") != std::string::npos);
  // Resuming a finished run trains no more and re-saves the same checkpoint.
  const auto weights = tensor_bits(newest + "/model.safetensors");
  Trainer again(c, true, true);
  CHECK(again.step() == 5);
  const RunResult r = again.run();
  CHECK(r.end == RunEnd::finished);
  CHECK(r.losses.empty());
  CHECK(latest_checkpoint(dir) == newest);
  CHECK(tensor_bits(newest + "/model.safetensors") == weights);
  CHECK(checkpoint_dirs(dir) ==
        std::vector<std::string>{".step-00000009.tmp", "step-00000004", "step-00000005", "step-00000010"});
}

// ---------------------------------------------------------------------------
// Evaluation and routing statistics
// ---------------------------------------------------------------------------

TEST_CASE("train: the evaluation set cuts each domain's documents into sequences of L+1 tokens overlapping by one") {
  const TrainData& d = train_data();
  const EvalSet set = build_eval_set(d.valid, kSeqLen, 1000, d.eos, d.vocab);
  CHECK(set.seq_len == kSeqLen);
  REQUIRE(set.domains.size() == 8);
  CHECK(std::is_sorted(set.domains.begin(), set.domains.end()));
  for (size_t i = 0; i < set.domains.size(); ++i) {
    INFO(set.domains[i]);
    const auto& seqs = set.sequences[i];
    CHECK(set.predicted_tokens(i) == 1024);  // ceil(1000 / 64) sequences of 64 predicted tokens
    REQUIRE(seqs.size() == 16);
    for (size_t k = 0; k < seqs.size(); ++k) {
      CHECK(seqs[k].size() == static_cast<size_t>(kSeqLen + 1));
      if (k + 1 < seqs.size()) CHECK(seqs[k].back() == seqs[k + 1].front());
    }
  }
  // The first domain's stream starts with its first document, followed by EOS.
  const std::vector<std::string> shards = expand_paths(d.valid);
  corpus::ShardReader shard(shards.front(), d.vocab);
  int64_t doc = 0;
  while (shard.domains()[static_cast<size_t>(shard.doc_domain(doc))] != set.domains[0]) ++doc;
  std::vector<int32_t> tokens(static_cast<size_t>(shard.doc_length(doc)));
  shard.read_tokens(shard.doc_start(doc), shard.doc_length(doc), tokens.data());
  tokens.push_back(d.eos);
  std::vector<int32_t> stream;
  for (const auto& s : set.sequences[0]) stream.insert(stream.end(), s.begin(), s.end() - 1);
  const size_t n = std::min(tokens.size(), stream.size());
  CHECK(std::equal(tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(n), stream.begin()));
  CHECK_THROWS_WITH_AS(expand_paths(temp_root().string() + "/nothing-*.bin"), doctest::Contains("matches no file"),
                       Error);
}

namespace {

// The untrained Lory model the evaluation tests run: "tiny", segments of 16.
nn::LoryConfig eval_model_config(int64_t vocab) {
  nn::LoryConfig c = nn::preset("tiny");
  c.vocab_size = vocab;
  c.segment_length = 16;
  return c;
}

}  // namespace

TEST_CASE("train: evaluate gives per-domain losses whose token-weighted mean is the overall loss, routing sums to 1") {
  const TrainData& d = train_data();
  const EvalSet set = build_eval_set(d.valid, kSeqLen, 128, d.eos, d.vocab);
  const nn::LoryConfig c = eval_model_config(d.vocab);
  manual_seed(9);
  nn::LoryLM model(c);
  const EvalResult r = evaluate(model, set, nn::TrainingRouting::causal_segment, 3);
  CHECK(model.training());  // evaluate puts the mode back
  CHECK(r.routing == "causal_segment");
  REQUIRE(r.domains.size() == 8);
  double nll = 0;
  int64_t tokens = 0;
  for (const auto& [name, e] : r.domains) {
    INFO(name);
    CHECK(std::isfinite(e.loss));
    CHECK(e.tokens == 128);
    CHECK(e.ppl == doctest::Approx(std::exp(e.loss)));
    nll += e.loss * static_cast<double>(e.tokens);
    tokens += e.tokens;
    REQUIRE(e.routing.size() == 2);
    for (const auto& layer : e.routing) {
      REQUIRE(layer.size() == 4);
      double sum = 0;
      for (double w : layer) {
        CHECK(w > 0);
        sum += w;
      }
      CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));
    }
  }
  CHECK(r.tokens == tokens);
  CHECK(r.loss == doctest::Approx(nll / static_cast<double>(tokens)).epsilon(1e-12));
  CHECK(std::abs(r.loss - std::log(static_cast<double>(d.vocab))) < 0.1);  // an untrained model
  // The batch size changes nothing.
  const EvalResult one = evaluate(model, set, nn::TrainingRouting::causal_segment, 1);
  CHECK(one.loss == doctest::Approx(r.loss).epsilon(1e-6));
  const std::string json = eval_result_json(r, c, {{"step", "7"}});
  CHECK(json.find("\"routing_weights\"") != std::string::npos);
  CHECK(json.find("\"step\": \"7\"") != std::string::npos);
  // What lory_eval --compare reads back: every domain's per-block losses.
  const RunLosses back = run_losses_from_json(json, "eval.json");
  REQUIRE(back.size() == r.domains.size());
  for (const auto& [name, e] : r.domains) {
    CHECK(back.at(name).nll == e.blocks.nll);
    CHECK(back.at(name).tokens == e.blocks.tokens);
  }
  CHECK_THROWS_WITH_AS(run_losses_from_json("{\"domains\": {\"web\": {\"ppl\": 3}}}", "old.json"),
                       doctest::Contains("old.json: domain 'web' has no per-block losses"), Error);
}

TEST_CASE("train: evaluate sums the loss per document block; the blocks add up to the domain and bound its interval") {
  const TrainData& d = train_data();
  constexpr int64_t kBlock = 40;
  const EvalSet set = build_eval_set(d.valid, kSeqLen, 600, d.eos, d.vocab, kBlock);
  REQUIRE(set.blocks.size() == set.domains.size());
  for (size_t i = 0; i < set.domains.size(); ++i) {
    INFO(set.domains[i]);
    // Blocks run in stream order, never longer than kBlock tokens (+1: the EOS).
    std::map<int32_t, int64_t> size;
    int32_t last = 0;
    for (const auto& seq : set.blocks[i])
      for (int32_t b : seq) {
        CHECK(b >= last);
        last = b;
        ++size[b];
      }
    for (const auto& [b, n] : size) CHECK(n <= kBlock + 1);
    // A new block starts right after every EOS (the EOS ends its document's
    // last block), and a block never spans two documents.
    const std::vector<int32_t>& first_seq = set.sequences[i][0];
    for (size_t s = 0; s < set.sequences[i].size(); ++s) {
      const auto& seq = set.sequences[i][s];
      const auto& blocks = set.blocks[i][s];
      for (size_t t = 1; t + 1 < seq.size(); ++t)
        if (seq[t] == d.eos) CHECK(blocks[t] == blocks[t - 1] + 1);  // blocks[t] is the block of seq[t + 1]
    }
    CHECK(first_seq.size() == static_cast<size_t>(kSeqLen + 1));
    // A block belongs to one document; documents own consecutive blocks.
    const std::vector<int32_t>& owner = set.block_document[i];
    CHECK(std::is_sorted(owner.begin(), owner.end()));
    CHECK(static_cast<size_t>(last) < owner.size());
  }
  manual_seed(4);
  nn::LoryLM model(eval_model_config(d.vocab));
  const EvalResult r = evaluate(model, set, nn::TrainingRouting::causal_segment, 4);
  for (const auto& [name, e] : r.domains) {
    INFO(name);
    double nll = 0;
    int64_t tokens = 0;
    for (size_t k = 0; k < e.blocks.nll.size(); ++k) nll += e.blocks.nll[k], tokens += e.blocks.tokens[k];
    CHECK(tokens == e.tokens);
    CHECK(nll == doctest::Approx(e.loss * static_cast<double>(e.tokens)).epsilon(1e-9));
    CHECK(e.blocks.nll.size() >= 600 / kBlock);
    CHECK(e.documents >= 1);
    CHECK(e.documents <= static_cast<int64_t>(e.blocks.nll.size()));
    CHECK(e.ppl_interval.lo <= e.ppl);
    CHECK(e.ppl_interval.hi >= e.ppl);
    CHECK(e.ppl_interval.hi > e.ppl_interval.lo);
  }
  CHECK(r.ppl_interval.lo < r.ppl);
  CHECK(r.ppl_interval.hi > r.ppl);
  // The per-token NLL agrees with the model's own fused cross-entropy.
  const auto& seq = set.sequences[0][0];
  const Tensor tokens = from_vector(std::vector<int64_t>(seq.begin(), seq.end()), {1, static_cast<int64_t>(seq.size())},
                                    {DType::i64});
  const double fused = model.loss(tokens).item();
  const EvalSet one{set.seq_len, {set.domains[0]}, {{seq}}, {{set.blocks[0][0]}}, {set.block_document[0]}};
  CHECK(evaluate(model, one, nn::TrainingRouting::causal_segment, 1).loss == doctest::Approx(fused).epsilon(1e-5));
}

TEST_CASE("train: routing stats count an expert as used above 2/E within the window and average the entropy") {
  RoutingStats stats(2, 4, 3);
  const Tensor peaked = from_vector(std::vector<float>{0.7f, 0.1f, 0.1f, 0.1f}, {1, 1, 4});
  const Tensor uniform = full({1, 2, 4}, 0.25);
  stats.add(0, {peaked, uniform});
  CHECK(stats.experts_used(0) == std::vector<int64_t>{1, 0});  // 0.25 is not above 2/E = 0.5
  CHECK(stats.experts_used(2) == std::vector<int64_t>{1, 0});
  CHECK(stats.experts_used(3) == std::vector<int64_t>{0, 0});  // out of the 3-step window
  const std::vector<double> h = stats.take_entropy();
  REQUIRE(h.size() == 2);
  CHECK(h[0] == doctest::Approx(-(0.7 * std::log(0.7) + 0.3 * std::log(0.1))).epsilon(1e-6));
  CHECK(h[1] == doctest::Approx(std::log(4.0)).epsilon(1e-6));
  CHECK(stats.take_entropy() == std::vector<double>{0.0, 0.0});  // reset by take
  CHECK_THROWS_WITH_AS(stats.add(1, {peaked}), doctest::Contains("expected 2"), Error);
}

TEST_CASE("train: routing specialisation is the mean Jensen-Shannon divergence between domains' routing, in bits") {
  // Two distributions by hand: JS([1, 0], [0, 1]) = 1 bit; JS(p, p) = 0;
  // JS([1/2, 1/2], [1, 0]) = (1/2 log2(2/3) + 1/2 log2(2/1) ... ) computed in full below.
  CHECK(js_divergence_bits({1, 0}, {0, 1}) == doctest::Approx(1.0));
  CHECK(js_divergence_bits({0.3, 0.7}, {0.3, 0.7}) == 0.0);
  const double m0 = 0.75, m1 = 0.25;  // the mixture of [1/2, 1/2] and [1, 0]
  const double want = (0.5 * std::log2(0.5 / m0) + 0.5 * std::log2(0.5 / m1) + 1.0 * std::log2(1.0 / m0)) / 2;
  CHECK(js_divergence_bits({0.5, 0.5}, {1, 0}) == doctest::Approx(want));
  CHECK(js_divergence_bits({0.5, 0.5}, {1, 0}) == doctest::Approx(js_divergence_bits({1, 0}, {0.5, 0.5})));
  // Per layer, averaged over the 3 pairs of 3 domains: layer 0 routes every
  // domain alike, layer 1 sends a and b to expert 0 and c to expert 1.
  const std::map<std::string, std::vector<std::vector<double>>> routing = {
      {"a", {{0.5, 0.5}, {1, 0}}}, {"b", {{0.5, 0.5}, {1, 0}}}, {"c", {{0.5, 0.5}, {0, 1}}}};
  const std::vector<double> s = routing_specialisation(routing);
  REQUIRE(s.size() == 2);
  CHECK(s[0] == 0.0);
  CHECK(s[1] == doctest::Approx(2.0 / 3.0));  // pairs (a,b) 0, (a,c) 1, (b,c) 1
  CHECK(routing_specialisation({{"a", {{1, 0}}}}).empty());  // one domain: nothing to compare
}

TEST_CASE("train: a resume rewrites metrics.jsonl whole on disk before its first step (a kill then loses nothing)") {
  // What a SIGKILL right after a resume leaves is what is on disk at that
  // moment: the kept history must already be there, not in a stdio buffer
  // of a file truncated in place.
  const std::string dir = fresh_dir("metrics-kill");
  const TrainConfig c = tiny_config(dir);
  {
    Trainer t(c, false, true);
    t.stop_after(3);
    REQUIRE(t.run().end == RunEnd::stopped);
  }
  const auto train_steps = [&] {
    std::vector<int64_t> steps;
    std::ifstream metrics(dir + "/metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) {
      const auto j = nlohmann::json::parse(line);  // every line whole
      if (j.at("type") == "train") steps.push_back(j.at("step").get<int64_t>());
    }
    return steps;
  };
  REQUIRE(train_steps() == std::vector<int64_t>{1, 2, 3});
  Trainer resumed(c, true, true);  // the resume has rewritten the file; nothing has run
  CHECK(train_steps() == std::vector<int64_t>{1, 2, 3});
  for (const auto& entry : fs::directory_iterator(dir))  // no temporary left behind by the rewrite
    CHECK(entry.path().filename().string().rfind(".metrics.jsonl.tmp", 0) != 0);
  REQUIRE(resumed.run().end == RunEnd::finished);
  CHECK(train_steps() == std::vector<int64_t>{1, 2, 3, 4, 5, 6});  // appended, each step once
}

TEST_CASE("train: model.init_from starts from a model directory: dense (upcycled now or after the warm-up) or Lory") {
  const TrainData& d = train_data();
  // A pretrained dense model as transformers might hold it: grouped-query
  // attention, tied embeddings, bf16, in shards.
  nn::LoryConfig pc = nn::preset("tiny");
  pc.num_experts = 0;
  pc.vocab_size = d.vocab;
  pc.num_key_value_heads = 2;
  pc.tie_word_embeddings = true;
  manual_seed(11);
  nn::LoryLM pretrained(pc);
  const std::string model_dir = fresh_dir("init-from-model");
  nn::save_pretrained(pretrained, model_dir, DType::bf16, 16384);
  REQUIRE(fs::exists(model_dir + "/model.safetensors.index.json"));
  auto rounded = [&](const std::string& name) {
    return pretrained.parameter(name).to(DType::bf16).to(DType::f32).to_vector<float>();
  };

  // No warm-up: the first model is the pretrained one upcycled into 4 experts.
  {
    TrainConfig c = tiny_config(fresh_dir("init-from-now"), {{"model.init_from", model_dir},
                                                             {"schedule.dense_warmup", "0"},
                                                             {"schedule.steps", "2"}});
    CHECK(c.model.resolved.num_key_value_heads == 2);  // the shape is the directory's
    CHECK(c.model.resolved.tie_word_embeddings);
    CHECK(c.model.resolved.num_experts == 4);  // the Lory keys are the run's
    CHECK(c.model.resolved.segment_length == 16);
    Trainer t(c, false, true);
    CHECK(t.model().config.is_lory());
    CHECK(t.model().parameter("model.layers.1.mlp.experts.up_proj.weight").select(0, 3).to_vector<float>() ==
          rounded("model.layers.1.mlp.up_proj.weight"));
    CHECK(t.model().parameter("model.embed_tokens.weight").to_vector<float>() == rounded("model.embed_tokens.weight"));
    const RunResult r = t.run();
    CHECK(r.end == RunEnd::finished);
    REQUIRE(r.losses.size() == 2);
    CHECK(std::isfinite(r.losses[1]));
  }
  // With a warm-up: the dense model is the pretrained one; upcycled at the switch.
  {
    TrainConfig c = tiny_config(fresh_dir("init-from-warm"), {{"model.init_from", model_dir},
                                                              {"schedule.dense_warmup", "0.5"},
                                                              {"schedule.steps", "2"}});
    Trainer t(c, false, true);
    CHECK(!t.model().config.is_lory());
    CHECK(t.model().parameter("model.layers.0.self_attn.k_proj.weight").to_vector<float>() ==
          rounded("model.layers.0.self_attn.k_proj.weight"));
    t.run();
    CHECK(t.model().config.is_lory());
  }
  // A Lory model to start from has no dense warm-up; asking for one is refused.
  const std::string lory_dir = fresh_dir("init-from-lory");
  {
    nn::LoryConfig lc = pc;
    lc.num_experts = 4;
    lc.segment_length = 16;
    nn::LoryLM lory(lc);
    nn::save_pretrained(lory, lory_dir);
    TrainConfig c = tiny_config(fresh_dir("init-from-lory-run"), {{"model.init_from", lory_dir},
                                                                  {"schedule.dense_warmup", "0"},
                                                                  {"schedule.steps", "1"}});
    Trainer t(c, false, true);
    CHECK(t.plan().dense_steps == 0);
    CHECK(t.model().parameter("model.layers.0.mlp.router.weight").to_vector<float>() ==
          lory.parameter("model.layers.0.mlp.router.weight").to_vector<float>());
  }
  CHECK(error_of([&] { tiny_config(fresh_dir("x"), {{"model.init_from", lory_dir}}); }) ==
        "test config: schedule.dense_warmup = 0.17 but model.init_from = " + lory_dir +
            " is already a Lory model (no dense phase to warm up)");
  CHECK(error_of([&] {
          tiny_config(fresh_dir("x"), {{"model.init_from", lory_dir}, {"schedule.dense_warmup", "0"},
                                       {"model.num_experts", "8"}});
        }) == "command line: model.num_experts = 8 but model.init_from = " + lory_dir + " has 4 experts per layer");
  CHECK(error_of([&] {
          tiny_config(fresh_dir("x"), {{"model.init_from", lory_dir}, {"model.config", lory_dir + "/config.json"}});
        }).find("model.config and model.init_from (command line) both give the model's config.json") !=
        std::string::npos);
  CHECK(error_of([&] { tiny_config(fresh_dir("x"), {{"model.init_from", "/nonexistent"}}); })
            .find("/nonexistent/config.json") != std::string::npos);
}
