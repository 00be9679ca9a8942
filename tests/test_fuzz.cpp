// Mutation tests for every parser of a file a user hands us: config.json,
// the TOML run config, safetensors files and their index, .npy, token shards,
// instance files, corpus JSONL (plain and .gz), SentencePiece .model paths and
// the training checkpoint's trainer_state.json and optimizer state.
//
// Strategy. Each test starts from a small VALID file made by our own writer
// (or the committed fixture) and derives a few hundred mutants from it,
// deterministically (std::mt19937_64 with a fixed seed, so every run and
// every CI machine tries the same ones):
//   - truncations at every length class: 0, 1, a few bytes, each structure
//     boundary and the bytes either side of it, half, length - 1;
//   - single bit flips at every byte of the headers and at random data
//     bytes, and mutants with several random flips;
//   - binary size and count fields set to 0, 1, -1, INT64_MAX, 2^32, 2^40,
//     2^63, the file's size and values chosen so that a size computed from
//     them wraps around 2^64 to the true size;
//   - in JSON and TOML text: wrong and unknown dtypes, reversed, overlapping
//     and out-of-range offsets, shapes whose product overflows or does not
//     match the offsets, negative, fractional and huge numbers where integers
//     belong, non-UTF-8 bytes in keys and values, duplicate keys, and values
//     nested 100 000 deep (a recursive parser or printer overflows its stack).
//
// What every test guarantees, for every mutant: the parser returns (the
// mutant happens to be valid) or throws lory::Error whose message names the
// file and says what is wrong; no other exception, no crash (the tests also
// run under `make asan`, where an out-of-bounds access or undefined behaviour
// aborts), no hang (each parse must finish within kSlowParse), and no tensor
// allocation larger than the file justifies (the CPU backend's peak of live
// bytes during the parse, tensor/memory_stats.h, stays within the file's
// size). Mutants with a known defect also assert the words of the refusal.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <typeinfo>
#include <vector>

#include "corpus/data_loader.h"
#include "corpus/jsonl.h"
#include "corpus/similarity_batching.h"
#include "corpus/token_shard.h"
#include "corpus/tokenizer.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "nn/config.h"
#include "nn/lory_lm.h"
#include "tensor/error.h"
#include "tensor/memory_stats.h"
#include "tensor/ops.h"
#include "train/train_checkpoint.h"
#include "train/train_config.h"
#include "tests/errors.h"

using namespace lory;
using lory::test::error_of;
namespace fs = std::filesystem;

namespace {

const std::string kData = std::string(LORY_SOURCE_DIR) + "/tests/data/";
constexpr double kSlowParse = 10.0;  // seconds; generous for ASan, far below "hangs"
constexpr uint64_t kSeed = 0x10c0ffee;

// A fresh directory for one test's files, removed when the test ends; the
// process id keeps two checkouts testing at once on one machine apart.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_((fs::temp_directory_path() / ("lory_fuzz_" + name + "_" + std::to_string(::getpid()))).string()) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// ---- mutants ----

struct Mutant {
  std::string what;    // how it was made, printed when it fails
  std::string bytes;   // the whole file
  std::string expect;  // non-empty: the parse must be refused with these words
};

// Truncations at every length class: the first bytes, every boundary of the
// format and a byte either side of it, half, and the last bytes.
std::vector<Mutant> truncations(const std::string& valid, std::vector<size_t> boundaries) {
  std::vector<size_t> lengths = {0, 1, 2, 3, 4, 7, 8, 9, valid.size() / 2, valid.size() - 2, valid.size() - 1};
  for (size_t b : boundaries)
    for (size_t l : {b - 1, b, b + 1}) lengths.push_back(l);
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  std::vector<Mutant> out;
  for (size_t l : lengths)
    if (l < valid.size()) out.push_back({"truncated to " + std::to_string(l) + " bytes", valid.substr(0, l), ""});
  return out;
}

// Every length (for small text files, where each one is a different cut).
std::vector<Mutant> every_truncation(const std::string& valid, size_t step = 1) {
  std::vector<Mutant> out;
  for (size_t l = 0; l < valid.size(); l += step)
    out.push_back({"truncated to " + std::to_string(l) + " bytes", valid.substr(0, l), ""});
  return out;
}

// One random bit flipped in every byte of [begin, end), then `random` more
// single flips anywhere and `multi` mutants with 2 to 8 flips each.
std::vector<Mutant> bit_flips(const std::string& valid, std::mt19937_64& rng, size_t begin, size_t end, int random,
                              int multi) {
  std::vector<Mutant> out;
  auto flip = [&](std::string& bytes, size_t at) {
    const int bit = static_cast<int>(rng() % 8);
    bytes[at] = static_cast<char>(static_cast<unsigned char>(bytes[at]) ^ (1u << bit));
    return "bit " + std::to_string(bit) + " of byte " + std::to_string(at);
  };
  end = std::min(end, valid.size());
  for (size_t at = begin; at < end; ++at) {
    std::string b = valid;
    const std::string what = flip(b, at);
    out.push_back({"flipped " + what, b, ""});
  }
  for (int i = 0; i < random && !valid.empty(); ++i) {
    std::string b = valid;
    const std::string what = flip(b, rng() % valid.size());
    out.push_back({"flipped " + what, b, ""});
  }
  for (int i = 0; i < multi && !valid.empty(); ++i) {
    std::string b = valid, what = "flipped";
    for (int n = 2 + static_cast<int>(rng() % 7); n > 0; --n) what += " " + flip(b, rng() % valid.size()) + ",";
    out.push_back({what, b, ""});
  }
  return out;
}

// `valid` with the little-endian integer of `width` bytes at `offset` set to `value`.
std::string with_int(const std::string& valid, size_t offset, int width, uint64_t value) {
  std::string b = valid;
  for (int i = 0; i < width; ++i) b[offset + i] = static_cast<char>((value >> (8 * i)) & 0xff);
  return b;
}

uint64_t int_at(const std::string& bytes, size_t offset, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[offset + i])) << (8 * i);
  return v;
}

// A size or count field set to the values a corrupt or hostile file holds.
std::vector<Mutant> field_values(const std::string& valid, const std::string& field, size_t offset, int width) {
  const uint64_t size = valid.size(), old = int_at(valid, offset, width);
  std::vector<uint64_t> values = {0, 1, 2, 3, 7, old - 1, old + 1, size - 1, size, size + 1};
  for (int shift : {31, 32, 40, 62, 63}) values.push_back(uint64_t{1} << shift);
  values.push_back(static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
  values.push_back(~uint64_t{0});
  std::vector<Mutant> out;
  for (uint64_t v : values) {
    if (width < 8) v &= (uint64_t{1} << (8 * width)) - 1;
    out.push_back(
        {field + " (" + std::to_string(width) + " bytes at " + std::to_string(offset) + ") set to " + std::to_string(v),
         with_int(valid, offset, width, v), ""});
  }
  return out;
}

// `text` with its first `from` replaced by `to`; the test fails if `from`
// is missing (the writer changed, and the mutant would test nothing).
std::string replaced(const std::string& text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, "the valid file has no '", from, "' to mutate");
  return text.substr(0, at) + to + text.substr(at + from.size());
}

