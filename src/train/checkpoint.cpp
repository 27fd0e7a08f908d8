#include "peft/train/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include <fstream>
#include <sstream>

#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/io/safetensors.h"

namespace fs = std::filesystem;

namespace peft::train {
namespace {

// Generator states are stored beside the tensors as "__rng_state.<name>" (torch's default CPU
// generator of a single process is "__rng_state.cpu").
const char* kRngPrefix = "__rng_state.";
const char* kLockName = ".lock";

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot open", path.string());
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: invalid JSON ({})", path.string(), e.what());
  }
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Keys of two JSON objects whose values differ (flattened with '/').
void diff_keys(const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix, std::vector<std::string>& out) {
  if (a.is_object() && b.is_object()) {
    std::set<std::string> keys;
    for (auto& [k, v] : a.items()) keys.insert(k);
    for (auto& [k, v] : b.items()) keys.insert(k);
    for (const auto& k : keys)
      diff_keys(a.contains(k) ? a[k] : nullptr, b.contains(k) ? b[k] : nullptr, prefix + k + "/", out);
  } else if (a != b) {
    out.push_back(fmt::format("{} ({} vs {})", prefix.substr(0, prefix.size() - 1), a.dump(), b.dump()));
  }
}

}  // namespace

nlohmann::json TrainState::to_json() const {
  nlohmann::json j{{"step", step}, {"epoch", epoch}, {"batch", batch}, {"best_step", best_step},
                   {"evals_without_improvement", evals_without_improvement}};
  j["best_metric"] = std::isfinite(best_metric) ? nlohmann::json(best_metric) : nlohmann::json(nullptr);
  return j;
}

TrainState TrainState::from_json(const nlohmann::json& j) {
  TrainState s;
  s.step = j.at("step");
  s.epoch = j.at("epoch");
  s.batch = j.at("batch");
  s.best_step = j.at("best_step");
  s.evals_without_improvement = j.at("evals_without_improvement");
  if (!j.at("best_metric").is_null()) s.best_metric = j["best_metric"];
  return s;
}

RunLock::RunLock(const std::string& dir) {
  const std::string path = (fs::path(dir) / kLockName).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("{}: cannot create the run folder's lock: {}", path, std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {};
    const ssize_t n = ::pread(fd_, pid, sizeof(pid) - 1, 0);
    ::close(fd_);
    fd_ = -1;
    fail("run folder {} is in use by another peft train{} (wait for it, or use another --out)", dir,
         n > 0 ? fmt::format(" (pid {})", std::string(pid, size_t(n))) : "");
  }
  const std::string me = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, me.data(), me.size(), 0) < 0) {
    // the pid only makes the message above nicer
  }
}

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing drops the flock
}

RunLock prepare_run_dir(const std::string& dir, const nlohmann::json& config, bool resume, bool overwrite) {
  const fs::path run = dir, config_path = run / "run.json";
  if (resume) {
    if (!fs::exists(config_path)) fail("--resume: {} has no run.json (not a run folder)", dir);
    RunLock lock(dir);
    std::vector<std::string> diffs;
    diff_keys(read_json(config_path), config, "", diffs);
    if (!diffs.empty())
      fail("--resume: configuration differs from {}: {}", config_path.string(), fmt::join(diffs, "; "));
    return lock;
  }
  // Empty but for a lock file left by an earlier run counts as empty.
  auto has_contents = [&] {
    if (!fs::is_directory(run)) return true;
    for (const auto& entry : fs::directory_iterator(run))
      if (entry.path().filename() != kLockName) return true;
    return false;
  };
  const bool existed = fs::exists(run);
  if (existed && has_contents() && !overwrite)
    fail("run folder {} already exists (use --overwrite to replace it, or --resume)", dir);
  if (existed && !fs::is_directory(run)) fail("--out {}: exists and is not a folder", dir);
  fs::create_directories(run);
  RunLock lock(dir);  // before anything is removed: a run still writing here keeps its files
  for (const auto& entry : fs::directory_iterator(run))
    if (entry.path().filename() != kLockName) fs::remove_all(entry.path());
  io::write_file_atomically(config_path.string(), config.dump(2) + "\n");
  return lock;
}

