// The library in one screen: load all-MiniLM-L6-v2, attach LoRA, train on the demo reviews, save
// the task, predict. Run from the repository root: build/example_train_lora [examples/demo]
#include <iostream>

#include "peft/data/batching.h"
#include "peft/data/task.h"
#include "peft/methods/spec.h"
#include "peft/models/checkpoint.h"
#include "peft/models/load.h"
#include "peft/train/adapted.h"
#include "peft/train/checkpoint.h"
#include "peft/train/evaluate.h"
#include "peft/train/trainer.h"

int main(int argc, char** argv) try {
  const std::string demo = argc > 1 ? argv[1] : "examples/demo";
  // 1. Data: the user's TSV files with a "sentence" and a "label" column.
  peft::data::DataSource source{"custom", "", demo + "/train.tsv", demo + "/dev.tsv", "", {"sentence"}};
  auto train_set = peft::data::load_split(source, "train");
  auto task = peft::data::task_info(source, train_set);
  auto dev_set = peft::data::load_split(source, "dev", task.labels);

  // 2. Model + method: a fresh 2-label head on the frozen encoder, LoRA (r=8) on query/value.
  const auto model_dir = peft::resolve_model_dir("all-MiniLM-L6-v2").string();
  auto tokenizer = peft::tok::load_tokenizer(model_dir);
  peft::LoadOptions load;
  load.num_labels = task.num_labels();
  auto model = std::make_shared<peft::AdaptedModel>(peft::load_sequence_classifier(model_dir, load));
  model->add(peft::make_methods(peft::parse_method_spec("lora:r=8")));

  // 3. Train a few steps; the task (adapter folder + task.json) lands in runs/example/task.
  nlohmann::json task_json = task.to_json();
  task_json["base_model"] = "all-MiniLM-L6-v2";
  auto trainable = peft::train::trainable_adapted(model, "all-MiniLM-L6-v2", task_json);
  auto train_tokens = peft::data::tokenize(train_set, *tokenizer, 64);
  auto dev_tokens = peft::data::tokenize(dev_set, *tokenizer, 64);
  peft::train::TrainOptions options;
  options.max_steps = 40;
  options.eval_every = 20;
  options.batch_size = 16;
  options.lr = 2e-3;
  peft::train::prepare_run_dir("runs/example", options.to_json(), /*resume=*/false, /*overwrite=*/true);
  auto result = peft::train::train({&trainable, &train_tokens, &dev_tokens, task.metrics, "runs/example"}, options);
  std::cout << "dev " << result.best_metrics.dump() << "\ntask saved to " << result.task_dir << "\n";

  // 4. Predict with the saved task, as another program would.
  auto loaded = peft::train::load_task(result.task_dir);
  peft::data::Dataset input;
  input.examples.push_back({"The soup was wonderful.", std::nullopt, std::nullopt, 1});
  auto out = peft::train::evaluate(loaded.trainable, peft::data::tokenize(input, *loaded.tokenizer, 64), {});
  std::cout << "\"The soup was wonderful.\" -> " << task.labels[static_cast<size_t>(out.predicted[0])] << "\n";
} catch (const std::exception& e) {
  std::cerr << "error: " << e.what() << "\n";
  return 1;
}
