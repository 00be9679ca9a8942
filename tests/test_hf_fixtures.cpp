// Models saved by transformers itself (tests/fixtures/hf/, made by
// tests/fixtures/make_hf_fixtures.py): they load here and compute the logits
// transformers computed; our exports have the structure transformers writes.
//
// The fixtures are tiny LlamaForCausalLM models (d 32, 4 heads of 8, 2
// layers) with grouped-query attention and tied embeddings, untied and
// multi-head, sharded, and saved in bf16; each directory holds the ids
// (ids.npy, [2, 12]) and transformers' float32 logits for them (logits.npy).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "io/npy.h"
#include "nn/checkpoint.h"
#include "nn/generate.h"
#include "tensor/graph.h"
#include "tensor/ops.h"
#include "tests/compare.h"

using namespace lory;
using namespace lory::nn;
using lory::test::max_abs_diff;

namespace {

const std::string kFixtures = std::string(LORY_SOURCE_DIR) + "/tests/fixtures/hf/";

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot open ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("lory_hf_fixture_test_" + name);
  std::filesystem::remove_all(dir);
  return dir.string();
}

// name -> shape of every tensor of a directory's safetensors (one file or shards).
std::map<std::string, Shape> tensor_shapes(const std::string& dir) {
  std::map<std::string, Shape> out;
  for (const auto& [name, t] : io::load_safetensors_dir(dir).tensors) out[name] = t.shape();
  return out;
}

// Our logits for the fixture's ids against transformers'.
double logits_error(LoryLM& model, const std::string& dir) {
  NoGradGuard no_grad;
  const Tensor ids = io::read_npy(dir + "/ids.npy");
  const Tensor want = io::read_npy(dir + "/logits.npy");
  const Tensor got = model.forward(ids.to(DType::i64)).to(DType::f32);
  REQUIRE(got.shape() == want.shape());
  return max_abs_diff(got, want);
}

}  // namespace

TEST_CASE("hf fixtures: models saved by transformers load and give transformers' logits (GQA, tied, shards, bf16)") {
  for (const char* name : {"llama-gqa-tied", "llama-untied", "llama-gqa-sharded", "llama-gqa-bf16"}) {
    INFO(name);
    const std::string dir = kFixtures + name;
    auto model = load_pretrained(dir);
    CHECK(logits_error(*model, dir) < 1e-5);
  }
  // What each fixture is (so a regenerated fixture cannot quietly drop a feature).
  CHECK(load_config(kFixtures + "llama-gqa-tied/config.json").num_key_value_heads == 2);
  CHECK(load_config(kFixtures + "llama-gqa-tied/config.json").tie_word_embeddings);
  CHECK(!load_config(kFixtures + "llama-untied/config.json").tie_word_embeddings);
  CHECK(std::filesystem::exists(kFixtures + "llama-gqa-sharded/model.safetensors.index.json"));
  CHECK(!std::filesystem::exists(kFixtures + "llama-gqa-sharded/model.safetensors"));
  // bf16 weights kept as they are: the parameters are bf16, and computing in
  // f32 from them (as the fixture's logits were) gives the same logits.
  auto kept = load_pretrained(kFixtures + "llama-gqa-bf16", std::nullopt);
  CHECK(kept->model.embed_tokens.weight.dtype() == DType::bf16);
  kept->to(DType::f32);
  CHECK(logits_error(*kept, kFixtures + "llama-gqa-bf16") < 1e-5);
}