// Arrays nested `depth` deep: [[[...]]].
std::string nested(int depth) {
  return std::string(static_cast<size_t>(depth), '[') + std::string(static_cast<size_t>(depth), ']');
}
// Objects nested `depth` deep: {"a":{"a":...1...}}.
std::string nested_objects(int depth) {
  std::string out;
  for (int i = 0; i < depth; ++i) out += "{\"a\":";
  return out + "1" + std::string(static_cast<size_t>(depth), '}');
}

// text_mutant(what, from, to, expect): appends the mutant of `valid` with
// `from` replaced by `to` (expect: words its refusal must hold, or "").
struct TextMutants {
  const std::string& valid;
  std::vector<Mutant>& mutants;
  void operator()(const std::string& what, const std::string& from, const std::string& to,
                  const std::string& expect = "") const {
    mutants.push_back({what, replaced(valid, from, to), expect});
  }
};

// ---- running them ----

struct Outcomes {
  int accepted = 0, refused = 0;
};

// Writes each mutant to `path` and parses it with `parse(path)`: it must
// return, or throw lory::Error naming `must_name` (the file, by default) and
// saying more; within kSlowParse; holding no more tensor bytes at its peak
// than the file has.
Outcomes run_mutants(const std::string& path, const std::vector<Mutant>& mutants,
                     const std::function<void(const std::string&)>& parse, std::string must_name = "") {
  if (must_name.empty()) must_name = path;
  Outcomes outcomes;
  for (const Mutant& m : mutants) {
    INFO(path, ": ", m.what);
    write_bytes(path, m.bytes);
    const int64_t live_before = host_memory_stats().live_bytes;
    reset_host_memory_peak();
    const auto start = std::chrono::steady_clock::now();
    std::string error;
    bool refused = false;
    try {
      parse(path);
    } catch (const Error& e) {
      refused = true;
      error = e.what();
    } catch (const std::exception& e) {
      FAIL_CHECK("threw ", typeid(e).name(), " instead of lory::Error: ", e.what());
      refused = true;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK_MESSAGE(seconds < kSlowParse, "took ", seconds, " s");
    const int64_t held = host_memory_stats().peak_bytes - live_before;
    CHECK_MESSAGE(held <= static_cast<int64_t>(m.bytes.size()), "allocated ", held, " tensor bytes for a file of ",
                  m.bytes.size());
    if (refused && !error.empty()) {
      CHECK_MESSAGE(error.find(must_name) != std::string::npos, "the error does not name ", must_name, ": ", error);
      CHECK_MESSAGE(error.size() > must_name.size() + 8, "the error says nothing more than the file: ", error);
    }
    if (!m.expect.empty()) {
      CHECK_MESSAGE(refused, "was accepted, expected a refusal with '", m.expect, "'");
      if (refused && !error.empty())
        CHECK_MESSAGE(error.find(m.expect) != std::string::npos, "expected '", m.expect, "' in: ", error);
    }
    ++(refused ? outcomes.refused : outcomes.accepted);
  }
  return outcomes;
}


// CHECKs that `f` throws lory::Error with `words` in its message.
#define CHECK_REFUSED(f, words) \
  CHECK_MESSAGE(error_of([&] { f; }).find(words) != std::string::npos, error_of([&] { f; }))

void append(std::vector<Mutant>& to, std::vector<Mutant> more) {
  for (Mutant& m : more) to.push_back(std::move(m));
}

// ---- safetensors ----

std::string safetensors_with_header(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

}  // namespace

TEST_CASE("fuzz: safetensors: every mutant of a valid file is read or refused naming the file, never trusted") {
  const TempDir temp_dir("safetensors");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/model.safetensors";
  io::save_safetensors(path,
                       {{"a", from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3})},
                        {"b", from_vector(std::vector<float>{1, 2, 3, 4}, {4}, {DType::bf16})},
                        {"c", from_vector(std::vector<int64_t>{7}, {1}, {DType::i64})}},
                       {{"format", "pt"}});
  const std::string valid = read_bytes(path);
  const uint64_t n = int_at(valid, 0, 8);
  const std::string header = valid.substr(8, n), data = valid.substr(8 + n);
  REQUIRE(header.find(R"("a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]})") != std::string::npos);
  REQUIRE(io::load_safetensors(path).tensors.size() == 3);

  std::mt19937_64 rng(kSeed);
  std::vector<Mutant> mutants = truncations(valid, {8, 8 + n, 8 + n + 24, 8 + n + 32});
  append(mutants, bit_flips(valid, rng, 0, 8 + n, 60, 60));
  append(mutants, field_values(valid, "header length", 0, 8));
  mutants.push_back({"header length 2^40", with_int(valid, 0, 8, uint64_t{1} << 40), "header length 1099511627776"});
  mutants.push_back({"header length past the end", with_int(valid, 0, 8, valid.size()), "truncated: the header needs"});

  // The header rewritten (and its length with it), one defect at a time.
  auto header_mutant = [&](const std::string& what, const std::string& from, const std::string& to,
                           const std::string& expect = "") {
    mutants.push_back({what, safetensors_with_header(replaced(header, from, to), data), expect});
  };
  const std::string a_dtype = R"("a":{"dtype":"F32")", a_shape = R"("shape":[2,3])",
                    a_offsets = R"("data_offsets":[0,24])";
  header_mutant("unknown dtype", a_dtype, R"("a":{"dtype":"Q4")", "unsupported dtype \"Q4\"");
  header_mutant("empty dtype", a_dtype, R"("a":{"dtype":"")", "unsupported dtype");
  header_mutant("lower-case dtype", a_dtype, R"("a":{"dtype":"f32")", "unsupported dtype");
  header_mutant("dtype a number", a_dtype, R"("a":{"dtype":4)", "unsupported dtype 4");
  header_mutant("dtype null", a_dtype, R"("a":{"dtype":null)", "unsupported dtype null");
  header_mutant("dtype a list", a_dtype, R"("a":{"dtype":["F32"])", "unsupported dtype");
  header_mutant("dtype of another size", a_dtype, R"("a":{"dtype":"F64")", "needs 48");
  header_mutant("dtype of the same size", a_dtype, R"("a":{"dtype":"I32")");
  header_mutant("BF16 as U8", R"("dtype":"BF16")", R"("dtype":"U8")", "needs 4");
  header_mutant("negative dim", a_shape, R"("shape":[-2,3])", "bad shape [-2,3]");
  header_mutant("fractional dim", a_shape, R"("shape":[2.5,3])", "bad shape");
  header_mutant("dim 1e300", a_shape, R"("shape":[1e300,3])", "bad shape");
  header_mutant("dim a string", a_shape, R"("shape":["2",3])", "bad shape");
  header_mutant("shape a string", a_shape, R"("shape":"[2,3]")", "shape is not an array");
  header_mutant("shape nested", a_shape, R"("shape":[[2],3])", "bad shape");
  header_mutant("dim 2^64 - 1", a_shape, R"("shape":[18446744073709551615,3])", "more elements than any file");
  header_mutant("dims whose product overflows int64", a_shape, R"("shape":[4611686018427387904,4])",
                "more elements than any file");
  header_mutant("dims whose byte count wraps to 24", a_shape, R"("shape":[4611686018427387904,6])",
                "more elements than any file");
  header_mutant("zero dim and a huge one", a_shape, R"("shape":[0,9223372036854775807])",
                "more elements than any file");
  header_mutant("transposed shape", a_shape, R"("shape":[3,2])");
  header_mutant("scalar shape", a_shape, R"("shape":[])", "needs 4");
  header_mutant("reversed offsets", a_offsets, R"("data_offsets":[24,0])", "are reversed");
  header_mutant("offsets too long", a_offsets, R"("data_offsets":[0,28])", "hold 28 bytes, but [2, 3] f32 needs 24");
  header_mutant("offsets overlapping b", a_offsets, R"("data_offsets":[8,32])", "overlap");
  header_mutant("offsets out of range", a_offsets, R"("data_offsets":[1000000,1000024])", "truncated file");
  header_mutant("offsets near 2^64", a_offsets, R"("data_offsets":[18446744073709551600,18446744073709551615])",
                "hold 15 bytes");
  header_mutant("negative offset", a_offsets, R"("data_offsets":[-1,23])", "bad data_offsets");
  header_mutant("one offset", a_offsets, R"("data_offsets":[0])", "bad data_offsets");
  header_mutant("three offsets", a_offsets, R"("data_offsets":[0,24,48])", "bad data_offsets");
  header_mutant("fractional offset", a_offsets, R"("data_offsets":[0,24.0])", "bad data_offsets");
  header_mutant("offsets null", a_offsets, R"("data_offsets":null)", "bad data_offsets");
  header_mutant("no dtype", a_dtype + ",", R"("a":{)", "needs dtype, shape and data_offsets");
  header_mutant("tensor not an object", R"("c":{)", R"("c":[1],"d":{)", "needs dtype, shape and data_offsets");
  header_mutant("metadata not strings", R"({"format":"pt"})", R"({"format":1})", "is not a string");
  header_mutant("metadata a list", R"({"format":"pt"})", R"(["pt"])", "__metadata__ must be an object");
  header_mutant("duplicate tensor name", R"("b":{)", R"("a":{)");
  header_mutant("invalid UTF-8 in a name", R"("a":{)", "\"\xff\xfe\":{", "not valid JSON");
  header_mutant("truncated UTF-8 sequence in a name", R"("a":{)", "\"\xc3\":{", "not valid JSON");
  header_mutant("UTF-16 surrogate in a name", R"("a":{)", "\"\xed\xa0\x80\":{", "not valid JSON");
  header_mutant("overlong UTF-8 in a value", R"("format":"pt")", "\"format\":\"\xc0\xaf\"", "not valid JSON");
  header_mutant("escaped lone surrogate", R"("format":"pt")", R"("format":"\ud800")", "not valid JSON");
  header_mutant("NUL byte in the header", R"("format")", std::string("\"form\0at\"", 9), "not valid JSON");
  header_mutant("metadata nested 100000 deep", R"({"format":"pt"})", nested(100000), "nested deeper than");
  header_mutant("shape nested 100000 deep", a_shape, "\"shape\":" + nested(100000), "nested deeper than");
  header_mutant("dtype nested 50 deep", a_dtype, R"("a":{"dtype":)" + nested(50), "unsupported dtype");
  header_mutant("objects nested 100000 deep", a_shape, "\"shape\":" + nested_objects(100000), "nested deeper than");
  mutants.push_back({"trailing garbage", safetensors_with_header(header + "x", data), "not valid JSON"});
  mutants.push_back({"header an array", safetensors_with_header("[]", data), "not a JSON object"});
  mutants.push_back({"header a number", safetensors_with_header("1", data), "not a JSON object"});
  mutants.push_back({"header empty", safetensors_with_header("", data), "not valid JSON"});

  const Outcomes o = run_mutants(path, mutants, [](const std::string& p) { io::load_safetensors(p); });
  CHECK(o.refused > o.accepted);
  CHECK(o.accepted > 0);  // bit flips in the data, or in names, make valid files
}

