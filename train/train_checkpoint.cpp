// train_checkpoint.cpp — see train_checkpoint.h.
#include "train/train_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/graph.h"
#include "io/atomic_file.h"
#include "io/json_text.h"
#include "io/safetensors.h"

namespace lory::train {

namespace fs = std::filesystem;

namespace {

// Step of a "step-00000100" name, -1 for anything else.
int64_t step_of(const std::string& name) {
  if (name.size() <= 5 || name.rfind("step-", 0) != 0) return -1;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoll(name.substr(5));
}

std::vector<std::pair<int64_t, fs::path>> checkpoints_of(const std::string& run_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  const fs::path dir = fs::path(run_dir) / "checkpoints";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const int64_t step = step_of(entry.path().filename().string());
    if (step >= 0 && fs::exists(entry.path() / "trainer_state.json")) out.emplace_back(step, entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  LORY_CHECK(in.good(), path.string(), ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return name;
}

namespace {

int64_t overlap(int64_t a0, int64_t a1, int64_t b0, int64_t b1) { return std::max<int64_t>(0, std::min(a1, b1) - std::max(a0, b0)); }

// Rank r holds [from[r], from[r + 1]) of a flat buffer (host, f32) and
// receives [to[r], to[r + 1]): both partitions are contiguous and in rank
// order, so every rank's segments for the others are in order too.
Tensor repartition(Communicator& comm, const Tensor& part, const std::vector<int64_t>& from,
                   const std::vector<int64_t>& to) {
  const size_t me = static_cast<size_t>(comm.rank()), world = static_cast<size_t>(comm.world());
  std::vector<int64_t> send(world), recv(world);
  for (size_t w = 0; w < world; ++w) {
    send[w] = overlap(from[me], from[me + 1], to[w], to[w + 1]);
    recv[w] = overlap(from[w], from[w + 1], to[me], to[me + 1]);
  }
  Tensor out = empty({to[me + 1] - to[me]}, TensorOptions{part.dtype(), cpu_device(), false});
  comm.all_to_all(part, send, out, recv);
  return out;
}

// This rank's writer range of a buffer of which it holds [range): the
// values of the parameters that start in its shard, on the host.
Tensor writer_values(ZeroOptimizer& zero, const Tensor& part, const std::vector<int64_t>& writers) {
  const FlatParameters& flat = zero.flat();
  const size_t me = static_cast<size_t>(zero.comm().rank());
  const Tensor host = part.to(cpu_device()).contiguous();
  if (part.numel() == flat.size()) return host.narrow(0, writers[me], writers[me + 1] - writers[me]);
  std::vector<int64_t> shards;
  for (int64_t r = 0; r <= zero.comm().world(); ++r) shards.push_back(std::min(flat.size(), r * flat.shard_size()));
  return repartition(zero.comm(), host, shards, writers);
}

}  // namespace

std::string save_training_checkpoint(const std::string& run_dir, const nn::LoryConfig& model_config,
                                     ZeroOptimizer& zero, const TrainerState& state, const std::string& config_toml,
                                     int64_t keep_last) {
  NoGradGuard no_grad;
  Communicator& comm = zero.comm();
  const FlatParameters& flat = zero.flat();
  const AdamW& adam = zero.adam();
  const int64_t world = comm.world(), me = comm.rank();
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const std::string name = checkpoint_name(state.step);
  const fs::path final_dir = root / name, tmp = root / ("." + name + ".tmp");
  if (comm.is_root()) {
    fs::create_directories(root);
    fs::remove_all(tmp);
    fs::create_directories(tmp);
  }
  comm.barrier();

  // Writers: rank w writes the parameters that start in its shard.
  const auto& slots = flat.slots();
  std::vector<int64_t> writers(static_cast<size_t>(world) + 1, flat.size());
  writers[0] = 0;
  for (int64_t w = world - 1; w >= 1; --w) {
    writers[static_cast<size_t>(w)] = writers[static_cast<size_t>(w) + 1];
    for (const FlatSlot& sl : slots)
      if (sl.offset >= flat.shard_begin(w)) {
        writers[static_cast<size_t>(w)] = std::min(writers[static_cast<size_t>(w) + 1], sl.offset);
        break;
      }
  }
  auto file_name = [&](const std::string& stem, int64_t w) {
    return world == 1 ? stem + ".safetensors" : io::shard_file_name(stem, w, world);
  };
  auto writer_of = [&](const FlatSlot& sl) {
    return static_cast<int64_t>(std::upper_bound(writers.begin(), writers.end(), sl.offset) - writers.begin()) - 1;
  };

  const Tensor master = writer_values(zero, flat.master, writers);
  const Tensor exp_avg = writer_values(zero, adam.exp_avg, writers);
  const Tensor exp_avg_sq = writer_values(zero, adam.exp_avg_sq, writers);
  io::NamedTensors weights, moments;
  const int64_t base = writers[static_cast<size_t>(me)];
  for (const FlatSlot& sl : slots) {
    if (writer_of(sl) != me) continue;
    auto piece = [&](const Tensor& t) { return t.narrow(0, sl.offset - base, sl.numel).view(sl.shape); };
    weights.emplace_back(sl.name, piece(master));
    moments.emplace_back(sl.name + ".exp_avg", piece(exp_avg));
    moments.emplace_back(sl.name + ".exp_avg_sq", piece(exp_avg_sq));
  }
  if (!weights.empty()) {
    io::save_safetensors((tmp / file_name("model", me)).string(), weights, {{"format", "pt"}});
    io::save_safetensors((tmp / file_name("optimizer", me)).string(), moments);
  }
  comm.barrier();  // every rank's files are on disk (save_safetensors syncs each)

  if (comm.is_root()) {
    if (world > 1) {
      std::vector<std::pair<std::string, std::string>> model_map, optimizer_map;
      uint64_t model_bytes = 0;
      for (const FlatSlot& sl : slots) {
        const int64_t w = writer_of(sl);
        model_map.emplace_back(sl.name, file_name("model", w));
        optimizer_map.emplace_back(sl.name + ".exp_avg", file_name("optimizer", w));
        optimizer_map.emplace_back(sl.name + ".exp_avg_sq", file_name("optimizer", w));
        model_bytes += static_cast<uint64_t>(sl.numel) * 4;
      }
      io::write_safetensors_index((tmp / "model.safetensors.index.json").string(), model_map, model_bytes);
      io::write_safetensors_index((tmp / "optimizer.safetensors.index.json").string(), optimizer_map, 2 * model_bytes);
    }
    nn::save_config(model_config, (tmp / "config.json").string(), "float32");
    io::write_file_atomically((tmp / "train_config.toml").string(), config_toml);
    nlohmann::ordered_json param_steps = nlohmann::ordered_json::object();
    for (size_t i = 0; i < slots.size(); ++i) param_steps[slots[i].name] = adam.steps[i];
    nlohmann::ordered_json j;
    j["step"] = state.step;
    j["tokens"] = state.tokens;
    j["phase"] = state.lory_phase ? "lory" : "dense";
    j["loader"] = {{"epoch", state.loader.epoch}, {"offset", state.loader.offset}};
    j["rng"] = {{"seed", state.rng_seed}, {"offset", state.rng_offset}};
    j["elapsed_s"] = state.elapsed_s;
    j["world"] = world;
    j["zero"] = zero.stage();
    j["param_steps"] = param_steps;
    // Written last: its presence marks a complete directory (latest_checkpoint).
    io::write_file_atomically((tmp / "trainer_state.json").string(), j.dump(1) + "\n");
    io::fsync_directory(tmp.string());

    // Replace an older checkpoint of the same step (a resumed run re-saving).
    if (fs::exists(final_dir)) {
      const fs::path old = root / ("." + name + ".old");
      fs::remove_all(old);
      fs::rename(final_dir, old);
      fs::rename(tmp, final_dir);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, final_dir);
    }
    io::fsync_directory(root.string());

    auto all = checkpoints_of(run_dir);
    while (static_cast<int64_t>(all.size()) > keep_last) {
      fs::remove_all(all.front().second);
      all.erase(all.begin());
    }
  }
  comm.barrier();
  return final_dir.string();
}

std::string latest_checkpoint(const std::string& run_dir) {
  const auto all = checkpoints_of(run_dir);
  return all.empty() ? std::string() : all.back().second.string();
}

CheckpointInfo read_checkpoint_info(const std::string& path) {
  CheckpointInfo info;
  info.path = path;
  info.model_config = nn::load_config(path + "/config.json");
  const std::string where = path + "/trainer_state.json";
  using Json = nlohmann::ordered_json;
  const Json j = io::parse_json<Json>(read_text(where), where);
  LORY_CHECK(j.is_object(), where, ": not a valid trainer state: expected a JSON object");
  // Each field is looked up and checked here, so a message names the key and
  // the value instead of nlohmann's "type must be number".
  auto field = [&](const std::string& object, const std::string& key) -> const Json& {
    const Json* parent = &j;
    if (!object.empty()) {
      LORY_CHECK(j.contains(object) && j[object].is_object(), where, ": not a valid trainer state: no \"", object,
                 "\" object");
      parent = &j[object];
    }
    LORY_CHECK(parent->contains(key), where, ": not a valid trainer state: no \"",
               object.empty() ? key : object + "." + key, "\"");
    return (*parent)[key];
  };
  auto is_count = [](const Json& v) {  // an integer in [0, INT64_MAX]
    return v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX)
                                  : v.is_number_integer() && v.get<int64_t>() >= 0;
  };
  auto count = [&](const std::string& object, const std::string& key) {
    const Json& v = field(object, key);
    LORY_CHECK(is_count(v), where, ": ", object.empty() ? key : object + "." + key, " is ", io::json_excerpt(v),
               ", not an integer >= 0");
    return v.get<int64_t>();
  };
  auto u64 = [&](const std::string& object, const std::string& key) {
    const Json& v = field(object, key);
    LORY_CHECK(v.is_number_unsigned(), where, ": ", object + "." + key, " is ", io::json_excerpt(v),
               ", not an integer >= 0");
    return v.get<uint64_t>();
  };
  info.state.step = count("", "step");
  info.state.tokens = count("", "tokens");
  const Json& phase = field("", "phase");
  LORY_CHECK(phase == "dense" || phase == "lory", where, ": phase is ", io::json_excerpt(phase),
             ", not \"dense\" or \"lory\"");
  info.state.lory_phase = phase == "lory";
  info.state.loader.epoch = count("loader", "epoch");
  info.state.loader.offset = count("loader", "offset");
  info.state.rng_seed = u64("rng", "seed");
  info.state.rng_offset = u64("rng", "offset");
  const Json& elapsed = field("", "elapsed_s");
  LORY_CHECK(elapsed.is_number() && elapsed.get<double>() >= 0, where, ": elapsed_s is ", io::json_excerpt(elapsed),
             ", not a number >= 0");
  info.state.elapsed_s = elapsed.get<double>();
  const Json& steps = field("", "param_steps");
  LORY_CHECK(steps.is_object(), where, ": param_steps is not an object");
  for (const auto& [name, t] : steps.items()) {
    LORY_CHECK(is_count(t), where, ": param_steps of '", name, "' is ", io::json_excerpt(t), ", not an integer >= 0");
    info.param_steps[name] = t.get<int64_t>();
  }
  if (j.contains("world")) info.world = count("", "world");
  LORY_CHECK(info.world >= 1, where, ": world is ", info.world, ", not >= 1");
  return info;
}

void load_training_checkpoint(const CheckpointInfo& info, ZeroOptimizer& zero) {
  NoGradGuard no_grad;
  FlatParameters& flat = zero.flat();
  AdamW& adam = zero.adam();
  // Opened, not read: each rank reads every weight (it holds the whole
  // model) but only the parts of the master weights and moments in its own
  // range, one parameter at a time.
  const io::SafetensorsDirReader weights(info.path, "model");
  const io::SafetensorsDirReader moments(info.path, "optimizer");
  LORY_CHECK(weights.size() == flat.slots().size(), weights.path(), ": holds ", weights.size(),
             " tensors, the model has ", flat.slots().size(), " parameters");
  for (size_t i = 0; i < flat.slots().size(); ++i) {
    const FlatSlot& s = flat.slots()[i];
    auto file = [&](const io::SafetensorsDirReader& dir, const std::string& name) -> const io::SafetensorsReader& {
      const io::SafetensorsReader& f = dir.file_of(name);
      LORY_CHECK(f.dtype(name) == DType::f32, f.path(), ": '", name, "' is ", dtype_name(f.dtype(name)),
                 "; a training checkpoint holds f32 master weights and moments");
      LORY_CHECK(f.shape(name) == s.shape, f.path(), ": '", name, "' is ", shape_str(f.shape(name)),
                 ", the model's parameter is ", shape_str(s.shape));
      return f;
    };
    // The part of parameter i inside [begin, begin + buffer.numel()) of the flat space.
    auto load_part = [&](const io::SafetensorsReader& f, const std::string& name, const Tensor& buffer, int64_t begin) {
      const int64_t lo = std::max(s.offset, begin), hi = std::min(s.offset + s.numel, begin + buffer.numel());
      if (lo < hi) buffer.narrow(0, lo - begin, hi - lo).copy_(f.read(name, lo - s.offset, hi - lo));
    };
    const io::SafetensorsReader& w = file(weights, s.name);
    flat.view(flat.params, i).copy_(w.read(s.name));  // every rank holds the whole model
    if (flat.has_separate_master()) load_part(w, s.name, flat.master, flat.master_begin());  // (f32: master is params)
    for (auto [suffix, buffer] : {std::pair{".exp_avg", &adam.exp_avg}, std::pair{".exp_avg_sq", &adam.exp_avg_sq}})
      load_part(file(moments, s.name + suffix), s.name + suffix, *buffer, adam.range.begin);
    const auto it = info.param_steps.find(s.name);
    LORY_CHECK(it != info.param_steps.end(), info.path, "/trainer_state.json: no Adam step for '", s.name, "'");
    adam.steps[i] = it->second;
  }
  flat.params.bump_version();
  flat.master.bump_version();
}

}  // namespace lory::train
