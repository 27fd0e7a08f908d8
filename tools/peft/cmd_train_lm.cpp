// peft train on a decoder: causal-LM fine-tuning on E2E (MR -> text), prompt/completion JSONL or chat JSONL,
// loss on the completion tokens only, any method; the task is saved as a PEFT CAUSAL_LM adapter + task.json.
#include <iostream>

#include <nlohmann/json.hpp>

#include "lm_task_data.h"
#include "peft/data/lm_data.h"
#include "peft/error.h"
#include "peft/methods/param_count.h"
#include "peft/models/decoder.h"
#include "peft/models/load.h"
#include "peft/models/model_tokenizer.h"
#include "peft/train/adapted.h"
#include "peft/train/checkpoint.h"
#include "peft/train/diff_pruning.h"
#include "peft/train/progress.h"
#include "train_common.h"

namespace peft::cli {

void run_train_lm(const TrainArgs& a) {
  if (!is_lm_task(a.source.task))
    fail("--task {}: {} is a decoder; train it on --task e2e, lm (prompt/completion JSONL) or chat (messages JSONL)",
         a.source.task, a.model);
  if (!is_decoder_model(a.model))
    fail("--task {} needs a decoder (GPT-2, LLaMA, a GGUF file such as SmolLM2-135M-Instruct); {} is an encoder",
         a.source.task, a.model);
  const ModelTokenizer mt = load_model_tokenizer(a.model);
  LmTaskSource source{a.source.task, a.source.data_dir, a.source.train_file, a.source.dev_file, a.prompt_column,
                      a.completion_column};
  data::LmDataset train_set = load_lm_split(source, "train", *mt.tokenizer, mt.chat_template, a.model);
  if (a.train_samples) train_set = data::sample(train_set, a.train_samples, a.options.seed);
  std::optional<data::LmDataset> dev_set;
  if (source.task == "e2e" || !source.dev_file.empty()) {
    dev_set = load_lm_split(source, "dev", *mt.tokenizer, mt.chat_template, a.model);
    if (a.dev_samples) dev_set = data::sample(*dev_set, a.dev_samples, a.options.seed + 1);
  }
  data::TaskInfo task;
  task.name = a.source.task;
  task.causal_lm = true;
  task.data_format = a.source.task;
  task.metrics = {"loss"};
  const auto items = method_items(a);

  nlohmann::json methods = nlohmann::json::array();
  for (const auto& item : items) methods.push_back({{"type", item.type}, {"config", item.config}});
  const nlohmann::json run_config{
      {"model", a.model}, {"task", task.to_json()}, {"methods", methods}, {"max_seq_length", a.max_seq_len},
      {"data", {{"dir", a.source.data_dir}, {"train", a.source.train_file}, {"dev", a.source.dev_file},
                {"prompt_column", a.prompt_column}, {"completion_column", a.completion_column},
                {"train_samples", a.train_samples}, {"dev_samples", a.dev_samples}}},
      {"train", a.options.to_json()}};
  const train::RunLock lock = prepare_run(a, run_config);

  torch::manual_seed(a.options.seed);
  LoadOptions load;
  load.device = a.options.device;
  auto lm = load_causal_lm(a.model, load);
  check_tokenizer_fits(mt, lm->arch().vocab_size);
  auto model = std::make_shared<AdaptedModel>(std::static_pointer_cast<Model>(lm));
  model->add(make_methods(items));
  const ParamReport params = count_parameters(*model);
  nlohmann::json task_json = task.to_json();
  task_json["base_model"] = a.model;
  task_json["max_seq_length"] = a.max_seq_len;
  train::TrainableModel trainable = train::trainable_adapted(model, a.model, task_json);

  const data::LmTokenizeOptions tokenize = lm_tokenize_options(a.max_seq_len, *mt.tokenizer, source.task);
  const auto train_tokens = data::tokenize_lm(train_set, *mt.tokenizer, tokenize);
  std::optional<data::TokenizedDataset> dev_tokens;
  if (dev_set) dev_tokens = data::tokenize_lm(*dev_set, *mt.tokenizer, tokenize);
  if (a.main_rank())
    std::cerr << fmt::format("task {}: {} train / {} dev examples | model {} | methods {} | trainable {} ({:.3f}% of {}){}\n",
                             task.name, train_set.size(), dev_set ? dev_set->size() : 0, a.model, a.method,
                             params.trainable, params.percent_of_base(), params.base, ranks_note(a));

  train::TrainJob job{&trainable, &train_tokens, dev_tokens ? &*dev_tokens : nullptr, task.metrics, a.out, a.resume};
  const train::TrainResult r =
      train::find_diff_pruning(*model)
          ? train::train_diff_pruning({model, a.model, task_json, job.train, job.dev, job.metrics, a.out, a.resume},
                                      a.options, progress_callbacks(a))
          : train::train(job, a.options, progress_callbacks(a));
  if (!a.main_rank()) return;
  print_steps(a, r);
  if (dev_tokens) std::cout << fmt::format("best dev loss at step {}: {}\n", r.best_step, r.best_metrics.dump());
  std::cout << "task saved to " << r.task_dir << "\n";
}

}  // namespace peft::cli
