// Checkpoints (io/safetensors.h, nn/checkpoint.h): the safetensors format
// byte for byte, bit-exact round trips, errors that name the tensor, and the
// two model surgeries: upcycling a dense model and exporting a routed one.
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tensor/graph.h"
#include "nn/checkpoint.h"
#include "tensor/ops.h"
#include "tests/compare.h"
#include "tests/errors.h"

using namespace lory;
using lory::test::error_of;
using lory::test::max_abs_diff;
using namespace lory::nn;

namespace {

std::string temp_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("lory_ckpt_test_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A safetensors file made by hand: 8-byte little-endian length, header, data.
std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string load_error(const std::string& path) {
  return error_of([&] { io::load_safetensors(path); });
}

Tensor ids(const std::vector<int64_t>& v) { return from_vector(v, {1, static_cast<int64_t>(v.size())}, {DType::i64}); }

}  // namespace

TEST_CASE("safetensors: reads a file written by hand to the format's specification") {
  const std::string dir = temp_dir("spec");
  // Two f32 values 1.0, -2.0 and one bf16 value 1.5 (0x3FC0), little-endian.
  const std::string data = std::string("\x00\x00\x80\x3f\x00\x00\x00\xc0", 8) + std::string("\xc0\x3f", 2);
  const std::string header =
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]},)"
      R"("a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}})";
  write_bytes(dir + "/x.safetensors", safetensors_bytes(header, data));
  const io::SafetensorsFile f = io::load_safetensors(dir + "/x.safetensors");
  REQUIRE(f.tensors.size() == 2);
  CHECK(f.metadata.at("format") == "pt");
  CHECK(f.get("a").shape() == Shape{2, 1});
  CHECK(f.get("a").to_vector<float>() == std::vector<float>{1.0f, -2.0f});
  CHECK(f.get("b").dtype() == DType::bf16);
  CHECK(f.get("b").to_vector<float>() == std::vector<float>{1.5f});
}

TEST_CASE("safetensors: what we write is the format: length, JSON header padded to 8 bytes, then the data") {
  const std::string dir = temp_dir("write");
  const Tensor a = from_vector(std::vector<float>{1.0f, -2.0f, 0.5f}, {3});
  const Tensor b = from_vector(std::vector<double>{1.5}, {1, 1}, {DType::bf16});
  io::save_safetensors(dir + "/y.safetensors", {{"a", a}, {"b", b.t()}}, {{"format", "pt"}});
  const std::string bytes = read_bytes(dir + "/y.safetensors");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  CHECK(n % 8 == 0);
  REQUIRE(bytes.size() == 8 + n + 12 + 2);
  const std::string header = bytes.substr(8, n);
  CHECK(header.find(R"("a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]})") != std::string::npos);
  CHECK(header.find(R"("b":{"dtype":"BF16","shape":[1,1],"data_offsets":[12,14]})") != std::string::npos);
  CHECK(header.find(R"("__metadata__":{"format":"pt"})") != std::string::npos);
  CHECK(bytes.substr(8 + n, 4) == std::string("\x00\x00\x80\x3f", 4));  // 1.0f
  CHECK(bytes.substr(8 + n + 12, 2) == std::string("\xc0\x3f", 2));     // bf16 1.5
}