TEST_CASE("hf fixtures: a transformers GQA model with tied embeddings upcycles into Lory and trains") {
  const std::string dir = kFixtures + "llama-gqa-tied";
  auto dense = load_pretrained(dir);
  dense->config.segment_length = 4;
  manual_seed(1);
  auto lory = upcycle(*dense, 4);
  CHECK(lory->config.num_key_value_heads == 2);
  CHECK(lory->config.tie_word_embeddings);
  // Identical experts: the Lory model computes transformers' logits.
  CHECK(logits_error(*lory, dir) < 1e-5);
  // A few plain gradient steps on one batch lower its loss, and reach every
  // kind of parameter (the tied matrix, the shared key/value heads, the
  // experts and the routers).
  const Tensor tokens = io::read_npy(dir + "/ids.npy").to(DType::i64);
  const double before = lory->loss(tokens).item();
  for (int step = 0; step < 20; ++step) {
    lory->zero_grad();
    lory->loss(tokens).backward();
    NoGradGuard no_grad;
    for (auto& [name, p] : lory->named_parameters()) {
      INFO(name);
      REQUIRE(p->grad().defined());
      p->add_(p->grad() * -0.5);
    }
  }
  const double after = lory->loss(tokens).item();
  CHECK(after < before - 0.5);
}

TEST_CASE("hf fixtures: what we save has the tensors, shapes and config values transformers writes") {
  for (const char* name : {"llama-gqa-tied", "llama-untied"}) {
    INFO(name);
    const std::string fixture = kFixtures + name, ours = temp_dir(name);
    auto model = load_pretrained(fixture);
    save_pretrained(*model, ours);
    CHECK(tensor_shapes(ours) == tensor_shapes(fixture));
    // Every model key transformers wrote, we write with the same value (RoPE's
    // base under transformers 5's rope_parameters or 4.x's rope_theta).
    const nlohmann::json want = read_json(fixture + "/config.json"), got = read_json(ours + "/config.json");
    for (const char* key : {"hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                            "num_key_value_heads", "vocab_size", "rms_norm_eps", "max_position_embeddings",
                            "tie_word_embeddings", "hidden_act", "bos_token_id", "eos_token_id"}) {
      INFO(key);
      REQUIRE(got.contains(key));
      CHECK(got[key] == want[key]);
    }
    const double theta = want.contains("rope_parameters") ? want["rope_parameters"]["rope_theta"].get<double>()
                                                          : want["rope_theta"].get<double>();
    CHECK(got["rope_theta"].get<double>() == theta);
    CHECK(got["architectures"] == nlohmann::json::array({"LlamaForCausalLM"}));
    CHECK(got["model_type"] == "llama");
    // Sharded as transformers shards: the index has its two keys, and every
    // tensor maps to a file that holds it.
    const std::string sharded = temp_dir(std::string(name) + "-sharded");
    save_pretrained(*model, sharded, DType::f32, 4096);
    const nlohmann::json index = read_json(sharded + "/model.safetensors.index.json");
    CHECK(index["metadata"]["total_size"].get<int64_t>() > 0);
    CHECK(index["weight_map"].size() == tensor_shapes(fixture).size());
    for (const auto& [tensor, file] : index["weight_map"].items())
      CHECK(io::SafetensorsReader(sharded + "/" + file.get<std::string>()).contains(tensor));
    CHECK(tensor_shapes(sharded) == tensor_shapes(fixture));
  }
}

TEST_CASE("hf fixtures: greedy generation with a KV cache on the GQA, tied model follows the full forward's argmax") {
  auto model = load_pretrained(kFixtures + "llama-gqa-tied");
  GenerateOptions options;
  options.max_new_tokens = 8;
  options.sampling.temperature = 0;
  std::vector<int64_t> sequence = {1, 17, 42, 5};
  const std::vector<int64_t> generated = generate(*model, sequence, options);
  REQUIRE(generated.size() == 8);
  // Each generated token is the argmax of a whole-sequence forward over what came before.
  NoGradGuard no_grad;
  for (const int64_t token : generated) {
    const Tensor logits = model->forward(
        from_vector(sequence, {1, static_cast<int64_t>(sequence.size())}, {DType::i64}));
    const std::vector<double> last = logits.select(0, 0).select(0, logits.size(1) - 1).to_vector<double>();
    CHECK(token == std::max_element(last.begin(), last.end()) - last.begin());
    sequence.push_back(token);
  }
}
