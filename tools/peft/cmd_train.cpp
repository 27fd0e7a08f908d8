// peft train: fine-tune a model with one or more methods on a GLUE task or the user's files.
#include <unistd.h>

#include <csignal>
#include <cstdlib>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "io_helpers.h"
#include "launch_ranks.h"
#include "train_common.h"
#include "peft/data/batching.h"
#include "peft/data/task.h"
#include "peft/error.h"
#include "peft/methods/param_count.h"
#include "peft/methods/spec.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "peft/train/adapted.h"
#include "peft/train/checkpoint.h"
#include "peft/train/diff_pruning.h"
#include "peft/train/progress.h"
#include "peft/train/trainer.h"

namespace fs = std::filesystem;

namespace peft::cli {

// Methods from --method, with --method-config either a whole spec ({"type": ...} / {"methods": [...]})
// or config keys for the single method named by --method.
std::vector<MethodSpecItem> method_items(const TrainArgs& a) {
  if (a.method_config.empty()) return parse_method_spec(a.method);
  std::ifstream in(a.method_config);
  if (!in) fail("--method-config {}: cannot open", a.method_config);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail("--method-config {}: invalid JSON ({})", a.method_config, e.what());
  }
  if (j.contains("type") || j.contains("methods")) return method_items_from_json(j);
  auto items = parse_method_spec(a.method);
  if (items.size() != 1) fail("--method-config {}: give {{\"methods\": [...]}} for several methods", a.method_config);
  items[0].config.update(j);
  return items;
}

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t comma; (comma = s.find(',', start)) != std::string::npos; start = comma + 1) out.push_back(s.substr(start, comma - start));
  if (!s.empty()) out.push_back(s.substr(start));
  return out;
}

}  // namespace

static std::string human_bytes(int64_t bytes) {
  if (bytes < (1 << 20)) return fmt::format("{:.1f} KB", double(bytes) / 1024.0);
  return fmt::format("{:.1f} MB", double(bytes) / double(1 << 20));
}

std::string ranks_note(const TrainArgs& a) {
  if (!a.options.parallel) return "";
  return fmt::format(" | {} ranks x batch {}", a.options.world_size(), a.options.batch_size);
}

void print_steps(const TrainArgs& a, const train::TrainResult& r) {
  std::cout << fmt::format("{} steps in {} ({:.3f} s/step){}\n", r.steps, train::format_duration(r.train_seconds),
                           r.seconds_per_step, r.resumed ? " (resumed)" : "");
  if (a.options.parallel)
    std::cout << fmt::format("{} ranks: {} of gradients all-reduced per step ({:.1f} ms per step)\n",
                             a.options.world_size(), human_bytes(r.bytes_all_reduced_per_step),
                             r.all_reduce_seconds_per_step * 1000);
}

train::RunLock prepare_run(const TrainArgs& a, const nlohmann::json& run_config) {
  train::RunLock lock;
  if (a.main_rank()) lock = train::prepare_run_dir(a.out, run_config, a.resume, a.overwrite);
  if (a.options.parallel) a.options.parallel->barrier();
  return lock;
}

// Step lines: a redrawn bar on a terminal, a plain line every `log_every` steps otherwise.
train::TrainCallbacks progress_callbacks(const TrainArgs& a) {
  const bool tty = ::isatty(STDERR_FILENO), shown = a.main_rank();
  const int64_t log_every = a.options.log_every;
  train::TrainCallbacks cb;
  cb.on_step = [tty, log_every, shown](const train::StepInfo& s) {
    if (!shown) return;
    if (tty) {
      std::cerr << "\r" << train::progress_bar(s) << "\033[K" << std::flush;
      if (s.step == s.total_steps) std::cerr << "\n";
    } else if (log_every > 0 && (s.step % log_every == 0 || s.step == s.total_steps)) {
      std::cerr << train::progress_text(s) << std::endl;
    }
  };
  if (shown)
    cb.on_eval = [tty](const nlohmann::json& line) {
      nlohmann::json brief = line;
      brief.erase("type");
      std::cerr << (tty ? "\r\033[K" : "") << "eval " << brief.dump() << std::endl;
    };
  // Crash drills for tests: SIGKILL this process at a step, or while a checkpoint is half written.
  auto kill_at = [&a](const char* name) -> int64_t {
    const char* v = std::getenv(name);
    const char* rank = std::getenv("PEFT_TEST_KILL_RANK");
    if (rank && std::atoi(rank) != a.options.rank()) return -1;
    return v ? std::atoll(v) : -1;
  };
  if (const int64_t step = kill_at("PEFT_TEST_KILL_AT_STEP"); step > 0) {
    auto print = cb.on_step;
    cb.on_step = [print, step](const train::StepInfo& s) {
      print(s);
      if (s.step == step) std::raise(SIGKILL);
    };
  }
  if (const int64_t step = kill_at("PEFT_TEST_KILL_IN_CHECKPOINT"); step > 0)
    cb.during_checkpoint = [step](int64_t s) {
      if (s == step) std::raise(SIGKILL);
    };
  return cb;
}