TEST_CASE(
    "fuzz: safetensors index: mutants of model.safetensors.index.json and its shards are refused naming the file") {
  const TempDir temp_dir("safetensors_index");
  const std::string dir = temp_dir.path();
  const std::string s1 = io::shard_file_name("model", 0, 2), s2 = io::shard_file_name("model", 1, 2);
  io::save_safetensors(dir + "/" + s1, {{"a", from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3})},
                                        {"b", from_vector(std::vector<float>{7, 8}, {2})}});
  io::save_safetensors(dir + "/" + s2, {{"c", from_vector(std::vector<double>{9.5}, {1})}});
  const std::string index = dir + "/model.safetensors.index.json";
  io::write_safetensors_index(index, {{"a", s1}, {"b", s1}, {"c", s2}}, 6 * 4 + 2 * 4 + 8);
  const std::string valid = read_bytes(index);
  REQUIRE(io::load_safetensors_dir(dir).tensors.size() == 3);

  std::mt19937_64 rng(kSeed + 1);
  std::vector<Mutant> mutants = every_truncation(valid);
  append(mutants, bit_flips(valid, rng, 0, valid.size(), 0, 40));
  const TextMutants text_mutant{valid, mutants};
  const std::string a_file = "\"a\": \"" + s1 + "\"";
  text_mutant("shard outside the directory", a_file, "\"a\": \"../" + s1 + "\"", "not the name of a file beside");
  text_mutant("absolute shard path", a_file, "\"a\": \"/etc/passwd\"", "not the name of a file beside");
  text_mutant("empty shard name", a_file, "\"a\": \"\"", "not the name of a file beside");
  text_mutant("shard name '..'", a_file, "\"a\": \"..\"", "not the name of a file beside");
  text_mutant("missing shard", a_file, "\"a\": \"model-00003-of-00002.safetensors\"", "cannot open");
  text_mutant("shard a number", a_file, "\"a\": 1", "is 1, not a string");
  text_mutant("shard null", a_file, "\"a\": null", "is null, not a string");
  text_mutant("shard nested deep", a_file, "\"a\": " + nested(100000), "nested deeper than");
  text_mutant("tensor in the wrong shard", a_file, "\"a\": \"" + s2 + "\"", "which does not hold it");
  text_mutant("unknown tensor", a_file, "\"z\": \"" + s1 + "\"", "which does not hold it");
  text_mutant("duplicate tensor", a_file, a_file + ", " + a_file);
  text_mutant("tensor left out", a_file + ",", "", "lists 2 tensors, its files hold 3");
  text_mutant("non-UTF-8 tensor name", a_file, "\"\xff\": \"" + s1 + "\"", "not valid JSON");
  text_mutant("weight_map a list", "\"weight_map\": {", "\"weight_map\": [{", "not valid JSON");
  text_mutant("no weight_map", "\"weight_map\"", "\"weights\"", "has no \"weight_map\" object");
  text_mutant("total_size negative", "\"total_size\": 40", "\"total_size\": -40");
  mutants.push_back({"an array", "[]", "has no \"weight_map\" object"});
  const Outcomes o = run_mutants(index, mutants, [&](const std::string&) { io::load_safetensors_dir(dir); });
  CHECK(o.refused > o.accepted);

  // The shards, through the index: errors name the shard (and the index).
  write_bytes(index, valid);
  const std::string shard = dir + "/" + s1, shard_valid = read_bytes(shard);
  std::vector<Mutant> shard_mutants = truncations(shard_valid, {8});
  append(shard_mutants, bit_flips(shard_valid, rng, 0, 24, 20, 10));
  run_mutants(
      shard, shard_mutants, [&](const std::string&) { io::load_safetensors_dir(dir); }, index);
  write_bytes(shard, shard_valid);
  CHECK(io::load_safetensors_dir(dir).tensors.size() == 3);
}

