#include "peft/data/glue.h"

#include "peft/error.h"

namespace peft::data {
namespace {

// Layouts of the official GLUE download (as written by the GLUE data script).
std::vector<TaskSpec> make_tasks() {
  const std::vector<std::string> binary{"0", "1"}, entail{"entailment", "not_entailment"};
  std::vector<TaskSpec> t;
  t.push_back({"cola", "CoLA", binary, {"matthews_correlation"},
               {"train.tsv", false, "3", "", "1"}, {"dev.tsv", false, "3", "", "1"},
               {"test.tsv", true, "sentence", "", ""}});
  t.push_back({"sst2", "SST-2", binary, {"accuracy"},
               {"train.tsv", true, "sentence", "", "label"}, {"dev.tsv", true, "sentence", "", "label"},
               {"test.tsv", true, "sentence", "", ""}});
  t.push_back({"mrpc", "MRPC", binary, {"accuracy", "f1"},
               {"train.tsv", true, "#1 String", "#2 String", "Quality"},
               {"dev.tsv", true, "#1 String", "#2 String", "Quality"},
               {"test.tsv", true, "#1 String", "#2 String", ""}});
  t.push_back({"stsb", "STS-B", {}, {"pearson", "spearmanr"},
               {"train.tsv", true, "sentence1", "sentence2", "score"},
               {"dev.tsv", true, "sentence1", "sentence2", "score"},
               {"test.tsv", true, "sentence1", "sentence2", ""}});
  t.push_back({"qqp", "QQP", binary, {"accuracy", "f1"},
               {"train.tsv", true, "question1", "question2", "is_duplicate"},
               {"dev.tsv", true, "question1", "question2", "is_duplicate"},
               {"test.tsv", true, "question1", "question2", ""}});
  const std::vector<std::string> nli{"contradiction", "entailment", "neutral"};
  t.push_back({"mnli", "MNLI", nli, {"accuracy"},
               {"train.tsv", true, "sentence1", "sentence2", "gold_label"},
               {"dev_matched.tsv", true, "sentence1", "sentence2", "gold_label"},
               {"test_matched.tsv", true, "sentence1", "sentence2", ""}});
  t.push_back({"mnli-mm", "MNLI", nli, {"accuracy"},
               {"train.tsv", true, "sentence1", "sentence2", "gold_label"},
               {"dev_mismatched.tsv", true, "sentence1", "sentence2", "gold_label"},
               {"test_mismatched.tsv", true, "sentence1", "sentence2", ""}});
  t.push_back({"qnli", "QNLI", entail, {"accuracy"},
               {"train.tsv", true, "question", "sentence", "label"},
               {"dev.tsv", true, "question", "sentence", "label"},
               {"test.tsv", true, "question", "sentence", ""}});
  t.push_back({"rte", "RTE", entail, {"accuracy"},
               {"train.tsv", true, "sentence1", "sentence2", "label"},
               {"dev.tsv", true, "sentence1", "sentence2", "label"},
               {"test.tsv", true, "sentence1", "sentence2", ""}});
  t.push_back({"wnli", "WNLI", binary, {"accuracy"},
               {"train.tsv", true, "sentence1", "sentence2", "label"},
               {"dev.tsv", true, "sentence1", "sentence2", "label"},
               {"test.tsv", true, "sentence1", "sentence2", ""}});
  return t;
}

}  // namespace

const SplitLayout& TaskSpec::split(const std::string& s) const {
  if (s == "train") return train;
  if (s == "dev" || s == "validation") return dev;
  if (s == "test") return test;
  fail("unknown split '{}' (use train, dev or test)", s);
}

const std::vector<TaskSpec>& glue_tasks() {
  static const std::vector<TaskSpec> tasks = make_tasks();
  return tasks;
}

bool is_glue_task(const std::string& name) {
  for (const auto& t : glue_tasks())
    if (t.name == name) return true;
  return false;
}

const TaskSpec& glue_task(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& t : glue_tasks()) {
    if (t.name == name) return t;
    names.push_back(t.name);
  }
  fail("unknown task '{}' (GLUE tasks: {})", name, fmt::join(names, ", "));
}

}  // namespace peft::data
