#pragma once
// Labelled (or unlabelled) examples for sequence classification and regression, read from a GLUE
// task folder or from a user's TSV/CSV/JSONL file with chosen text and label columns.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "peft/data/glue.h"
#include "peft/data/table.h"

namespace peft::data {

struct Example {
  std::string text;
  std::optional<std::string> text_pair;
  std::optional<float> label;  // class id, or the score for regression; unset in test files
  size_t line = 0;             // where it came from, for messages
};

struct Dataset {
  std::string source;               // file path
  std::vector<std::string> labels;  // label map: id -> label string; empty for regression
  std::vector<Example> examples;

  bool regression() const { return labels.empty(); }
  bool has_labels() const { return !examples.empty() && examples.front().label.has_value(); }
  size_t size() const { return examples.size(); }
};

// Which columns to read from a user's file. Columns are header names, or 0-based numbers when
// header = false. An empty label column reads an unlabelled file (for prediction).
struct ColumnSpec {
  std::string text = "text";
  std::string text_pair;
  std::string label = "label";
  std::vector<std::string> labels;  // the label map; empty: taken from the file (sorted)
  bool regression = false;
  std::optional<Format> format;     // default: from the extension
  bool header = true;
};

// The folder holding a GLUE task's files: `dir` itself, or dir/<TaskSpec::folder> when that exists.
std::string glue_task_dir(const TaskSpec& task, const std::string& dir);
// One split ("train", "dev", "test") of a GLUE task.
Dataset load_glue(const TaskSpec& task, const std::string& dir, const std::string& split);

// A user's file. Errors name file and line: missing column, a label outside the label map, a
// score that is not a number, an empty text.
Dataset load_examples(const std::string& path, const ColumnSpec& columns);

// The distinct labels of a column, numbers sorted numerically and others alphabetically.
std::vector<std::string> infer_labels(const Table& table, size_t column);

// `n` examples drawn without replacement, deterministically from `seed` (all when n >= size).
Dataset sample(const Dataset& data, size_t n, uint64_t seed);

// Fraction of the most frequent label (the majority-class baseline accuracy).
double majority_fraction(const Dataset& data);

}  // namespace peft::data