// ---- .npy ----

namespace {

// A .npy file of format `version` (1: 2-byte header length, 2 and 3: 4 bytes).
std::string npy_bytes(int version, const std::string& header, const std::string& data) {
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(version) + '\0';
  const int width = version == 1 ? 2 : 4;
  for (int i = 0; i < width; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return out + header + data;
}

}  // namespace

TEST_CASE("fuzz: npy: every mutant of a valid .npy is read or refused naming the file, never trusted") {
  const TempDir temp_dir("npy");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/x.npy";
  io::write_npy(path, from_vector(std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {3, 4}));
  const std::string valid = read_bytes(path);
  const size_t hl = int_at(valid, 8, 2);
  const std::string header = valid.substr(10, hl), data = valid.substr(10 + hl);
  REQUIRE(header.find("'shape': (3, 4)") != std::string::npos);
  REQUIRE(io::read_npy(path).shape() == Shape{3, 4});

  std::mt19937_64 rng(kSeed + 2);
  std::vector<Mutant> mutants = truncations(valid, {6, 7, 8, 10, 10 + hl, 10 + hl + 24});
  append(mutants, bit_flips(valid, rng, 0, 10 + hl, 20, 40));
  append(mutants, field_values(valid, "header length", 8, 2));
  auto header_mutant = [&](const std::string& what, const std::string& from, const std::string& to,
                           const std::string& expect = "") {
    std::string h = replaced(header, from, to);
    mutants.push_back({what, npy_bytes(1, h, data), expect});
  };
  header_mutant("big-endian", "'<f4'", "'>f4'", "unsupported .npy dtype '>f4'");
  header_mutant("complex", "'<f4'", "'<c8'", "unsupported .npy dtype");
  header_mutant("object dtype", "'<f4'", "'|O'", "unsupported .npy dtype");
  header_mutant("empty descr", "'<f4'", "''", "unsupported .npy dtype");
  mutants.push_back({"unterminated descr", npy_bytes(1, "{'descr': '<f4", data), "no descr"});
  header_mutant("descr not a string", "'<f4'", "4", "no descr");
  header_mutant("wider dtype", "'<f4'", "'<f8'", "truncated .npy data");
  header_mutant("narrower dtype", "'<f4'", "'<f2'");
  header_mutant("native byte order", "'<f4'", "'=f4'");
  header_mutant("non-UTF-8 descr", "'<f4'", "'\xff\xfe'", "unsupported .npy dtype '\\xFF\\xFE'");
  header_mutant("transposed", "(3, 4)", "(4, 3)");
  header_mutant("scalar", "(3, 4)", "()");
  header_mutant("empty", "(3, 4)", "(0, 4)");
  header_mutant("one dim", "(3, 4)", "(12,)");
  header_mutant("negative dim", "(3, 4)", "(3, -4)", "dims must be integers >= 0");
  header_mutant("fractional dim", "(3, 4)", "(3.5, 4)", "expected ',' or ')'");
  header_mutant("dim of 25 digits", "(3, 4)", "(9999999999999999999999999, 4)", "does not fit in 64 bits");
  header_mutant("dims whose product overflows", "(3, 4)", "(9223372036854775807, 9223372036854775807)",
                "more elements than any file");
  header_mutant("dims whose byte count wraps", "(3, 4)", "(4611686018427387904, 4)", "more elements than any file");
  header_mutant("a dim beyond the file", "(3, 4)", "(3000000000, 4)", "truncated .npy data");
  header_mutant("zero dim and a huge one", "(3, 4)", "(0, 9223372036854775807)", "more elements than any file");
  header_mutant("shape a list", "(3, 4)", "[3, 4]", "expected a tuple");
  header_mutant("unterminated shape", "(3, 4), }", "(3, 4", "expected ',' or ')'");
  header_mutant("fortran order", "False", "True", "Fortran-ordered");
  header_mutant("fortran order missing", "'fortran_order'", "'fortran'", "no fortran_order");
  header_mutant("shape missing", "'shape'", "'shap'", "bad shape");
  header_mutant("colon missing", "'descr':", "'descr'", "no descr");
  // A long header of one unterminated value: std::regex recursed per character here.
  mutants.push_back(
      {"60000-byte unterminated descr", npy_bytes(1, "{'descr': '" + std::string(60000, 'x'), data), "no descr"});
  mutants.push_back(
      {"60000-byte shape",
       npy_bytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::string(60000, '1'), data),
       "does not fit in 64 bits"});
  mutants.push_back({"version 2", npy_bytes(2, header, data), ""});
  mutants.push_back({"version 3", npy_bytes(3, header, data), ""});
  mutants.push_back({"version 4", npy_bytes(4, header, data), "unsupported .npy format version 4"});
  mutants.push_back({"version 2, header length 2^32 - 1", with_int(npy_bytes(2, header, data), 8, 4, 0xffffffff),
                     "truncated .npy header"});
  mutants.push_back({"version 2, header length 2^31", with_int(npy_bytes(2, header, data), 8, 4, uint64_t{1} << 31),
                     "truncated .npy header"});
  mutants.push_back({"version 1, header length 65535", with_int(valid, 8, 2, 0xffff), "truncated .npy header"});

