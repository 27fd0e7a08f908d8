#pragma once
// What `peft train` shares between classification (cmd_train.cpp) and causal-LM tasks (cmd_train_lm.cpp).
#include <string>
#include <vector>

#include "peft/data/task.h"
#include "peft/methods/spec.h"
#include "peft/train/trainer.h"

namespace peft::cli {

struct TrainArgs {
  std::string model = "all-MiniLM-L6-v2", method = "lora", method_config, out, device = "cpu";
  data::DataSource source;
  std::string labels, schedule = "linear", prompt_column = "prompt", completion_column = "completion";
  std::vector<std::string> lr_groups;
  bool regression = false, no_header = false, resume = false, overwrite = false, bucket = false;
  size_t max_seq_len = 128, train_samples = 0, dev_samples = 0;
  train::TrainOptions options;
};

// Methods from --method, with --method-config either a whole spec or config keys for the one method.
std::vector<MethodSpecItem> method_items(const TrainArgs& a);

// Progress on stderr (a bar on a terminal, lines otherwise) and the crash drills of the tests.
train::TrainCallbacks progress_callbacks(int64_t log_every);

// --task e2e | lm | chat.
inline bool is_lm_task(const std::string& task) { return task == "e2e" || task == "lm" || task == "chat"; }

// peft train for decoders: causal-LM fine-tuning (options already parsed into `a.options`).
void run_train_lm(const TrainArgs& a);

}  // namespace peft::cli
