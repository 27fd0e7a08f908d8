#include "peft/data/task.h"

#include "peft/error.h"

namespace peft::data {

nlohmann::json TaskInfo::to_json() const {
  nlohmann::json j{{"task", name}, {"labels", labels}, {"metrics", metrics}, {"regression", regression()}};
  if (causal_lm) {
    j["causal_lm"] = true;
    j["data_format"] = data_format;
  }
  return j;
}

TaskInfo TaskInfo::from_json(const nlohmann::json& j, const std::string& source) {
  try {
    TaskInfo t;
    t.name = j.at("task");
    t.labels = j.at("labels").get<std::vector<std::string>>();
    t.metrics = j.at("metrics").get<std::vector<std::string>>();
    t.causal_lm = j.value("causal_lm", false);
    t.data_format = j.value("data_format", std::string());
    return t;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a task description ({})", source, e.what());
  }
}

Dataset load_split(const DataSource& source, const std::string& split, const std::vector<std::string>& labels) {
  const std::string& file = split == "train" ? source.train_file : split == "dev" ? source.dev_file : source.test_file;
  if (source.task != "custom" && file.empty()) {
    if (source.data_dir.empty()) fail("--data is required for GLUE task {}", source.task);
    return load_glue(glue_task(source.task), source.data_dir, split);
  }
  if (file.empty()) fail("custom task: no --{} file given", split);
  ColumnSpec columns = source.columns;
  if (source.task != "custom") {  // a GLUE task read from a file of its own layout
    const TaskSpec& spec = glue_task(source.task);
    const SplitLayout& layout = spec.split(split);
    columns = {layout.text, layout.text_pair, layout.label, spec.labels, spec.regression(), Format::Tsv, layout.header};
  } else if (!labels.empty()) {
    columns.labels = labels;
  }
  return load_examples(file, columns);
}

TaskInfo task_info(const DataSource& source, const Dataset& train) {
  TaskInfo t;
  t.name = source.task;
  if (source.task != "custom") {
    const TaskSpec& spec = glue_task(source.task);
    t.labels = spec.labels;
    t.metrics = spec.metrics;
    return t;
  }
  t.labels = train.labels;
  if (t.regression()) t.metrics = {"pearson", "spearmanr"};
  else if (t.labels.size() == 2) t.metrics = {"accuracy", "f1"};
  else t.metrics = {"accuracy"};
  return t;
}

}  // namespace peft::data