  const Outcomes o = run_mutants(path, mutants, [](const std::string& p) { io::read_npy(p); });
  CHECK(o.refused > o.accepted);
  CHECK(o.accepted > 0);

  // Not a file at all.
  CHECK_REFUSED(io::read_npy(dir), dir + ": cannot open .npy file (missing, or not a regular file)");
  CHECK_REFUSED(io::read_npy(dir + "/missing.npy"), dir + "/missing.npy: cannot open .npy file");
}

// ---- config.json ----

TEST_CASE("fuzz: config.json: every mutant is parsed or refused naming the file and the key") {
  const TempDir temp_dir("config");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/config.json";
  const std::string valid = nn::config_to_json(nn::preset("tiny"), "float32");
  REQUIRE(valid.find("\"vocab_size\": 64") != std::string::npos);
  write_bytes(path, valid);
  REQUIRE(nn::load_config(path).vocab_size == 64);

  std::mt19937_64 rng(kSeed + 3);
  std::vector<Mutant> mutants = every_truncation(valid, 3);
  append(mutants, bit_flips(valid, rng, 0, valid.size(), 0, 60));
  const TextMutants text_mutant{valid, mutants};
  const std::string vocab = "\"vocab_size\": 64";
  text_mutant("vocab_size INT64_MAX", vocab, "\"vocab_size\": 9223372036854775807");
  text_mutant("vocab_size 2^63", vocab, "\"vocab_size\": 9223372036854775808", "more than 2^63 - 1");
  text_mutant("vocab_size -1", vocab, "\"vocab_size\": -1", "vocab_size must be > 0, got -1");
  text_mutant("vocab_size 0", vocab, "\"vocab_size\": 0", "vocab_size must be > 0, got 0");
  text_mutant("vocab_size beyond uint64", vocab, "\"vocab_size\": 99999999999999999999999", "vocab_size");
  text_mutant("vocab_size 1e308", vocab, "\"vocab_size\": 1e308", "must be an integer");
  text_mutant("vocab_size 1e999", vocab, "\"vocab_size\": 1e999", "not valid JSON");
  text_mutant("vocab_size fractional", vocab, "\"vocab_size\": 64.5", "must be an integer, got 64.5");
  text_mutant("vocab_size a string", vocab, "\"vocab_size\": \"64\"", "must be an integer");
  text_mutant("vocab_size null", vocab, "\"vocab_size\": null", "must be an integer");
  text_mutant("vocab_size a list", vocab, "\"vocab_size\": [64]", "must be an integer");
  text_mutant("vocab_size nested 100000 deep", vocab, "\"vocab_size\": " + nested(100000), "nested deeper than");
  text_mutant("vocab_size objects nested deep", vocab, "\"vocab_size\": " + nested_objects(100000),
              "nested deeper than");
  text_mutant("vocab_size nested 60 deep", vocab, "\"vocab_size\": " + nested(60), "must be an integer");
  text_mutant("rope_scaling nested deep", vocab, vocab + ", \"rope_scaling\": " + nested(100000), "nested deeper than");
  text_mutant("rope_scaling nested 60 deep", vocab, vocab + ", \"rope_scaling\": " + nested(60), "rope_scaling");
  text_mutant("ignored key nested deep", vocab, vocab + ", \"id2label\": " + nested(100000), "nested deeper than");
  text_mutant("hidden_size 2^62, head_dim 2^62", "\"hidden_size\": 32",
              "\"hidden_size\": 4611686018427387904, \"head_dim\": 4611686018427387904", "head_dim");
  text_mutant("head_dim whose product with the heads wraps", vocab, vocab + ", \"head_dim\": 4611686018427387912",
              "head_dim");
  text_mutant("heads 0", "\"num_attention_heads\": 4", "\"num_attention_heads\": 0", "num_attention_heads");
  text_mutant("rms_norm_eps negative", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": -1e-05", "rms_norm_eps");
  text_mutant("rms_norm_eps huge", "\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 1e308");
  text_mutant("duplicate key", vocab, vocab + ", \"vocab_size\": 128");
  text_mutant("non-UTF-8 key", vocab, vocab + ", \"\xff\xfe\": 1", "not valid JSON");
  text_mutant("non-UTF-8 value", "\"silu\"", "\"s\xc3\x28lu\"", "not valid JSON");
  text_mutant("escaped NUL in a value", "\"silu\"", "\"si\\u0000lu\"", "hidden_act");
  text_mutant("unknown key", vocab, vocab + ", \"vocab_sizes\": 1", "did you mean 'vocab_size'");
  text_mutant("a long unknown key", vocab, vocab + ", \"" + std::string(100000, 'k') + "\": 1", "is not a config key");
  mutants.push_back({"an array", "[" + valid + "]", "expected a JSON object"});
  mutants.push_back({"empty", "", "not valid JSON"});

  const Outcomes o = run_mutants(path, mutants, [](const std::string& p) { nn::load_config(p); });
  CHECK(o.refused > o.accepted);
  CHECK_REFUSED(nn::load_config(dir + "/missing.json"), dir + "/missing.json: cannot open config file");
}

// ---- the TOML run config ----

