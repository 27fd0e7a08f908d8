#pragma once
// A task as the CLI and the trainer see it: a GLUE task or a user's files, its label map and
// metrics. Saved as task.json next to a trained task so eval/predict know the labels.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/data/dataset.h"

namespace peft::data {

struct TaskInfo {
  std::string name;                  // "sst2", or "custom"
  std::vector<std::string> labels;   // empty: regression
  std::vector<std::string> metrics;  // official metrics (custom: accuracy + f1 for 2 labels, pearson/spearman for regression)
  bool causal_lm = false;            // text generation (e2e, prompt/completion JSONL, chat): no labels, LM loss
  std::string data_format;           // causal LM: "e2e", "jsonl" or "chat"
  bool regression() const { return labels.empty() && !causal_lm; }
  int64_t num_labels() const { return regression() ? 1 : static_cast<int64_t>(labels.size()); }
  nlohmann::json to_json() const;
  static TaskInfo from_json(const nlohmann::json& j, const std::string& source);
};

// Where examples come from: a GLUE task folder, or the user's files with chosen columns.
struct DataSource {
  std::string task = "sst2";  // a GLUE task name, or "custom"
  std::string data_dir;       // GLUE: the task folder or the folder holding it
  std::string train_file, dev_file, test_file;  // custom (a GLUE task may also name files)
  ColumnSpec columns;         // custom files
};

// Reads the split ("train", "dev", "test"). Custom files: labels come from `labels` when given
// (pass the train split's map for dev/test), else from the file.
Dataset load_split(const DataSource& source, const std::string& split, const std::vector<std::string>& labels = {});

// The task of a source whose train split has been read (custom tasks take its label map).
TaskInfo task_info(const DataSource& source, const Dataset& train);

}  // namespace peft::data
