// Decoding (nn/generate.h): the sampling rules, and generation with the KV
// cache against greedy decoding by full recomputation. Also .npy files, and
// lory_generate --prompt with the tokenizer of the model's directory.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include "corpus/tokenizer.h"
#include "nn/checkpoint.h"
#include "tensor/graph.h"
#include "nn/generate.h"
#include "io/npy.h"
#include "tensor/ops.h"
#include "tensor/philox.h"

using namespace lory;
using namespace lory::nn;

TEST_CASE("sampling: temperature 0, top_k 1 and a tiny top_p are all greedy; ties go to the lower id") {
  const std::vector<double> logits = {0.5, 2.0, -1.0, 2.0, 1.9};
  for (double u : {0.0, 0.3, 0.999}) {
    CHECK(sample_token(logits, {0.0, 0, 1.0}, u) == 1);
    CHECK(sample_token(logits, {1.0, 1, 1.0}, u) == 1);
    CHECK(sample_token(logits, {1.0, 0, 1e-9}, u) == 1);
  }
  CHECK_THROWS_WITH_AS(sample_token(logits, {-1.0, 0, 1.0}, 0.5), doctest::Contains("temperature >= 0"), Error);
}

TEST_CASE("sampling: frequencies follow softmax(logits / T), restricted to top-k and renormalised") {
  const std::vector<double> logits = {1.0, 0.0, 2.0, -1.0};
  auto frequencies = [&](SamplingOptions o) {
    std::vector<double> f(4, 0.0);
    const int n = 200000;
    for (int i = 0; i < n; ++i) f[sample_token(logits, o, philox::uniform_at(7, 0, i))] += 1.0 / n;
    return f;
  };
  auto softmax_of = [&](double T, int k) {
    std::vector<double> p(4, 0.0);
    const int order[] = {2, 0, 1, 3};
    double z = 0;
    for (int i = 0; i < k; ++i) z += p[order[i]] = std::exp(logits[order[i]] / T);
    for (double& x : p) x /= z;
    return p;
  };
  const std::vector<double> t1 = frequencies({1.0, 0, 1.0}), want1 = softmax_of(1.0, 4);
  const std::vector<double> t05 = frequencies({0.5, 2, 1.0}), want05 = softmax_of(0.5, 2);
  for (int i = 0; i < 4; ++i) {
    CHECK(t1[i] == doctest::Approx(want1[i]).epsilon(0.02));
    CHECK(t05[i] == doctest::Approx(want05[i]).epsilon(0.02));
  }
  CHECK(t05[1] == 0.0);
  CHECK(t05[3] == 0.0);
  // top_p 0.7: probabilities are 0.644, 0.237, ...: the nucleus is {2, 0}.
  const std::vector<double> nucleus = frequencies({1.0, 0, 0.7});
  CHECK(nucleus[1] == 0.0);
  CHECK(nucleus[3] == 0.0);
  CHECK(nucleus[2] == doctest::Approx(0.644 / (0.644 + 0.237)).epsilon(0.02));
}

TEST_CASE("generate: greedy decoding with the KV cache equals argmax of full recomputation at every step") {
  manual_seed(1);
  LoryLM model(preset("tiny"));
  const std::vector<int64_t> prompt = {5, 17, 33, 2, 9, 41};
  GenerateOptions o;
  o.max_new_tokens = 10;
  o.sampling.temperature = 0;
  const std::vector<int64_t> out = generate(model, prompt, o);
  REQUIRE(out.size() == 10);
  NoGradGuard no_grad;
  std::vector<int64_t> seq = prompt;
  for (int64_t token : out) {
    const Tensor ids = from_vector(seq, {1, static_cast<int64_t>(seq.size())}, {DType::i64});
    const Tensor logits = model.forward(ids, {InferenceRouting::prompt, static_cast<int64_t>(prompt.size())});
    const std::vector<double> last = logits.select(0, 0).select(0, logits.size(1) - 1).to_vector<double>();
    CHECK(token == sample_token(last, {0.0, 0, 1.0}, 0.0));
    seq.push_back(token);
  }
}

TEST_CASE("generate: the same seed gives the same tokens, streamed as they are made; a stop token ends it") {
  manual_seed(2);
  LoryLM model(preset("tiny"));
  GenerateOptions o;
  o.max_new_tokens = 12;
  o.seed = 5;
  o.sampling = {0.9, 20, 0.95};
  std::vector<int64_t> streamed;
  const std::vector<int64_t> a = generate(model, {1, 2, 3}, o, [&](int64_t t) { streamed.push_back(t); });
  CHECK(a == generate(model, {1, 2, 3}, o));
  CHECK(streamed == a);
  o.seed = 6;
  CHECK(a != generate(model, {1, 2, 3}, o));
  o.seed = 5;
  o.stop_token = a[3];
  const std::vector<int64_t> stopped = generate(model, {1, 2, 3}, o);
  CHECK(stopped.size() <= 4);
  CHECK(stopped.back() == a[3]);
  o.max_new_tokens = 100;
  CHECK_THROWS_WITH_AS(generate(model, {1, 2, 3}, o), doctest::Contains("exceed max_position_embeddings = 64"), Error);
  CHECK_THROWS_WITH_AS(generate(model, {1, 99}, o), doctest::Contains("prompt token 99 is outside the vocabulary"),
                       Error);
}

