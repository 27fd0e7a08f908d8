#pragma once
// What `peft train` shares between classification (cmd_train.cpp) and causal-LM tasks (cmd_train_lm.cpp).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/data/task.h"
#include "peft/methods/spec.h"
#include "peft/train/checkpoint.h"
#include "peft/train/trainer.h"

namespace peft::cli {

struct TrainArgs {
  std::string model = "all-MiniLM-L6-v2", method = "lora", method_config, out, device = "cpu";
  data::DataSource source;
  std::string labels, schedule = "linear", prompt_column = "prompt", completion_column = "completion";
  std::vector<std::string> lr_groups;
  bool regression = false, no_header = false, resume = false, overwrite = false, bucket = false;
  size_t max_seq_len = 128, train_samples = 0, dev_samples = 0;
  int nproc = 1;                // --nproc: ranks started on this machine
  double dist_timeout_s = 300;  // --dist-timeout: rendezvous and every collective
  train::TrainOptions options;
  bool main_rank() const { return options.rank() == 0; }  // the rank that prints and writes
};

// " | N ranks x batch B" for the task line (empty in one process), and the closing lines of a run.
std::string ranks_note(const TrainArgs& a);
void print_steps(const TrainArgs& a, const train::TrainResult& r);

// Rank 0 prepares and locks the run folder (see train::prepare_run_dir); the other ranks wait for it.
[[nodiscard]] train::RunLock prepare_run(const TrainArgs& a, const nlohmann::json& run_config);

// Methods from --method, with --method-config either a whole spec or config keys for the one method.
std::vector<MethodSpecItem> method_items(const TrainArgs& a);

// Progress on stderr from rank 0 (a bar on a terminal, lines otherwise) and the crash drills of the
// tests (PEFT_TEST_KILL_AT_STEP / PEFT_TEST_KILL_IN_CHECKPOINT, on the rank PEFT_TEST_KILL_RANK or all).
train::TrainCallbacks progress_callbacks(const TrainArgs& a);

// --task e2e | lm | chat.
inline bool is_lm_task(const std::string& task) { return task == "e2e" || task == "lm" || task == "chat"; }

// peft train for decoders: causal-LM fine-tuning (options already parsed into `a.options`).
void run_train_lm(const TrainArgs& a);

}  // namespace peft::cli