TEST_CASE("fuzz: train config TOML: every mutant is parsed or refused naming the file") {
  const TempDir temp_dir("toml");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/train.toml";
  const std::string minimal = "[model]\npreset = 'tiny'\n[schedule]\nsteps = 10\n[checkpoint]\ndir = \"run\"\n";
  const std::string valid = train::train_config_to_toml(train::parse_train_config(minimal, "minimal.toml"));
  REQUIRE(valid.find("steps = 10") != std::string::npos);
  write_bytes(path, valid);
  REQUIRE(train::load_train_config(path).schedule.steps == 10);

  std::mt19937_64 rng(kSeed + 4);
  std::vector<Mutant> mutants = every_truncation(valid, 11);
  append(mutants, bit_flips(valid, rng, 0, 0, 150, 40));
  const TextMutants text_mutant{valid, mutants};
  const std::string steps = "steps = 10";
  text_mutant("steps INT64_MAX", steps, "steps = 9223372036854775807");
  text_mutant("steps beyond int64", steps, "steps = 9223372036854775808", "TOML syntax error");
  text_mutant("steps negative", steps, "steps = -1", "must be >= 0");
  text_mutant("steps fractional", steps, "steps = 1.5", "must be an integer");
  text_mutant("steps nan", steps, "steps = nan", "must be an integer");
  text_mutant("steps a string", steps, "steps = \"10\"", "must be an integer");
  text_mutant("steps an array", steps, "steps = [1, 2]", "must be a single value");
  text_mutant("steps an inline table", steps, "steps = { a = 1 }", "must be a single value");
  text_mutant("steps nested 100000 deep", steps, "steps = " + nested(100000), "TOML syntax error");
  text_mutant("steps nested 200 deep", steps, "steps = " + nested(200));
  text_mutant("lr inf", "lr = ", "lr = inf\nx = ", "");
  text_mutant("lr nan", "lr = ", "lr = nan #", "must be finite");
  text_mutant("lr 1e999", "lr = ", "lr = 1e999 #", "");
  text_mutant("hidden_size 2^62", "hidden_size = 32", "hidden_size = 4611686018427387904");
  text_mutant("heads 2^62", "num_attention_heads = 4", "num_attention_heads = 4611686018427387904");
  text_mutant("duplicate key", steps, steps + "\n" + steps, "TOML syntax error");
  text_mutant("duplicate section", "[schedule]", "[schedule]\n[schedule]", "TOML syntax error");
  text_mutant("unknown section", "[schedule]", "[schedul]", "unknown section [schedul]");
  text_mutant("subsection", "[schedule]", "[schedule.x]\ny = 1\n[schedule]", "unknown key 'x' in [schedule]");
  text_mutant("non-UTF-8 string", "preset = 'tiny'", "preset = 't\xffny'", "TOML syntax error");
  text_mutant("non-UTF-8 comment", "[schedule]", "# \xc3\x28\n[schedule]", "TOML syntax error");
  text_mutant("non-UTF-8 key", steps, steps + "\n\xff = 1", "TOML syntax error");
  text_mutant("NUL byte", steps, std::string("steps = 1\0", 10), "TOML syntax error");
  text_mutant("a long string value", "preset = 'tiny'", "preset = '" + std::string(100000, 't') + "'",
              "allowed values");
  text_mutant("model.config a directory", "config = ''", "config = '" + dir + "'", "model.config: " + dir);
  mutants.push_back({"empty", "", "schedule.steps"});
  const Outcomes o = run_mutants(path, mutants, [](const std::string& p) { train::load_train_config(p); });
  CHECK(o.refused > o.accepted);
}

// ---- token shards ----

TEST_CASE("fuzz: token shards: every mutant is opened consistently or refused naming the file") {
  const TempDir temp_dir("shards");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/x.bin";
  {
    corpus::ShardWriter w(path, 1000);
    w.add({1, 2, 3}, "web");
    w.add({}, "code");
    w.add({4, 5, 6, 7, 999}, "web");
    w.close();
  }
  const std::string valid = read_bytes(path);
  // Layout (corpus/token_shard.h): header [0, 64), names [64, 2112), 8 two-byte
  // tokens [2112, 2128), then 4 u64 offsets [2128, 2160) and 3 u32 domain ids.
  REQUIRE(valid.size() == 2128 + 32 + 12);
  const size_t index = 2128, ids = 2160;

  std::mt19937_64 rng(kSeed + 5);
  std::vector<Mutant> mutants =
      truncations(valid, {8, 12, 16, 24, 32, 40, 44, 64, 96, 2112, 2128, index + 8, ids, ids + 4});
  append(mutants, bit_flips(valid, rng, 0, 64, 0, 0));
  append(mutants, bit_flips(valid, rng, index, valid.size(), 30, 40));
  for (const auto& [field, offset, width] :
       std::vector<std::tuple<std::string, size_t, int>>{{"version", 8, 4},
                                                         {"token bytes", 12, 4},
                                                         {"vocab", 16, 8},
                                                         {"documents", 24, 8},
                                                         {"tokens", 32, 8},
                                                         {"domains", 40, 4},
                                                         {"offset 1", index + 8, 8},
                                                         {"offset 3", index + 24, 8},
                                                         {"domain id 0", ids, 4}})
    append(mutants, field_values(valid, field, offset, width));
  std::string b = valid;
  std::fill(b.begin() + 64, b.begin() + 96, '\xff');  // a domain name of 32 bytes, no NUL, not UTF-8
  mutants.push_back({"unterminated non-UTF-8 domain name", b, ""});
  // Counts chosen so that the expected size wraps around 2^64 to the true
  // size: 2^63 two-byte tokens take "0" bytes. With the last offset at 2^63
  // too, a reader that multiplies first reads far past the map.
  b = with_int(with_int(valid, 32, 8, uint64_t{1} << 63), index + 24, 8, uint64_t{1} << 63);
  mutants.push_back({"2^63 tokens (size wraps)", b, "tokens cannot fit"});
  // 2^64 - 1 documents: (documents + 1) * 8 wraps to 0, documents * 4 to -4.
  b = with_int(valid, 24, 8, ~uint64_t{0});
  mutants.push_back({"2^64 - 1 documents (size wraps)", b, "documents cannot fit"});
  mutants.push_back(
      {"3 + 2^62 documents (size wraps)", with_int(valid, 24, 8, 3 + (uint64_t{1} << 62)), "documents cannot fit"});
  mutants.push_back({"reversed document", with_int(valid, index + 8, 8, 9), "ends before it starts"});

  const Outcomes o = run_mutants(path, mutants, [](const std::string& p) {
    const corpus::ShardReader r(p);
    // Whatever opened must be consistent: every document inside the tokens.
    std::vector<int32_t> tokens;
    for (int64_t d = 0; d < r.num_documents(); ++d) {
      REQUIRE(r.doc_start(d) >= 0);
      REQUIRE(r.doc_start(d) + r.doc_length(d) <= r.num_tokens());
      tokens.resize(static_cast<size_t>(r.doc_length(d)));
      r.read_tokens(r.doc_start(d), r.doc_length(d), tokens.data());
      REQUIRE(r.doc_domain(d) < static_cast<int32_t>(r.domains().size()));
    }
  });
  CHECK(o.refused > o.accepted);
  CHECK(o.accepted > 0);  // flips in the tokens themselves
  CHECK_REFUSED(corpus::ShardReader{dir}, "shard " + dir + ": cannot open: not a regular file");
}

// ---- instance files ----

