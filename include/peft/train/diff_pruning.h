#pragma once
// Diff-pruning training (methods/diff_pruning.h) in stages, in one run folder:
//   RUN_DIR/l0/               stage 1, gates + task loss + l0_lambda * expected L0: its own checkpoints
//                             and metrics.jsonl, whose train lines carry "expected_l0" and "density"
//                             (the sparsity curve)
//   RUN_DIR/projection.json   the projection to the exact target sparsity (target, nnz, threshold, ties)
//   RUN_DIR/                  stage 2, fixed mask: checkpoints, metrics.jsonl (train lines carry "nnz")
//   RUN_DIR/task/             the best task: adapter_config.json, diff.peftdiff (sparse_diff.h), task.json
// Resuming works stage by stage: a finished stage 1 is restored from its last checkpoint and
// projected again (the projection is deterministic).
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/methods/adapted_model.h"
#include "peft/methods/diff_pruning.h"
#include "peft/train/trainer.h"

namespace peft::train {

struct DiffPruningJob {
  std::shared_ptr<AdaptedModel> model;   // with the diff-pruning method attached
  std::string base_model;                // name or folder, recorded in the task files
  nlohmann::json task_json;              // task.json content
  const data::TokenizedDataset* train = nullptr;
  const data::TokenizedDataset* dev = nullptr;
  std::vector<std::string> metrics;
  std::string run_dir;
  bool resume = false;
};

// The diff-pruning method attached to `model`, or null.
std::shared_ptr<DiffPruning> find_diff_pruning(const AdaptedModel& model);

// Both stages; `options` are the run's (stage epochs come from the method's l0_epochs / mask_epochs,
// the gates get their own learning rate gate_lr). The result is stage 2's (stage 1's with mask_epochs 0).
TrainResult train_diff_pruning(const DiffPruningJob& job, const TrainOptions& options, const TrainCallbacks& callbacks = {});

// Writes a diff-pruning task folder (after projection).
void save_diff_task(AdaptedModel& model, DiffPruning& method, const std::string& dir, const std::string& base_model,
                    const nlohmann::json& task_json);

}  // namespace peft::train
