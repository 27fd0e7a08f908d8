#pragma once
// Run folders and resumable training checkpoints.
//
//   RUN_DIR/run.json             the run's configuration; --resume must match it
//   RUN_DIR/metrics.jsonl        one JSON object per log / eval line
//   RUN_DIR/checkpoints/latest   name of the newest complete checkpoint (replaced atomically)
//   RUN_DIR/checkpoints/step-N/  tensors.safetensors (trainable tensors + generator states),
//                                optimizer.pt (AdamW state), state.json (step, data position, best)
//   RUN_DIR/task/                the best task (adapter folder), RUN_DIR/results.json
//
// Every file is written atomically and a checkpoint only becomes "latest" once all its files are
// on disk, so a run killed at any moment (even mid-write) resumes from the last complete one.
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>

#include "peft/train/optimizer.h"

namespace peft::train {

struct TrainState {
  int64_t step = 0;   // optimizer steps done
  int64_t epoch = 0;  // current epoch
  int64_t batch = 0;  // batches of `epoch` already consumed
  double best_metric = -std::numeric_limits<double>::infinity();
  int64_t best_step = -1;
  int64_t evals_without_improvement = 0;

  nlohmann::json to_json() const;
  static TrainState from_json(const nlohmann::json& j);
};

// An exclusive lock on a run folder (RUN_DIR/.lock, flock): while one process trains in a folder, a
// second `peft train` on it (new, --overwrite or --resume) is refused. Released when destroyed or when
// the process ends, however it ends.
class RunLock {
 public:
  RunLock() = default;
  explicit RunLock(const std::string& dir);  // throws peft::Error if another process holds it
  RunLock(RunLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  RunLock& operator=(RunLock&& other) noexcept;
  ~RunLock();

 private:
  int fd_ = -1;
};

// New run: `dir` must not exist or be empty, unless `overwrite` (its contents are then removed).
// Resume: `dir`/run.json must exist and equal `config` (the error names the differing keys).
// Writes run.json for a new run. Returns the folder's lock: keep it while training.
[[nodiscard]] RunLock prepare_run_dir(const std::string& dir, const nlohmann::json& config, bool resume, bool overwrite);

// Random generators' states (at::Generator::get_state()) saved with a checkpoint, by name.
using RandomStates = std::map<std::string, torch::Tensor>;

// Saves a checkpoint (tensors, optimizer, state, generator states) and makes it the latest; older
// checkpoints are removed afterwards. Returns its folder. `before_commit` (tests) runs when the
// files are written but the checkpoint is not yet the latest.
std::string save_checkpoint(const std::string& run_dir, const TrainState& state, const std::vector<NamedTensor>& tensors,
                            torch::optim::Optimizer& optimizer, const RandomStates& random,
                            const std::function<void()>& before_commit = {});

// Restores the latest checkpoint into the tensors and the optimizer, and returns its generator states
// in `random`; false if there is none.
bool load_checkpoint(const std::string& run_dir, TrainState& state, const std::vector<NamedTensor>& tensors,
                     torch::optim::Optimizer& optimizer, RandomStates& random);

std::string latest_checkpoint(const std::string& run_dir);  // "" when none

// Replaces folder `dir` by what `writer` puts into a fresh temporary folder (rename-based, so a
// crash leaves either the old or the new folder).
void replace_folder(const std::string& dir, const std::function<void(const std::string& tmp)>& writer);

}  // namespace peft::train