TEST_CASE("fuzz: instance files: every mutant is opened consistently or refused naming the file") {
  const TempDir temp_dir("instances");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/x.bin";
  corpus::Instances inst;
  inst.instance_tokens = 5;
  inst.tokens = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  corpus::write_instances(path, inst, 1000);
  const std::string valid = read_bytes(path);
  REQUIRE(valid.size() == 64 + 3 * 5 * 2);
  REQUIRE(corpus::InstanceFile(path).count() == 3);

  std::mt19937_64 rng(kSeed + 6);
  std::vector<Mutant> mutants = truncations(valid, {8, 12, 16, 24, 32, 40, 64, 74});
  append(mutants, bit_flips(valid, rng, 0, 64, 20, 30));
  for (const auto& [field, offset, width] : std::vector<std::tuple<std::string, size_t, int>>{
           {"version", 8, 4}, {"token bytes", 12, 4}, {"vocab", 16, 8}, {"instance tokens", 24, 8}, {"count", 32, 8}})
    append(mutants, field_values(valid, field, offset, width));
  // count * length * 2 = 2^64 wraps to 0: the header alone would pass the size check.
  mutants.push_back({"2^62 instances of 2 tokens (size wraps)",
                     with_int(with_int(valid.substr(0, 64), 24, 8, 2), 32, 8, uint64_t{1} << 62), "cannot fit"});
  mutants.push_back(
      {"3 instances of 2^62 + 5 tokens (size wraps)", with_int(valid, 24, 8, (uint64_t{1} << 62) + 5), "cannot fit"});
  mutants.push_back({"vocab 2^40", with_int(valid, 16, 8, uint64_t{1} << 40), "vocab size 1099511627776"});

  const Outcomes o = run_mutants(path, mutants, [](const std::string& p) {
    const corpus::InstanceFile f(p);
    std::vector<int32_t> row(static_cast<size_t>(f.instance_tokens()));
    for (int64_t i = 0; i < f.count(); ++i) f.read(i, row.data());
  });
  CHECK(o.refused > o.accepted);
  CHECK(o.accepted > 0);
}

// ---- corpus JSONL ----

namespace {

// Reads every line of a corpus file.
void read_all_lines(const std::string& path) {
  corpus::JsonlReader reader(path);
  corpus::CorpusLine line;
  while (reader.next(line)) {
  }
}

}  // namespace

TEST_CASE("fuzz: corpus JSONL: every mutant of a plain file is read or refused naming the file") {
  const TempDir temp_dir("jsonl");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/c.jsonl";
  const std::string valid =
      "{\"text\": \"hello w\\u00f6rld\", \"domain\": \"web\", \"source\": \"s1\"}\n"
      "\n"
      "{\"text\": \"two\\nlines\", \"domain\": \"code\"}\r\n"
      "{\"source\": \"s3\", \"text\": \"caf\xc3\xa9\"}\n";
  write_bytes(path, valid);
  read_all_lines(path);

  std::mt19937_64 rng(kSeed + 7);
  std::vector<Mutant> mutants = every_truncation(valid);
  append(mutants, bit_flips(valid, rng, 0, valid.size(), 0, 60));
  const TextMutants text_mutant{valid, mutants};
  const std::string text = "\"text\": \"two\\nlines\"";
  text_mutant("non-UTF-8 text", text, "\"text\": \"t\xffo\"", "not valid JSON");
  text_mutant("truncated UTF-8 text", text, "\"text\": \"t\xc3\"", "not valid JSON");
  text_mutant("UTF-16 surrogate in UTF-8", text, "\"text\": \"\xed\xa0\x80\"", "not valid JSON");
  text_mutant("escaped lone surrogate", text, "\"text\": \"\\ud800\"", "not valid JSON");
  text_mutant("escaped NUL", text, "\"text\": \"a\\u0000b\"");
  text_mutant("raw NUL", text, std::string("\"text\": \"a\0b\"", 12));
  text_mutant("text a number", text, "\"text\": 1", "not valid JSON");
  text_mutant("text null", text, "\"text\": null", "not valid JSON");
  text_mutant("text nested 100000 deep", text, "\"text\": " + nested(100000), "not valid JSON");
  text_mutant("other field nested 100000 deep", text, text + ", \"x\": " + nested(100000), "");
  text_mutant("domain an object", "\"domain\": \"code\"", "\"domain\": {}", "not valid JSON");
  text_mutant("no text", text, "\"txt\": \"a\"", "expected an object with a string \"text\"");
  text_mutant("duplicate text", text, text + ", " + text);
  text_mutant("a line that is an array", text, "\"a\": [1]}, [{", "");
  text_mutant("trailing garbage", "\"code\"}", "\"code\"} x", "");
  text_mutant("a 2 MB line", text, "\"text\": \"" + std::string(2 << 20, 'a') + "\"");
  text_mutant("a 2 MB line without a newline", "\r\n{\"source\"", std::string(2 << 20, 'x'));
  mutants.push_back({"empty file (an empty corpus)", "", ""});
  mutants.push_back({"only newlines", "\n\n\r\n", ""});
  mutants.push_back({"binary garbage", std::string("\x00\x01\xff\xfe\x80", 5), "not valid JSON"});
  const Outcomes o = run_mutants(path, mutants, read_all_lines);
  CHECK(o.refused > o.accepted);
  CHECK(o.accepted > 0);
  // An empty file is an empty corpus (libarchive called it "Unrecognized archive format").
  write_bytes(path, "");
  CHECK(error_of([&] { read_all_lines(path); }) == "no error");
}

TEST_CASE("fuzz: corpus JSONL: every mutant of a .gz file is read or refused naming the file") {
  const TempDir temp_dir("jsonl_gz");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/c.jsonl.gz";
  const std::string valid = read_bytes(kData + "corpus/valid.jsonl.gz");
  REQUIRE(valid.size() > 1000);
  std::mt19937_64 rng(kSeed + 8);
  std::vector<Mutant> mutants = truncations(valid, {2, 3, 10, 18, valid.size() - 8, valid.size() - 4});
  append(mutants, bit_flips(valid, rng, 0, 20, 10, 5));
  append(mutants, bit_flips(valid, rng, valid.size() - 8, valid.size(), 0, 0));  // CRC and length
  const Outcomes o = run_mutants(path, mutants, read_all_lines);
  CHECK(o.refused > 0);
}

// ---- SentencePiece model paths ----

TEST_CASE("fuzz: tokenizer: a missing, empty, truncated or corrupt .model is refused naming the file") {
  const TempDir temp_dir("tokenizer");
  const std::string dir = temp_dir.path();
  const std::string path = dir + "/tokenizer.model";
  const std::string valid = read_bytes(kData + "tokenizer-2k.model");
  REQUIRE(valid.size() > 1000);
  std::mt19937_64 rng(kSeed + 9);
  std::vector<Mutant> mutants = truncations(valid, {16, 64, 256, 1024});
  append(mutants, bit_flips(valid, rng, 0, 32, 30, 10));
  std::string garbage(4096, '\0');
  for (char& c : garbage) c = static_cast<char>(rng());
  mutants.push_back({"random bytes", garbage, "cannot load SentencePiece model"});
  mutants.push_back({"a JSON file", "{\"model\": {\"type\": \"BPE\"}}", "cannot load SentencePiece model"});
  mutants.push_back({"empty", "", "cannot load SentencePiece model"});
  const Outcomes o = run_mutants(path, mutants, [](const std::string& p) {
    const corpus::Tokenizer t(p);
    const std::vector<int32_t> ids = t.encode("hello world");
    (void)t.decode(ids);
  });
  CHECK(o.refused > 0);
  CHECK_REFUSED(corpus::Tokenizer{dir + "/missing.model"}, dir + "/missing.model: cannot load SentencePiece model");
  // A directory (without a tokenizer.model in it): SentencePiece's ifstream threw std::ios_base::failure.
  fs::create_directories(dir + "/empty");
  CHECK_REFUSED(corpus::Tokenizer{dir + "/empty"}, "cannot load SentencePiece model");
  CHECK_REFUSED(corpus::Tokenizer{dir + "/empty"}, dir + "/empty");
}