namespace {

void run_train(TrainArgs a) {
  if (a.out.empty()) fail("--out RUN_DIR is required");
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(a.dist_timeout_s * 1000));
  if (a.dist_timeout_s <= 0) fail("--dist-timeout {}: give a positive number of seconds", a.dist_timeout_s);
  const auto env = train::parallel_env();
  if (a.nproc > 1 && !env) {  // the launcher: this command again, as --nproc ranks
    launch_ranks(a.nproc, timeout);
    return;
  }
  a.options.device = parse_device(a.device);
  if (env) {
    a.options.parallel = std::make_shared<train::DataParallel>(*env, timeout);
    if (a.options.device.is_cuda() && !a.options.device.has_index())  // each rank its own GPU
      a.options.device = torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env->local_rank));
  }
  a.options.schedule = train::parse_schedule(a.schedule);
  for (const auto& g : a.lr_groups) a.options.lr_groups.push_back(train::parse_group_rule(g));
  if (a.bucket && a.options.bucket_window == 0) a.options.bucket_window = 50;
  if (is_lm_task(a.source.task) || is_decoder_model(a.model)) return run_train_lm(a);
  a.source.columns.labels = split_commas(a.labels);
  a.source.columns.regression = a.regression;
  a.source.columns.header = !a.no_header;

  // Data and task.
  data::Dataset train_set = data::load_split(a.source, "train");
  if (a.train_samples) train_set = data::sample(train_set, a.train_samples, a.options.seed);
  const data::TaskInfo task = data::task_info(a.source, train_set);
  std::optional<data::Dataset> dev_set;
  if (a.source.task != "custom" || !a.source.dev_file.empty()) {
    dev_set = data::load_split(a.source, "dev", task.labels);
    if (a.dev_samples) dev_set = data::sample(*dev_set, a.dev_samples, a.options.seed + 1);
  }
  const auto items = method_items(a);

  // The run folder: its run.json is what --resume must match.
  nlohmann::json methods = nlohmann::json::array();
  for (const auto& item : items) methods.push_back({{"type", item.type}, {"config", item.config}});
  const nlohmann::json run_config{
      {"model", a.model}, {"task", task.to_json()}, {"methods", methods}, {"max_seq_length", a.max_seq_len},
      {"data", {{"dir", a.source.data_dir}, {"train", a.source.train_file}, {"dev", a.source.dev_file},
                {"train_samples", a.train_samples}, {"dev_samples", a.dev_samples}}},
      {"train", a.options.to_json()}};
  const train::RunLock lock = prepare_run(a, run_config);

  // Model, methods, tokens.
  const fs::path model_dir = resolve_model_dir(a.model);
  auto tokenizer = tok::load_tokenizer(model_dir.string());
  torch::manual_seed(a.options.seed);  // new head and method tensors start the same every run
  LoadOptions load;
  load.num_labels = task.num_labels();
  load.problem_type = task.regression() ? ProblemType::Regression : ProblemType::SingleLabel;
  load.device = a.options.device;
  auto model = std::make_shared<AdaptedModel>(load_sequence_classifier(model_dir.string(), load));
  model->add(make_methods(items));
  const ParamReport params = count_parameters(*model);
  nlohmann::json task_json = task.to_json();
  task_json["base_model"] = a.model;
  task_json["max_seq_length"] = a.max_seq_len;
  train::TrainableModel trainable = train::trainable_adapted(model, a.model, task_json);

  const auto train_tokens = data::tokenize(train_set, *tokenizer, a.max_seq_len);
  std::optional<data::TokenizedDataset> dev_tokens;
  if (dev_set) dev_tokens = data::tokenize(*dev_set, *tokenizer, a.max_seq_len);
  if (a.main_rank())
    std::cerr << fmt::format("task {}: {} train / {} dev examples | model {} | methods {} | trainable {} ({:.3f}% of {}){}\n",
                           task.name, train_set.size(), dev_set ? dev_set->size() : 0, a.model, a.method,
                           params.trainable, params.percent_of_base(), params.base, ranks_note(a));

  train::TrainJob job{&trainable, &train_tokens, dev_tokens ? &*dev_tokens : nullptr, task.metrics, a.out, a.resume};
  const train::TrainResult r =
      train::find_diff_pruning(*model)  // two stages (L0 gates, then fixed mask): see peft/train/diff_pruning.h
          ? train::train_diff_pruning({model, a.model, task_json, job.train, job.dev, job.metrics, a.out, a.resume},
                                      a.options, progress_callbacks(a))
          : train::train(job, a.options, progress_callbacks(a));
  if (!a.main_rank()) return;
  print_steps(a, r);
  if (dev_tokens)
    std::cout << fmt::format("best dev {} = {:.4f} at step {}: {}\n", fmt::join(task.metrics, "/"), r.best_metric,
                             r.best_step, r.best_metrics.dump());
  std::cout << "task saved to " << r.task_dir << "\n";
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* cmd = app.add_subcommand("train", "Fine-tune a model with PEFT methods on a task");
  cmd->add_option("--model", a->model,
                  "model folder, .gguf file or installed model name (default all-MiniLM-L6-v2; decoders such as "
                  "SmolLM2-135M-Instruct train causal-LM tasks)");
  cmd->add_option("--task", a->source.task,
                  "GLUE task (sst2, cola, mrpc, rte, stsb, qnli, qqp, mnli, mnli-mm, wnli), custom, or for decoders "
                  "e2e, lm (prompt/completion JSONL), chat (messages JSONL)");
  cmd->add_option("--data", a->source.data_dir, "GLUE or E2E task folder (or the folder holding it)");
  cmd->add_option("--prompt-column", a->prompt_column, "--task lm: column of the prompt (default prompt)");
  cmd->add_option("--completion-column", a->completion_column, "--task lm: column of the completion (default completion)");
  cmd->add_option("--train", a->source.train_file, "training file (.tsv, .csv, .jsonl) for --task custom");
  cmd->add_option("--dev", a->source.dev_file, "evaluation file for --task custom");
  cmd->add_option("--text-column", a->source.columns.text, "column of the text (default text)");
  cmd->add_option("--text-pair-column", a->source.columns.text_pair, "column of the second text of pairs");
  cmd->add_option("--label-column", a->source.columns.label, "column of the label (default label)");
  cmd->add_option("--labels", a->labels, "label map, comma separated (default: the labels found, sorted)");
  cmd->add_flag("--regression", a->regression, "the label is a number to predict");
  cmd->add_flag("--no-header", a->no_header, "files have no header: columns are 0-based numbers");
  cmd->add_option("--method", a->method, "method spec, e.g. lora, lora:r=16, houlsby, mam, full, classifier_only");
  cmd->add_option("--method-config", a->method_config, "JSON file with the method's config");
  cmd->add_option("--epochs", a->options.epochs, "epochs (default 3)");
  cmd->add_option("--max-steps", a->options.max_steps, "stop after this many optimizer steps");
  cmd->add_option("--lr", a->options.lr, "peak learning rate (default 5e-4)");
  cmd->add_option("--lr-group", a->lr_groups, "PATTERN=LR: tensors whose name contains PATTERN use LR (repeatable)");
  cmd->add_option("--weight-decay", a->options.weight_decay, "AdamW weight decay (default 0.01; none on biases and LayerNorm)");
  cmd->add_option("--schedule", a->schedule, "linear | cosine | constant")->check(CLI::IsMember({"linear", "cosine", "constant"}));
  cmd->add_option("--warmup-ratio", a->options.warmup_ratio, "fraction of steps spent warming up");
  cmd->add_option("--warmup-steps", a->options.warmup_steps, "warmup steps (overrides --warmup-ratio)");
  cmd->add_option("--batch-size", a->options.batch_size, "examples per batch (default 32)");
  cmd->add_option("--grad-accum", a->options.grad_accum, "batches per optimizer step (default 1)");
  cmd->add_option("--max-grad-norm", a->options.max_grad_norm, "gradient clipping norm (0: off; default 1)");
  cmd->add_option("--max-seq-len", a->max_seq_len, "truncate inputs to this many tokens (default 128)");
  cmd->add_flag("--bucket", a->bucket, "group examples of similar length into batches (less padding)");
  cmd->add_option("--eval-every", a->options.eval_every, "evaluate every N steps (default: each epoch)");
  cmd->add_option("--checkpoint-every", a->options.checkpoint_every, "also checkpoint every N steps");
  cmd->add_option("--patience", a->options.patience, "stop after N evaluations without improvement");
  cmd->add_option("--train-samples", a->train_samples, "train on a random subset of N examples");
  cmd->add_option("--dev-samples", a->dev_samples, "evaluate on a random subset of N examples");
  cmd->add_option("--seed", a->options.seed, "random seed (default 42)");
  cmd->add_option("--log-every", a->options.log_every, "steps between log lines (default 10)");
  cmd->add_option("--device", a->device, "cpu | cuda | cuda:N");
  cmd->add_option("--out", a->out, "run folder (checkpoints, metrics.jsonl, task/)")->required();
  cmd->add_flag("--resume", a->resume, "continue the run in --out from its latest checkpoint");
  cmd->add_flag("--overwrite", a->overwrite, "replace an existing run folder");
  cmd->add_option("--nproc", a->nproc,
                  "data parallel: run N processes on this machine (each takes --batch-size rows per step; "
                  "torchrun's RANK/WORLD_SIZE/MASTER_ADDR/MASTER_PORT are honoured as well)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--dist-timeout", a->dist_timeout_s,
                  "data parallel: seconds to wait for the other ranks (rendezvous, each collective; default 300)");
  cmd->callback([a] { run_train(*a); });
}

}  // namespace peft::cli
