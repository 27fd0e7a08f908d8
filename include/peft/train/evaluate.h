#pragma once
// Running a model over a data set: logits for every example (in data set order), predictions,
// probabilities, and the task's metrics when the data has labels.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/data/batching.h"
#include "peft/train/data_parallel.h"
#include "peft/train/model.h"

namespace peft::train {

struct EvalResult {
  torch::Tensor logits;          // (examples, num_labels), CPU float
  std::vector<double> predicted; // class id or score per example
  nlohmann::json metrics;        // {"loss": ..., metric: ...}; only "examples" when unlabelled
};

// Batches are sorted by length (little padding); dropout is off and no gradients are kept. Causal-LM
// data (token_labels) gives {"loss", "perplexity", "tokens", "examples"}: the mean loss over every
// labelled token of the set, and no logits (a vocabulary per token would not fit).
// With `parallel`, each rank runs every world_size-th batch and the logits and losses are summed
// across ranks, so that every rank returns the whole set's result.
EvalResult evaluate(TrainableModel& model, const data::TokenizedDataset& data, const std::vector<std::string>& metrics,
                    size_t batch_size = 64, torch::Device device = torch::kCPU, DataParallel* parallel = nullptr);

}  // namespace peft::train
