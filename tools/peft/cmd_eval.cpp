// peft eval TASK_DIR: the task's metrics on a GLUE split or a labelled file, as JSON (causal-LM tasks:
// generation metrics, see cmd_eval_lm.cpp).
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "io_helpers.h"
#include "peft/data/batching.h"
#include "peft/error.h"
#include "peft/methods/adamix.h"
#include "peft/train/adapted.h"
#include "peft/train/evaluate.h"
#include "lm_task_data.h"

namespace peft::cli {
namespace {

struct EvalArgs {
  std::string task_dir, model, data_dir, file, split = "dev", output = "-", device = "cpu", adamix_mode, predictions;
  int64_t max_new_tokens = 64;
  data::ColumnSpec columns;
  size_t batch_size = 64, samples = 0;
  bool no_header = false;
};

void run_eval(EvalArgs a) {
  train::LoadedTask t = train::load_task(a.task_dir, a.model, parse_device(a.device));
  if (!a.adamix_mode.empty()) set_adamix_mode(*t.model, AdaMixMode::parse(a.adamix_mode));
  if (t.task.causal_lm) {
    LmEvalOptions o{a.data_dir, a.file, a.split, a.output, a.predictions, a.samples, std::min<size_t>(a.batch_size, 16),
                    a.max_new_tokens};
    return run_eval_lm(t, o);
  }
  if (!a.predictions.empty()) fail("--predictions is for causal-LM tasks (classification: use peft predict)");
  data::DataSource source;
  source.task = t.task.name;
  source.data_dir = a.data_dir;
  source.columns = a.columns;
  source.columns.regression = t.task.regression();
  source.columns.header = !a.no_header;
  if (!a.file.empty()) (a.split == "train" ? source.train_file : a.split == "test" ? source.test_file : source.dev_file) = a.file;
  data::Dataset set = data::load_split(source, a.split, t.task.labels);
  if (a.samples) set = data::sample(set, a.samples, 0);
  if (!set.has_labels()) fail("{}: no labels to evaluate against", set.source);
  const auto tokens = data::tokenize(set, *t.tokenizer, t.max_seq_length);
  auto r = train::evaluate(t.trainable, tokens, t.task.metrics, a.batch_size, parse_device(a.device));
  r.metrics["task"] = t.task.name;
  r.metrics["data"] = set.source;
  write_output(a.output, [&](std::ostream& out) { out << r.metrics.dump(2) << "\n"; });
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand("eval", "Evaluate a trained task (metrics as JSON)");
  cmd->add_option("task", a->task_dir, "task folder, or a run folder (its task/)")->required();
  cmd->add_option("--data", a->data_dir, "GLUE task folder (for GLUE tasks), E2E folder (for e2e)");
  cmd->add_option("--predictions", a->predictions,
                  "causal-LM tasks: write each prediction with its references as JSONL (input, prediction, references)");
  cmd->add_option("--max-new-tokens", a->max_new_tokens, "causal-LM tasks: tokens to generate at most (default 64)");
  cmd->add_option("--dev-samples", a->samples, "same as --samples");
  cmd->add_option("--split", a->split, "train | dev | test (default dev)");
  cmd->add_option("--file", a->file, "labelled .tsv/.csv/.jsonl file instead of the GLUE split (lm/chat tasks: JSONL)");
  cmd->add_option("--text-column", a->columns.text, "column of the text (custom files)");
  cmd->add_option("--text-pair-column", a->columns.text_pair, "column of the second text");
  cmd->add_option("--label-column", a->columns.label, "column of the label");
  cmd->add_flag("--no-header", a->no_header, "the file has no header: columns are 0-based numbers");
  cmd->add_option("--samples", a->samples, "evaluate a random subset of N examples");
  cmd->add_option("--model", a->model, "base model (default: the one the task was trained on)");
  cmd->add_option("--batch-size", a->batch_size, "examples per batch (default 64)");
  cmd->add_option("-o,--output", a->output, "output file (default: stdout)");
  cmd->add_option("--device", a->device, "cpu | cuda | cuda:N");
  cmd->add_option("--adamix-mode", a->adamix_mode, "AdaMix tasks: merged (default) | random | ensemble:K");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace peft::cli