TEST_CASE("npy: write then read round-trips every dtype and shape; bad files are named") {
  const auto dir = std::filesystem::temp_directory_path() / "lory_npy_test";
  std::filesystem::create_directories(dir);
  const std::string p = (dir / "a.npy").string();
  for (DType t : {DType::f32, DType::f64, DType::i32, DType::i64, DType::u8}) {
    for (const Shape& s : {Shape{}, Shape{5}, Shape{2, 3}, Shape{2, 1, 4}, Shape{0, 3}}) {
      const Tensor x = arange(0, static_cast<double>(shape_numel(s)), 1, {t}).reshape(s);
      io::write_npy(p, x.dim() == 2 ? x.t().contiguous().t() : x);  // a transposed view is written in C order
      const Tensor y = io::read_npy(p);
      CHECK(y.dtype() == t);
      CHECK(y.shape() == s);
      CHECK(y.to_vector<double>() == x.to_vector<double>());
    }
  }
  {
    std::ofstream bad(p, std::ios::binary);
    bad << "not numpy";
  }
  CHECK_THROWS_WITH_AS(io::read_npy(p), doctest::Contains("not a .npy file (bad magic bytes)"), Error);
  CHECK_THROWS_WITH_AS(io::write_npy(p, zeros({2}, {DType::bf16})), doctest::Contains("NumPy has no bf16"), Error);
  std::filesystem::remove_all(dir);
}

// lory_generate, built beside this test binary, on a model directory that
// holds its tokenizer as a Hugging Face one does (tokenizer.model and
// tokenizer_config.json, from tests/fixtures/hf/tokenizer): --prompt text is
// encoded with BOS as HF's LLaMA tokenizer would, and the printed
// continuation is the in-process greedy one, decoded with the decoded prompt
// so that its first piece keeps its space.
TEST_CASE("lory_generate: --prompt uses DIR/tokenizer.model with BOS, and prints the greedy continuation") {
  const std::filesystem::path bin = std::filesystem::read_symlink("/proc/self/exe").parent_path() / "lory_generate";
  if (!std::filesystem::exists(bin)) {
    MESSAGE("skipped: ", bin.string(), " is not built");
    return;
  }
  const std::string hf_tokenizer = std::string(LORY_SOURCE_DIR) + "/tests/fixtures/hf/tokenizer";
  const auto dir = std::filesystem::temp_directory_path() / "lory_generate_prompt_test";
  std::filesystem::remove_all(dir);
  manual_seed(4);
  LoryConfig config = preset("tiny");
  config.vocab_size = 360;  // the fixture tokenizer's
  LoryLM model(config);
  save_pretrained(model, dir.string());
  for (const char* f : {"tokenizer.model", "tokenizer_config.json"})
    std::filesystem::copy_file(hf_tokenizer + "/" + f, dir / f);

  const std::string prompt_text = "Hello world";
  const corpus::Tokenizer tok(dir.string());
  const std::vector<int32_t> prompt32 = tok.encode(prompt_text, tok.hf_special_tokens());
  REQUIRE(prompt32.front() == tok.bos_id());
  const std::vector<int64_t> prompt(prompt32.begin(), prompt32.end());
  GenerateOptions o;
  o.max_new_tokens = 24;
  o.sampling.temperature = 0;
  o.stop_token = config.eos_token_id;  // lory_generate's default
  model.eval();
  const std::vector<int64_t> generated = generate(model, prompt, o);
  std::vector<int32_t> all = prompt32;
  all.insert(all.end(), generated.begin(), generated.end());
  const std::string continuation =
      tok.decode_skipping_special(all).substr(tok.decode_skipping_special(prompt32).size());
  // A random model: mostly byte pieces (shown as U+FFFD), but some pieces
  // that begin with a space too.
  CHECK(continuation.find(' ') != std::string::npos);

  auto run = [&](const std::string& args) {
    const std::string out = (dir / "out.txt").string();
    const int rc = std::system((bin.string() + " --ckpt " + dir.string() + " " + args + " > " + out + " 2>&1").c_str());
    std::ifstream in(out);
    std::stringstream text;
    text << in.rdbuf();
    return std::pair{rc, text.str()};
  };
  const auto [rc, printed] = run("--prompt '" + prompt_text + "' --max-new-tokens 24 --temperature 0");
  CHECK(rc == 0);
  CHECK(printed == prompt_text + continuation + "\n");
  // The same ids given as ids, with the tokenizer named: the same continuation.
  std::string ids;
  for (int32_t id : prompt32) ids += (ids.empty() ? "" : ",") + std::to_string(id);
  const auto [rc_ids, printed_ids] =
      run("--prompt-ids " + ids + " --tokenizer " + dir.string() + " --max-new-tokens 24 --temperature 0");
  CHECK(rc_ids == 0);
  CHECK(printed_ids == continuation + "\n");

  std::filesystem::remove(dir / "tokenizer.model");
  const auto [rc_missing, said] = run("--prompt 'Hello' --max-new-tokens 2");
  CHECK(rc_missing != 0);
  CHECK(said.find("--prompt needs a tokenizer") != std::string::npos);
  std::filesystem::remove_all(dir);
}