TEST_CASE("fuzz: tokenizer_config.json beside a .model: every mutant is read or refused naming the file") {
  const TempDir temp_dir("tokenizer-config");
  const std::string dir = temp_dir.path();
  write_bytes(dir + "/tokenizer.model", read_bytes(kData + "tokenizer-2k.model"));
  const std::string valid = R"({"add_bos_token": true, "add_eos_token": false, "legacy": true, "model_max_length": 4096})";
  std::mt19937_64 rng(kSeed + 11);
  std::vector<Mutant> mutants = every_truncation(valid, 3);
  append(mutants, bit_flips(valid, rng, 0, 0, 60, 20));
  mutants.push_back({"add_bos_token a string", replaced(valid, "true,", "\"yes\","), "add_bos_token must be true or false"});
  mutants.push_back({"not an object", "[1, 2]", "expected a JSON object"});
  mutants.push_back({"nested 100 000 deep", "{\"add_bos_token\": " + nested(100000) + "}", "nested deeper"});
  mutants.push_back({"non-UTF-8 key", "{\"add\xff\": true}", ""});
  const Outcomes o = run_mutants(dir + "/tokenizer_config.json", mutants, [&](const std::string&) {
    const corpus::Tokenizer t(dir);
    (void)t.encode("hello world", t.hf_special_tokens());
  });
  CHECK(o.refused > 0);
  CHECK(o.accepted > 0);
}

// ---- training checkpoints ----

TEST_CASE(
    "fuzz: training checkpoint: mutants of trainer_state.json and optimizer.safetensors are refused naming the file") {
  const TempDir temp_run("checkpoint");
  const std::string run = temp_run.path();
  const nn::LoryConfig config = nn::preset("tiny");
  nn::LoryLM model(config);
  const auto comm = train::single_process_communicator();
  train::ZeroOptimizer zero(model, DType::f32, *comm, {}, {});
  train::TrainerState state;
  state.step = 3;
  state.tokens = 768;
  const std::string ckpt = train::save_training_checkpoint(run, config, zero, state, "", 1);
  REQUIRE(train::read_checkpoint_info(ckpt).state.step == 3);

  // trainer_state.json
  const std::string trainer_state = ckpt + "/trainer_state.json", valid = read_bytes(trainer_state);
  std::mt19937_64 rng(kSeed + 10);
  std::vector<Mutant> mutants = every_truncation(valid, 7);
  append(mutants, bit_flips(valid, rng, 0, 0, 100, 30));
  const TextMutants text_mutant{valid, mutants};
  text_mutant("step negative", "\"step\": 3", "\"step\": -3", "step is -3, not an integer >= 0");
  text_mutant("step a string", "\"step\": 3", "\"step\": \"3\"", "step is \"3\"");
  text_mutant("step 2^64 - 1", "\"step\": 3", "\"step\": 18446744073709551615", "not an integer >= 0");
  text_mutant("step fractional", "\"step\": 3", "\"step\": 3.5", "not an integer >= 0");
  text_mutant("step missing", "\"step\": 3", "\"stop\": 3", "no \"step\"");
  text_mutant("phase unknown", "\"phase\": \"dense\"", "\"phase\": \"sparse\"", "phase is \"sparse\"");
  text_mutant("loader not an object", "\"loader\": {", "\"loader\": 1, \"x\": {", "no \"loader\" object");
  text_mutant("rng seed negative", "\"seed\": 0", "\"seed\": -1", "rng.seed is -1");
  text_mutant("elapsed_s negative", "\"elapsed_s\": 0", "\"elapsed_s\": -1", "elapsed_s is -1");
  text_mutant("world 0", "\"world\": 1", "\"world\": 0", "world is 0");
  text_mutant("param_steps a list", "\"param_steps\": {", "\"param_steps\": [{", "not valid JSON");
  text_mutant("param step negative", "\"model.embed_tokens.weight\": 0", "\"model.embed_tokens.weight\": -5",
              "param_steps of 'model.embed_tokens.weight' is -5");
  text_mutant("nested 100000 deep", "\"step\": 3", "\"step\": " + nested(100000), "nested deeper than");
  text_mutant("non-UTF-8 key", "\"step\": 3", "\"step\": 3, \"\xff\": 1", "not valid JSON");
  const Outcomes o = run_mutants(trainer_state, mutants, [](const std::string& p) {
    train::read_checkpoint_info(fs::path(p).parent_path().string());
  });
  CHECK(o.refused > o.accepted);
  write_bytes(trainer_state, valid);

  // optimizer.safetensors, loaded into a fresh optimizer.
  const std::string optimizer = ckpt + "/optimizer.safetensors", opt_valid = read_bytes(optimizer);
  const uint64_t n = int_at(opt_valid, 0, 8);
  const std::string header = opt_valid.substr(8, n), data = opt_valid.substr(8 + n);
  const train::CheckpointInfo info = train::read_checkpoint_info(ckpt);
  std::vector<Mutant> opt_mutants = truncations(opt_valid, {8, 8 + n, 8 + n + 4});
  append(opt_mutants, bit_flips(opt_valid, rng, 0, 0, 30, 10));
  opt_mutants.push_back(
      {"moments stored as I32", safetensors_with_header(replaced(header, "\"F32\"", "\"I32\""), data), "is i32"});
  opt_mutants.push_back({"moments stored as BF16 (the right byte count for half the elements)",
                         safetensors_with_header(replaced(header, "\"F32\"", "\"BF16\""), data), "needs"});
  const std::string embed = "\"model.embed_tokens.weight.exp_avg\":{\"dtype\":\"F32\",\"shape\":[64,32]";
  opt_mutants.push_back({"a moment transposed",
                         safetensors_with_header(replaced(header, embed, replaced(embed, "[64,32]", "[32,64]")), data),
                         "is [32, 64], the model's parameter is [64, 32]"});
  nn::LoryLM fresh(config);  // built once: its buffers are not the file's to justify
  train::ZeroOptimizer fresh_zero(fresh, DType::f32, *comm, {}, {});
  run_mutants(optimizer, opt_mutants, [&](const std::string&) { train::load_training_checkpoint(info, fresh_zero); });
  write_bytes(optimizer, opt_valid);
  train::load_training_checkpoint(info, fresh_zero);
}
