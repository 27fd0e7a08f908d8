#pragma once
// The GLUE tasks: where each split lives, which columns hold the text and label, the label list
// (in the order Hugging Face's run_glue uses, so label ids match HF checkpoints), and the official
// metrics. Columns are header names, or 0-based numbers for CoLA's headerless train/dev files.
#include <string>
#include <vector>

namespace peft::data {

struct SplitLayout {
  std::string file;     // e.g. "dev_matched.tsv"
  bool header = true;
  std::string text;     // column of the (first) text
  std::string text_pair;  // second text for pair tasks; empty for single-sentence tasks
  std::string label;    // empty when the split has no labels (test files)
};

struct TaskSpec {
  std::string name;        // "sst2", "mnli-mm", ...
  std::string folder;      // the GLUE folder name: "SST-2", "MNLI"
  std::vector<std::string> labels;  // label strings as they appear in the files; empty: regression
  std::vector<std::string> metrics; // official metrics, e.g. {"accuracy", "f1"}
  SplitLayout train, dev, test;

  bool regression() const { return labels.empty(); }
  int64_t num_labels() const { return regression() ? 1 : static_cast<int64_t>(labels.size()); }
  const SplitLayout& split(const std::string& name) const;  // "train" | "dev" | "test"
};

const std::vector<TaskSpec>& glue_tasks();
const TaskSpec& glue_task(const std::string& name);  // throws listing the known tasks
bool is_glue_task(const std::string& name);

}  // namespace peft::data
