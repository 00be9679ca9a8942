// train_fixture.cpp — see train_fixture.h.
#include "tests/train_fixture.h"

#include <filesystem>
#include <memory>

#include "corpus/encode_corpus.h"
#include "corpus/similarity_batching.h"
#include "corpus/token_shard.h"
#include "corpus/tokenizer.h"

namespace lory::test {

using namespace lory::train;
namespace fs = std::filesystem;

namespace {
const std::string kData = std::string(LORY_SOURCE_DIR) + "/tests/data/";
constexpr int64_t kSeqLen = 64;
}  // namespace

TrainData make_train_data(const std::string& where, bool build) {
  TrainData out;
  const fs::path dir = where;
  const std::string model = kData + "tokenizer-2k.model";
  {
    corpus::Tokenizer tok(model);
    out.vocab = tok.vocab_size();
    out.eos = tok.eos_id();
  }
  out.instances = (dir / "train-instances.bin").string();
  if (!build) return out;  // (valid stays empty: only the data-parallel tests ask, without evaluation)
  fs::create_directories(dir);
  corpus::EncodeOptions o;
  o.model = model;
  o.inputs = {kData + "corpus/train.jsonl.gz"};
  o.out_prefix = (dir / "train").string();
  const corpus::EncodeResult train = corpus::encode_corpus(o);
  o.inputs = {kData + "corpus/valid.jsonl.gz"};
  o.out_prefix = (dir / "valid").string();
  const corpus::EncodeResult valid = corpus::encode_corpus(o);
  for (const std::string& s : valid.shards) out.valid += (out.valid.empty() ? "" : ",") + s;

  std::vector<std::unique_ptr<corpus::ShardReader>> readers;
  std::vector<const corpus::ShardReader*> shards;
  for (const std::string& s : train.shards) {
    readers.push_back(std::make_unique<corpus::ShardReader>(s));
    shards.push_back(readers.back().get());
  }
  const corpus::DocumentSet docs(shards);
  corpus::PackOptions pack;
  pack.instance_tokens = kSeqLen + 1;
  pack.eos_id = out.eos;
  pack.seed = 11;
  const corpus::Instances inst = corpus::pack_instances(docs, corpus::random_order(docs.size(), 7), pack);
  corpus::write_instances(out.instances, inst, docs.vocab_size());
  return out;
}

TrainConfig tiny_train_config(const TrainData& data, const std::string& dir,
                              const std::vector<ConfigOverride>& overrides) {
  const std::string toml = R"([model]
preset = "tiny"
num_experts = 4
segment_length = 16

[optim]
lr = 0.003

[schedule]
steps = 6
warmup = 0.2
dense_warmup = 0.17

[train]
global_batch_tokens = 256
micro_batch = 2

[eval]
tokens_per_domain = 128

[log]
peak_tflops = 1.0
)";
  std::vector<ConfigOverride> all = {
      {"data.train", data.instances}, {"data.valid", ""}, {"checkpoint.dir", dir}};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return parse_train_config(toml, "test config", all);
}


}  // namespace lory::test
