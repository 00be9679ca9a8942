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

std::string save_training_checkpoint(const std::string& run_dir, const nn::LoryConfig& model_config,
                                     const FlatParameters& flat, const AdamW& optimizer, const TrainerState& state,
                                     const std::string& config_toml, int64_t keep_last) {
  NoGradGuard no_grad;
  const fs::path root = fs::path(run_dir) / "checkpoints";
  fs::create_directories(root);
  const std::string name = checkpoint_name(state.step);
  const fs::path final_dir = root / name, tmp = root / ("." + name + ".tmp");
  fs::remove_all(tmp);
  fs::create_directories(tmp);

  io::NamedTensors weights, moments;
  nlohmann::ordered_json param_steps = nlohmann::ordered_json::object();
  for (size_t i = 0; i < flat.slots().size(); ++i) {
    const FlatSlot& s = flat.slots()[i];
    weights.emplace_back(s.name, flat.view(flat.master, i));
    moments.emplace_back(s.name + ".exp_avg", flat.view(optimizer.exp_avg, i));
    moments.emplace_back(s.name + ".exp_avg_sq", flat.view(optimizer.exp_avg_sq, i));
    param_steps[s.name] = optimizer.steps[i];
  }
  io::save_safetensors((tmp / "model.safetensors").string(), weights, {{"format", "pt"}});
  nn::save_config(model_config, (tmp / "config.json").string(), "float32");
  io::save_safetensors((tmp / "optimizer.safetensors").string(), moments);
  io::write_file_atomically((tmp / "train_config.toml").string(), config_toml);
  nlohmann::ordered_json j;
  j["step"] = state.step;
  j["tokens"] = state.tokens;
  j["phase"] = state.lory_phase ? "lory" : "dense";
  j["loader"] = {{"epoch", state.loader.epoch}, {"offset", state.loader.offset}};
  j["rng"] = {{"seed", state.rng_seed}, {"offset", state.rng_offset}};
  j["elapsed_s"] = state.elapsed_s;
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
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text(where));
    info.state.step = j.at("step").get<int64_t>();
    info.state.tokens = j.at("tokens").get<int64_t>();
    info.state.lory_phase = j.at("phase").get<std::string>() == "lory";
    info.state.loader.epoch = j.at("loader").at("epoch").get<int64_t>();
    info.state.loader.offset = j.at("loader").at("offset").get<int64_t>();
    info.state.rng_seed = j.at("rng").at("seed").get<uint64_t>();
    info.state.rng_offset = j.at("rng").at("offset").get<uint64_t>();
    info.state.elapsed_s = j.at("elapsed_s").get<double>();
    for (const auto& [name, t] : j.at("param_steps").items()) info.param_steps[name] = t.get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail(where, ": not a valid trainer state: ", e.what());
  }
  return info;
}

void load_training_checkpoint(const CheckpointInfo& info, FlatParameters& flat, AdamW& optimizer) {
  NoGradGuard no_grad;
  const io::SafetensorsFile weights = io::load_safetensors(info.path + "/model.safetensors");
  const io::SafetensorsFile moments = io::load_safetensors(info.path + "/optimizer.safetensors");
  LORY_CHECK(weights.tensors.size() == flat.slots().size(), weights.path, ": holds ", weights.tensors.size(),
             " tensors, the model has ", flat.slots().size(), " parameters");
  for (size_t i = 0; i < flat.slots().size(); ++i) {
    const FlatSlot& s = flat.slots()[i];
    auto load = [&](const io::SafetensorsFile& file, const std::string& name, const Tensor& buffer) {
      const Tensor& t = file.get(name);
      LORY_CHECK(t.shape() == s.shape, file.path, ": '", name, "' is ", t.describe(), ", the model's parameter is ",
                 shape_str(s.shape));
      flat.view(buffer, i).copy_(t);
    };
    load(weights, s.name, flat.master);
    load(moments, s.name + ".exp_avg", optimizer.exp_avg);
    load(moments, s.name + ".exp_avg_sq", optimizer.exp_avg_sq);
    const auto it = info.param_steps.find(s.name);
    LORY_CHECK(it != info.param_steps.end(), info.path, "/trainer_state.json: no Adam step for '", s.name, "'");
    optimizer.steps[i] = it->second;
  }
  flat.master.bump_version();
  flat.publish_master();
}

}  // namespace lory::train