TEST_CASE("safetensors: corrupt and truncated files are refused with the file and the tensor named") {
  const std::string dir = temp_dir("corrupt");
  const std::string p = dir + "/bad.safetensors";
  const std::string ok_header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  write_bytes(p, std::string("\x05\x00", 2));
  CHECK(load_error(p).find("truncated: 2 bytes") != std::string::npos);
  write_bytes(p, safetensors_bytes(ok_header, std::string(4, '\0')));
  CHECK(load_error(p) == p + ": tensor 'w': truncated file: the tensor ends at byte 8 of the data, which has only 4");
  write_bytes(p, safetensors_bytes(ok_header, "").substr(0, 20));
  CHECK(load_error(p).find("truncated: the header needs") != std::string::npos);
  write_bytes(p, safetensors_bytes(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0')));
  CHECK(load_error(p).find("tensor 'w': data_offsets [0,8] hold 8 bytes, but [3] f32 needs 12") != std::string::npos);
  write_bytes(p, safetensors_bytes(R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')));
  CHECK(load_error(p).find("tensor 'w': unsupported dtype \"Q4\"") != std::string::npos);
  write_bytes(p, safetensors_bytes("{not json", ""));
  CHECK(load_error(p).find("header is not valid JSON") != std::string::npos);
  write_bytes(p, safetensors_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                   R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                   std::string(8, '\0')));
  CHECK(load_error(p).find("tensors 'a' and 'b' overlap") != std::string::npos);
  write_bytes(p, std::string(16, '\xff'));
  CHECK(load_error(p).find("header length") != std::string::npos);
}

TEST_CASE("safetensors: a sharded directory (index + files) reads whole tensors and slices, and a bad index is named") {
  const std::string dir = temp_dir("sharded");
  const Tensor a = from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = from_vector(std::vector<float>{7, 8}, {2});
  const Tensor c = from_vector(std::vector<double>{9.5}, {1});
  io::save_safetensors(dir + "/" + io::shard_file_name("model", 0, 2), {{"a", a}, {"b", b}});
  io::save_safetensors(dir + "/" + io::shard_file_name("model", 1, 2), {{"c", c}});
  CHECK(io::shard_file_name("model", 0, 2) == "model-00001-of-00002.safetensors");
  io::write_safetensors_index(dir + "/model.safetensors.index.json",
                              {{"a", "model-00001-of-00002.safetensors"},
                               {"b", "model-00001-of-00002.safetensors"},
                               {"c", "model-00002-of-00002.safetensors"}},
                              6 * 4 + 2 * 4 + 8);
  const io::SafetensorsDirReader reader(dir);
  CHECK(reader.size() == 3);
  CHECK(reader.file_of("a").read("a").to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(reader.file_of("a").read("a").shape() == Shape{2, 3});
  CHECK(reader.file_of("a").read("a", 2, 3).to_vector<float>() == std::vector<float>{3, 4, 5});  // flat elements 2..4
  CHECK(reader.file_of("c").read("c").to_vector<double>() == std::vector<double>{9.5});
  const io::SafetensorsFile all = io::load_safetensors_dir(dir);
  CHECK(all.tensors.size() == 3);
  CHECK(all.get("b").to_vector<float>() == std::vector<float>{7, 8});
  CHECK_THROWS_WITH_AS(reader.file_of("a").read("a", 4, 3), doctest::Contains("has 6 elements; cannot read [4, 7)"),
                       Error);
  CHECK_THROWS_WITH_AS(reader.file_of("d"), doctest::Contains("no tensor named 'd'"), Error);
  // An index that puts a tensor in a file that does not hold it.
  io::write_safetensors_index(dir + "/model.safetensors.index.json",
                              {{"a", "model-00002-of-00002.safetensors"}, {"c", "model-00002-of-00002.safetensors"}}, 0);
  CHECK_THROWS_WITH_AS(io::SafetensorsDirReader(dir, "model"), doctest::Contains("puts 'a' in model-00002-of-00002.safetensors"),
                       Error);
}

TEST_CASE("checkpoint: save then load is bit-exact, in f32 and in bf16") {
  manual_seed(1);
  LoryLM model(preset("tiny"));
  const std::string dir = temp_dir("roundtrip");
  save_pretrained(model, dir);
  auto back = load_pretrained(dir);
  for (auto& [name, slot] : model.named_parameters()) {
    INFO(name);
    CHECK(slot->to_vector<float>() == back->parameter(name).to_vector<float>());
  }
  NoGradGuard no_grad;
  const Tensor x = ids({3, 1, 4, 1, 5, 9, 2, 6, 5});
  CHECK(max_abs_diff(model.forward(x), back->forward(x)) == 0.0);
  CHECK(read_bytes(dir + "/config.json").find("\"torch_dtype\": \"float32\"") != std::string::npos);

  save_pretrained(model, dir, DType::bf16);
  auto half = load_pretrained(dir, DType::bf16);
  for (auto& [name, slot] : model.named_parameters())
    CHECK(slot->to(DType::bf16).to_vector<float>() == half->parameter(name).to_vector<float>());
  CHECK(read_bytes(dir + "/config.json").find("\"torch_dtype\": \"bfloat16\"") != std::string::npos);
  // Nothing temporary is left behind.
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    CHECK(entry.path().filename().string().find(".tmp") == std::string::npos);
}

TEST_CASE("checkpoint: a missing, unexpected or misshapen tensor is named") {
  manual_seed(2);
  LoryLM model(preset("tiny"));
  const std::string dir = temp_dir("mismatch");
  io::NamedTensors tensors;
  for (auto& [name, slot] : model.named_parameters())
    if (name != "model.norm.weight") tensors.emplace_back(name, *slot);
  io::save_safetensors(dir + "/m.safetensors", tensors);
  auto parameters_error = [&] { return error_of([&] { load_parameters(model, io::SafetensorsDirReader(dir, "m")); }); };
  CHECK(parameters_error() ==
        dir + "/m.safetensors: missing tensor 'model.norm.weight' (the model has it, the file does not)");
  tensors.emplace_back("model.norm.weight", zeros({31}));
  io::save_safetensors(dir + "/m.safetensors", tensors);
  CHECK(parameters_error() ==
        dir + "/m.safetensors: tensor 'model.norm.weight' has shape [31] in the file but [32] in the model");
  tensors.back().second = ones({32});
  tensors.emplace_back("model.layers.2.mlp.router.weight", zeros({4, 32}));
  io::save_safetensors(dir + "/m.safetensors", tensors);
  CHECK(parameters_error().find("unexpected tensor 'model.layers.2.mlp.router.weight' [4, 32]") !=
        std::string::npos);
}

TEST_CASE("checkpoint: an upcycled model computes exactly what the dense model did, and its router is fresh") {
  manual_seed(3);
  LoryConfig c = preset("tiny");
  c.num_experts = 0;
  LoryLM dense(c);
  dense.to(DType::f64);
  auto lory = upcycle(dense, 4);
  CHECK(lory->config.num_experts == 4);
  CHECK(lory->parameter("model.layers.1.mlp.experts.up_proj.weight").dtype() == DType::f64);
  CHECK(lory->parameter("model.layers.1.mlp.experts.up_proj.weight").select(0, 3).to_vector<double>() ==
        dense.parameter("model.layers.1.mlp.up_proj.weight").to_vector<double>());
  const Tensor router = lory->parameter("model.layers.0.mlp.router.weight");
  CHECK(amax(abs(router)).item() > 0.0);
  NoGradGuard no_grad;
  const Tensor x = ids({3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5});
  CHECK(max_abs_diff(dense.forward(x), lory->forward(x)) < 1e-12);
  CHECK_THROWS_WITH_AS(upcycle(*lory, 8), doctest::Contains("already has 4 experts"), Error);
}

TEST_CASE("checkpoint: an exported dense model computes what the Lory model computes with prompt routing") {
  manual_seed(4);
  LoryConfig c = preset("tiny");
  c.router_init_std = 1.0;
  LoryLM lory(c);
  lory.to(DType::f64);
  const std::vector<int64_t> prompt = {7, 3, 11, 2, 9, 40};
  auto dense = export_dense(lory, ids(prompt));
  CHECK(!dense->config.is_lory());
  NoGradGuard no_grad;
  const Tensor all = ids({7, 3, 11, 2, 9, 40, 12, 5, 33, 1, 8});
  const Tensor want = lory.forward(all, {InferenceRouting::prompt, static_cast<int64_t>(prompt.size())});
  CHECK(max_abs_diff(dense->forward(all), want) < 1e-12);
  // And a dense directory is a LLaMA one.
  const std::string dir = temp_dir("export");
  save_pretrained(*dense, dir);
  const std::string config = read_bytes(dir + "/config.json");
  CHECK(config.find("\"LlamaForCausalLM\"") != std::string::npos);
  CHECK(io::load_safetensors(dir + "/model.safetensors").get("model.layers.0.mlp.gate_proj.weight").shape() ==
        Shape{48, 32});
}

TEST_CASE("checkpoint: save_pretrained shards as transformers does, replaces an earlier save, and loads back exactly") {
  manual_seed(8);
  LoryConfig c = preset("tiny");
  c.num_experts = 0;  // every parameter <= 8 KiB
  c.num_key_value_heads = 2;
  c.tie_word_embeddings = true;
  LoryLM model(c);
  const std::string dir = temp_dir("sharded");
  save_pretrained(model, dir);  // one file first
  CHECK(std::filesystem::exists(dir + "/model.safetensors"));
  // 8 KiB shards: the [64, 32] f32 embedding (8 KiB) fills one by itself.
  save_pretrained(model, dir, DType::f32, 8192);
  CHECK(!std::filesystem::exists(dir + "/model.safetensors"));  // the stale single file is gone
  const std::string index = read_bytes(dir + "/model.safetensors.index.json");
  CHECK(index.find("\"model.embed_tokens.weight\": \"model-00001-of-") != std::string::npos);
  CHECK(index.find("lm_head") == std::string::npos);  // tied: no lm_head.weight
  int shards = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("model-", 0) != 0) continue;
    ++shards;
    CHECK(std::filesystem::file_size(entry.path()) < 8192 + 4096);  // data <= 8 KiB + the JSON header
  }
  CHECK(shards > 3);
  auto back = load_pretrained(dir);
  CHECK(back->config.num_key_value_heads == 2);
  CHECK(back->config.tie_word_embeddings);
  for (auto& [name, slot] : model.named_parameters()) {
    INFO(name);
    CHECK(slot->to_vector<float>() == back->parameter(name).to_vector<float>());
  }
  // Back to one file: the shards and the index go.
  save_pretrained(model, dir);
  for (const auto& entry : std::filesystem::directory_iterator(dir))
    CHECK(entry.path().filename().string().rfind("model-", 0) != 0);
  CHECK(!std::filesystem::exists(dir + "/model.safetensors.index.json"));
}

TEST_CASE("checkpoint: bf16/f16 weights load into f32 or stay as saved; a tied file with an lm_head.weight loads as HF") {
  manual_seed(9);
  LoryConfig c = preset("tiny");
  c.num_experts = 0;
  c.tie_word_embeddings = true;
  LoryLM model(c);
  const std::string dir = temp_dir("bf16");
  for (DType saved : {DType::bf16, DType::f16}) {
    INFO(dtype_name(saved));
    save_pretrained(model, dir, saved);
    auto as_f32 = load_pretrained(dir);
    auto as_saved = load_pretrained(dir, std::nullopt);
    CHECK(as_f32->model.embed_tokens.weight.dtype() == DType::f32);
    CHECK(as_saved->model.embed_tokens.weight.dtype() == saved);
    for (auto& [name, slot] : model.named_parameters()) {
      INFO(name);
      const std::vector<float> rounded = slot->to(saved).to(DType::f32).to_vector<float>();
      CHECK(as_f32->parameter(name).to_vector<float>() == rounded);
      CHECK(as_saved->parameter(name).to(DType::f32).to_vector<float>() == rounded);
    }
  }
  // Older transformers wrote lm_head.weight for tied models too; the tie wins.
  io::NamedTensors tensors;
  for (auto& [name, slot] : model.named_parameters()) tensors.emplace_back(name, *slot);
  tensors.emplace_back("lm_head.weight", zeros({64, 32}));
  io::save_safetensors(dir + "/model.safetensors", tensors);
  auto with_head = load_pretrained(dir);
  CHECK(with_head->output_weight().to_vector<float>() == model.model.embed_tokens.weight.to_vector<float>());
}
