// peft predict TASK_DIR: labels and probabilities (or scores) for texts from a file or stdin.
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "io_helpers.h"
#include "peft/data/batching.h"
#include "peft/error.h"
#include "peft/methods/adamix.h"
#include "peft/train/adapted.h"
#include "peft/train/evaluate.h"

namespace peft::cli {
namespace {

struct PredictArgs {
  std::string task_dir, model, input = "-", output = "-", format = "jsonl", device = "cpu", adamix_mode;
  data::ColumnSpec columns;
  size_t batch_size = 64;
  bool no_header = false;
};

// stdin / "-": one text per line; a tab separates the two texts of a pair.
data::Dataset read_plain_lines(const std::string& path) {
  data::Dataset d;
  d.source = path.empty() || path == "-" ? "<stdin>" : path;
  size_t line_no = 0;
  for (auto& line : read_lines(path)) {
    ++line_no;
    if (line.empty()) continue;
    if (!data::is_valid_utf8(line)) fail("{}:{}: line is not valid UTF-8", d.source, line_no);
    data::Example ex;
    ex.line = line_no;
    const size_t tab = line.find('\t');
    ex.text = line.substr(0, tab);
    if (tab != std::string::npos) ex.text_pair = line.substr(tab + 1);
    d.examples.push_back(std::move(ex));
  }
  if (d.examples.empty()) fail("{}: no input texts", d.source);
  return d;
}

void run_predict(PredictArgs a) {
  const torch::Device device = parse_device(a.device);
  train::LoadedTask t = train::load_task(a.task_dir, a.model, device);
  if (!a.adamix_mode.empty()) set_adamix_mode(*t.model, AdaMixMode::parse(a.adamix_mode));
  data::Dataset input;
  const bool plain = a.input.empty() || a.input == "-" ||
                     (a.input.size() > 4 && a.input.substr(a.input.size() - 4) == ".txt");
  if (plain) {
    input = read_plain_lines(a.input);
  } else {
    a.columns.label = "";  // predictions need no labels
    a.columns.header = !a.no_header;
    input = data::load_examples(a.input, a.columns);
  }
  input.labels = t.task.labels;
  for (auto& ex : input.examples) ex.label.reset();
  const auto tokens = data::tokenize(input, *t.tokenizer, t.max_seq_length);
  auto r = train::evaluate(t.trainable, tokens, t.task.metrics, a.batch_size, device);
  const torch::Tensor probs = t.task.regression() ? r.logits : torch::softmax(r.logits, 1);

  write_output(a.output, [&](std::ostream& out) {
    if (a.format == "tsv") {
      out << "index\t" << (t.task.regression() ? "score" : "label");
      for (const auto& l : t.task.labels) out << "\tp_" << l;
      out << "\n";
    }
    for (size_t i = 0; i < input.size(); ++i) {
      const auto row = probs[static_cast<int64_t>(i)];
      if (t.task.regression()) {
        const double score = row[0].item<double>();
        out << (a.format == "tsv" ? fmt::format("{}\t{:.6g}\n", i, score)
                                  : nlohmann::json{{"index", i}, {"score", score}}.dump() + "\n");
        continue;
      }
      const std::string& label = t.task.labels.at(static_cast<size_t>(r.predicted[i]));
      if (a.format == "tsv") {
        out << i << "\t" << label;
        for (int64_t k = 0; k < row.size(0); ++k) out << fmt::format("\t{:.6f}", row[k].item<double>());
        out << "\n";
      } else {
        nlohmann::json p = nlohmann::json::object();
        for (int64_t k = 0; k < row.size(0); ++k) p[t.task.labels[static_cast<size_t>(k)]] = row[k].item<double>();
        out << nlohmann::json{{"index", i}, {"label", label}, {"probabilities", p}}.dump() << "\n";
      }
    }
  });
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  CLI::App* cmd = app.add_subcommand("predict", "Predict labels and probabilities with a trained task");
  cmd->add_option("task", a->task_dir, "task folder, or a run folder (its task/)")->required();
  cmd->add_option("-i,--input", a->input, ".tsv/.csv/.jsonl file, or text lines from a .txt file or stdin (default)");
  cmd->add_option("--text-column", a->columns.text, "column of the text (default text)");
  cmd->add_option("--text-pair-column", a->columns.text_pair, "column of the second text");
  cmd->add_flag("--no-header", a->no_header, "the file has no header: columns are 0-based numbers");
  cmd->add_option("--format", a->format, "jsonl | tsv (default jsonl)")->check(CLI::IsMember({"jsonl", "tsv"}));
  cmd->add_option("-o,--output", a->output, "output file (default: stdout)");
  cmd->add_option("--model", a->model, "base model (default: the one the task was trained on)");
  cmd->add_option("--batch-size", a->batch_size, "examples per batch (default 64)");
  cmd->add_option("--device", a->device, "cpu | cuda | cuda:N");
  cmd->add_option("--adamix-mode", a->adamix_mode, "AdaMix tasks: merged (default) | random | ensemble:K");
  cmd->callback([a] { run_predict(*a); });
}

}  // namespace peft::cli
