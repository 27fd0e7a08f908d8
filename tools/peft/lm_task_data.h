#pragma once
// Causal-LM task data for `peft train` and `peft eval`: which files a task reads and how they are tokenized.
#include <string>

#include "peft/data/lm_data.h"
#include "peft/models/model_tokenizer.h"

namespace peft::cli {

struct LmTaskSource {
  std::string task;  // e2e | lm | chat
  std::string data_dir, train_file, dev_file;
  std::string prompt_column = "prompt", completion_column = "completion";
};

// The split ("train", "dev", "test"): E2E from the release folder, else the named JSONL file. Chat data is
// rendered with the model's chat template (an error naming the model when it has none).
// `model` names the model in errors.
data::LmDataset load_lm_split(const LmTaskSource& source, const std::string& split, const tok::Tokenizer& tokenizer,
                              const std::string& chat_template, const std::string& model);

// Chat-rendered prompts carry their special tokens already; others get the tokenizer's (bos).
data::LmTokenizeOptions lm_tokenize_options(size_t max_seq_length, const tok::Tokenizer& tokenizer, const std::string& task);

}  // namespace peft::cli

namespace peft::train {
struct LoadedTask;
}

namespace peft::cli {

// peft eval on a causal-LM task: teacher-forced loss/perplexity plus generation metrics on the split.
struct LmEvalOptions {
  std::string data_dir, file, split = "dev", output = "-", predictions;
  size_t samples = 0, batch_size = 8;
  int64_t max_new_tokens = 64;
};
void run_eval_lm(train::LoadedTask& task, const LmEvalOptions& options);

}  // namespace peft::cli
