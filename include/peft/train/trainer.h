#pragma once
// The training loop: AdamW with parameter groups, warmup + linear/cosine schedule, gradient
// accumulation and clipping, evaluation every N steps or each epoch, best task by the task's
// metric, early stopping, resumable checkpoints (see checkpoint.h) and a JSONL metrics log.
// Same seed -> same result on CPU, whether or not the run was interrupted and resumed.
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/data/batching.h"
#include "peft/train/data_parallel.h"
#include "peft/train/model.h"
#include "peft/train/optimizer.h"
#include "peft/train/schedule.h"

namespace peft::train {

struct TrainOptions {
  int64_t epochs = 3;
  int64_t max_steps = 0;  // optimizer steps; 0: as many as `epochs` take
  size_t batch_size = 32;
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  double lr = 5e-4;
  double weight_decay = 0.01;
  std::vector<GroupRule> lr_groups;
  Schedule schedule = Schedule::Linear;
  double warmup_ratio = 0.0;  // of the total steps, unless warmup_steps > 0
  int64_t warmup_steps = 0;
  double max_grad_norm = 1.0;     // 0: no clipping
  int64_t eval_every = 0;         // optimizer steps between evaluations; 0: at the end of each epoch
  int64_t checkpoint_every = 0;   // extra checkpoints between evaluations; 0: at evaluations only
  int64_t patience = 0;           // stop after this many evaluations without improvement; 0: never
  int64_t log_every = 10;         // optimizer steps between log lines
  size_t eval_batch_size = 64;
  size_t bucket_window = 0;       // length bucketing window in batches (0: off)
  uint64_t seed = 42;
  torch::Device device = torch::kCPU;
  // Data parallel (see data_parallel.h): each optimizer step takes a batch of batch_size rows on every
  // rank (batch_size x world_size in all), gradients summed across ranks. Only rank 0 writes files.
  std::shared_ptr<DataParallel> parallel;

  nlohmann::json to_json() const;  // everything that changes the result (for run.json), world size included
  int world_size() const { return parallel ? parallel->world_size() : 1; }
  int rank() const { return parallel ? parallel->rank() : 0; }
};

// What the loop reports as it goes (library code never prints).
struct StepInfo {
  int64_t step = 0, total_steps = 0, epoch = 0;
  double loss = 0, lr = 0;
  double elapsed_s = 0;  // since this process started training
  int64_t steps_done_here = 0;  // steps taken by this process (for it/s after a resume)
};

struct TrainCallbacks {
  std::function<void(const StepInfo&)> on_step;
  std::function<void(const nlohmann::json&)> on_eval;  // the eval line of metrics.jsonl
  // Test hooks: called after each checkpoint is complete, and while one is being written (its
  // files are on disk but it is not yet the latest), with its step.
  std::function<void(int64_t)> after_checkpoint;
  std::function<void(int64_t)> during_checkpoint;
};

struct TrainResult {
  int64_t steps = 0;
  double best_metric = 0;
  int64_t best_step = -1;
  nlohmann::json best_metrics;  // the dev metrics of the best evaluation (empty without dev data)
  bool stopped_early = false;
  bool resumed = false;
  double train_seconds = 0;
  double seconds_per_step = 0;
  int64_t bytes_all_reduced_per_step = 0;  // data parallel: gradient payload summed across ranks per step
  double all_reduce_seconds_per_step = 0;  // data parallel: time this rank spent summing gradients, per step
  std::string task_dir;  // where the task (best, or final without dev data) was saved
};

struct TrainJob {
  TrainableModel* model = nullptr;
  const data::TokenizedDataset* train = nullptr;
  const data::TokenizedDataset* dev = nullptr;  // may be null: no evaluation, final task kept
  std::vector<std::string> metrics;             // the task's official metrics
  std::string run_dir;
  bool resume = false;  // continue from run_dir's latest checkpoint (prepare_run_dir checked it)
};

// Runs training. Throws peft::Error when the loss becomes NaN/inf (the last checkpoint is kept).
TrainResult train(const TrainJob& job, const TrainOptions& options, const TrainCallbacks& callbacks = {});

}  // namespace peft::train
