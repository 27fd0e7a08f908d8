#include "peft/data/dataset.h"

#include <filesystem>
#include <map>
#include <random>

#include "peft/error.h"

namespace fs = std::filesystem;

namespace peft::data {
namespace {

std::string trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

const std::string& field(const Table& table, const Row& row, size_t column) {
  if (column >= row.fields.size())
    fail("{}:{}: row has {} field(s), column {} is missing", table.path, row.line, row.fields.size(), column);
  return row.fields[column];
}

// Converts rows to examples; `labels` empty + regression=false never happens here.
Dataset to_dataset(const Table& table, size_t text, std::optional<size_t> pair, std::optional<size_t> label,
                   const std::vector<std::string>& labels, bool regression) {
  Dataset data;
  data.source = table.path;
  data.labels = regression ? std::vector<std::string>{} : labels;
  std::map<std::string, size_t> label_ids;
  for (size_t i = 0; i < labels.size(); ++i) label_ids[labels[i]] = i;
  for (const Row& row : table.rows) {
    Example ex;
    ex.line = row.line;
    ex.text = field(table, row, text);
    if (pair) ex.text_pair = field(table, row, *pair);
    if (label) {
      const std::string value = trim(field(table, row, *label));
      if (regression) {
        double v;
        if (!parse_number(value, v)) fail("{}:{}: score '{}' is not a number", table.path, row.line, value);
        ex.label = static_cast<float>(v);
      } else {
        auto it = label_ids.find(value);
        if (it == label_ids.end())
          fail("{}:{}: label '{}' is not in the label map ({})", table.path, row.line, value, fmt::join(labels, ", "));
        ex.label = static_cast<float>(it->second);
      }
    }
    data.examples.push_back(std::move(ex));
  }
  return data;
}

}  // namespace

std::string glue_task_dir(const TaskSpec& task, const std::string& dir) {
  const fs::path nested = fs::path(dir) / task.folder;
  if (fs::is_directory(nested)) return nested.string();
  if (!fs::is_directory(dir)) fail("--data {}: not a folder", dir);
  return dir;
}

Dataset load_glue(const TaskSpec& task, const std::string& dir, const std::string& split) {
  const SplitLayout& layout = task.split(split);
  const std::string path = (fs::path(glue_task_dir(task, dir)) / layout.file).string();
  if (!fs::exists(path)) fail("{}: missing ({} split of task {})", path, split, task.name);
  const Table table = read_table(path, {Format::Tsv, layout.header});
  std::optional<size_t> pair, label;
  if (!layout.text_pair.empty()) pair = table.column(layout.text_pair);
  if (!layout.label.empty()) label = table.column(layout.label);
  return to_dataset(table, table.column(layout.text), pair, label, task.labels, task.regression());
}

Dataset load_examples(const std::string& path, const ColumnSpec& spec) {
  ReadOptions options;
  options.format = spec.format ? *spec.format : format_from_path(path);
  options.header = spec.header;
  const Table table = read_table(path, options);
  std::optional<size_t> pair, label;
  if (!spec.text_pair.empty()) pair = table.column(spec.text_pair);
  std::vector<std::string> labels = spec.labels;
  if (!spec.label.empty()) {
    label = table.column(spec.label);
    if (labels.empty() && !spec.regression) labels = infer_labels(table, *label);
  }
  return to_dataset(table, table.column(spec.text), pair, label, labels, spec.regression);
}

std::vector<std::string> infer_labels(const Table& table, size_t column) {
  std::vector<std::string> values;
  for (const Row& row : table.rows) {
    std::string v = trim(field(table, row, column));
    if (std::find(values.begin(), values.end(), v) == values.end()) values.push_back(std::move(v));
  }
  const bool numeric = std::all_of(values.begin(), values.end(), [](const std::string& s) {
    double d;
    return parse_number(s, d);
  });
  std::sort(values.begin(), values.end(), [&](const std::string& a, const std::string& b) {
    return numeric ? std::strtod(a.c_str(), nullptr) < std::strtod(b.c_str(), nullptr) : a < b;
  });
  return values;
}

Dataset sample(const Dataset& data, size_t n, uint64_t seed) {
  if (n >= data.size()) return data;
  std::vector<size_t> order(data.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < n; ++i) std::swap(order[i], order[i + rng() % (order.size() - i)]);
  order.resize(n);
  std::sort(order.begin(), order.end());
  Dataset out = data;
  out.examples.clear();
  for (size_t i : order) out.examples.push_back(data.examples[i]);
  return out;
}

double majority_fraction(const Dataset& data) {
  std::map<float, size_t> counts;
  size_t labelled = 0;
  for (const auto& ex : data.examples)
    if (ex.label) ++counts[*ex.label], ++labelled;
  size_t best = 0;
  for (auto& [label, count] : counts) best = std::max(best, count);
  return labelled ? double(best) / double(labelled) : 0.0;
}

}  // namespace peft::data
