#pragma once
// Bridges between methods (AdaptedModel) and the trainer, and task folders on disk:
//   TASK_DIR/adapter_config.json + adapter_model.safetensors  (PEFT's format, see methods/adapter_io.h)
//   TASK_DIR/task.json                                         label map, metrics, base model, max length
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "peft/data/task.h"
#include "peft/methods/adapted_model.h"
#include "peft/tokenize/tokenizer.h"
#include "peft/train/model.h"

namespace peft::train {

// Trains the adapted model's trainable tensors (names = their adapter-file keys); save_task writes
// the adapter folder plus task.json (`task_json`).
TrainableModel trainable_adapted(std::shared_ptr<AdaptedModel> model, const std::string& base_model,
                                 const nlohmann::json& task_json);

// A trained task, ready for evaluation or prediction.
struct LoadedTask {
  std::shared_ptr<AdaptedModel> model;
  std::unique_ptr<tok::Tokenizer> tokenizer;
  std::string chat_template;  // the base model's, for chat-formatted causal-LM tasks
  data::TaskInfo task;
  size_t max_seq_length = 128;
  std::string base_model;
  TrainableModel trainable;  // forward/eval view used by evaluate()
};

// Loads TASK_DIR (or RUN_DIR/task when given a run folder). `base_model` overrides task.json's.
LoadedTask load_task(const std::string& dir, const std::string& base_model = "", torch::Device device = torch::kCPU);

}  // namespace peft::train
