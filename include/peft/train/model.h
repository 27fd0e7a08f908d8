#pragma once
// What the trainer needs from a model: forward, train/eval mode, the named tensors to train, and
// how to save the task (for an AdaptedModel: its adapter folder). Keeping this a small struct of
// functions lets the trainer work with any model/method combination without knowing about them.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/models/encoder.h"
#include "peft/models/model.h"
#include "peft/train/optimizer.h"

namespace peft::train {

struct TrainableModel {
  std::function<torch::Tensor(const ModelInput&)> forward;  // logits (batch, num_labels)
  std::function<void(bool)> set_training;                     // dropout on/off
  std::vector<NamedTensor> tensors;                           // trained, checkpointed (unique names)
  std::function<void(const std::string& dir)> save_task;      // writes the task folder; may be empty
  HeadSpec head;                                               // the task loss, and regression or not
  // Training loss of one micro-batch; empty: the task loss of forward() (cross-entropy or MSE).
  // Methods with a loss of their own set it (diff pruning adds its L0 penalty, AdaMix its
  // consistency term between two routes).
  std::function<torch::Tensor(const ModelInput&, const torch::Tensor& labels)> loss;
  // Called after each optimizer step with the steps taken so far and the run's total (diff pruning's
  // density controller steps here).
  std::function<void(int64_t step, int64_t total_steps)> after_step;
  // Extra fields for the train lines of metrics.jsonl (diff pruning's expected L0), at `step` of `total_steps`.
  std::function<nlohmann::json(int64_t step, int64_t total_steps)> log_values;
};

// A plain model where the tensors whose names start with one of `prefixes` train
// (e.g. {"classifier."} for the head only, {""} for full fine-tuning). Others are frozen.
TrainableModel trainable_base_model(std::shared_ptr<Model> model, const std::vector<std::string>& prefixes);

}  // namespace peft::train