std::string latest_checkpoint(const std::string& run_dir) {
  const fs::path latest = fs::path(run_dir) / "checkpoints" / "latest";
  if (!fs::exists(latest)) return "";
  std::string name = read_text(latest);
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  const fs::path dir = fs::path(run_dir) / "checkpoints" / name;
  if (!fs::is_directory(dir)) fail("{}: points to missing checkpoint {}", latest.string(), dir.string());
  return dir.string();
}

std::string save_checkpoint(const std::string& run_dir, const TrainState& state, const std::vector<NamedTensor>& tensors,
                            torch::optim::Optimizer& optimizer, const RandomStates& random,
                            const std::function<void()>& before_commit) {
  const fs::path root = fs::path(run_dir) / "checkpoints";
  const std::string name = fmt::format("step-{}", state.step);
  const fs::path dir = root / name;
  const bool is_latest = latest_checkpoint(run_dir) == dir.string();  // saved again at the same step
  fs::create_directories(dir);
  try {
    std::vector<std::pair<std::string, torch::Tensor>> named;
    for (const auto& t : tensors) named.emplace_back(t.name, t.tensor.detach());
    for (const auto& [name, state] : random) named.emplace_back(kRngPrefix + name, state);
    io::save_safetensors((dir / "tensors.safetensors").string(), named);

    // Serialised in memory first: torch's zip writer aborts the process when its stream fails (a full
    // disk), our atomic write turns the failure into an error and leaves no partial file.
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    std::ostringstream bytes;
    archive.save_to(bytes);
    io::write_file_atomically((dir / "optimizer.pt").string(), bytes.str());
    io::write_file_atomically((dir / "state.json").string(), state.to_json().dump(2) + "\n");
  } catch (...) {  // never a half-written folder beside the complete ones
    std::error_code ignored;
    if (!is_latest) fs::remove_all(dir, ignored);
    throw;
  }

  if (before_commit) before_commit();
  // The switch: from here on this checkpoint is the one a resume uses.
  io::write_file_atomically((root / "latest").string(), name + "\n");
  for (const auto& entry : fs::directory_iterator(root))
    if (entry.is_directory() && entry.path().filename() != name) fs::remove_all(entry.path());
  return dir.string();
}

bool load_checkpoint(const std::string& run_dir, TrainState& state, const std::vector<NamedTensor>& tensors,
                     torch::optim::Optimizer& optimizer, RandomStates& random) {
  const std::string dir = latest_checkpoint(run_dir);
  if (dir.empty()) return false;
  const auto file = io::SafetensorsFile::open(dir + "/tensors.safetensors");
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    if (!file.contains(t.name)) fail("{}/tensors.safetensors: missing tensor {}", dir, t.name);
    torch::Tensor value = file.tensor(t.name);
    if (value.sizes() != t.tensor.sizes())
      fail("{}/tensors.safetensors: tensor {} has shape {}, the model has {}", dir, t.name,
           fmt::join(value.sizes().vec(), "x"), fmt::join(t.tensor.sizes().vec(), "x"));
    t.tensor.copy_(value);
  }
  random.clear();
  for (const auto& name : file.names())
    if (name.rfind(kRngPrefix, 0) == 0) random[name.substr(std::string(kRngPrefix).size())] = file.tensor(name).clone();

  torch::serialize::InputArchive archive;
  std::istringstream in(read_text(dir + "/optimizer.pt"));
  archive.load_from(in);
  optimizer.load(archive);
  state = TrainState::from_json(read_json(dir + "/state.json"));
  return true;
}

void replace_folder(const std::string& dir, const std::function<void(const std::string& tmp)>& writer) {
  const fs::path target = dir, tmp = target.string() + ".tmp", old = target.string() + ".old";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    writer(tmp.string());
  } catch (...) {  // a full disk, a size limit: nothing half-written stays behind
    std::error_code ignored;
    fs::remove_all(tmp, ignored);
    throw;
  }
  fs::remove_all(old);
  if (fs::exists(target)) fs::rename(target, old);
  fs::rename(tmp, target);
  fs::remove_all(old);
}

}  // namespace peft::train
