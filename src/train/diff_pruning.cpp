#include "peft/train/diff_pruning.h"

#include <filesystem>

#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/methods/adapter_io.h"
#include "peft/methods/sparsity_controller.h"
#include "peft/train/adapted.h"
#include "peft/train/checkpoint.h"
#include "peft/train/evaluate.h"

namespace fs = std::filesystem;

namespace peft::train {

std::shared_ptr<DiffPruning> find_diff_pruning(const AdaptedModel& model) {
  for (const auto& m : model.methods())
    if (auto d = std::dynamic_pointer_cast<DiffPruning>(m)) return d;
  return nullptr;
}

void save_diff_task(AdaptedModel& model, DiffPruning& method, const std::string& dir, const std::string& base_model,
                    const nlohmann::json& task_json) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail("{}: cannot create folder: {}", dir, ec.message());
  write_sparse_diff((fs::path(dir) / kDiffFileName).string(), method.sparse_diff(*model.model(), base_model));
  io::write_file_atomically((fs::path(dir) / "adapter_config.json").string(),
                            adapter_config(model, base_model).dump(2) + "\n");
  io::write_file_atomically((fs::path(dir) / "task.json").string(), task_json.dump(2) + "\n");
}

TrainResult train_diff_pruning(const DiffPruningJob& job, const TrainOptions& options, const TrainCallbacks& cb) {
  auto method = job.model ? find_diff_pruning(*job.model) : nullptr;
  if (!method) fail("train_diff_pruning: the model has no diff_pruning method attached");
  if (job.model->methods().size() != 1) fail("diff_pruning: combine it with no other method");
  const DiffPruningConfig& c = method->settings();
  auto model = job.model;
  const fs::path run_dir = job.run_dir;
  const auto numel = double(method->pruned_numel());

  // ---- stage 1: gates, task loss + lambda * expected L0 ----
  TrainOptions o1 = options;
  if (c.l0_epochs > 0) o1.epochs = c.l0_epochs;
  o1.lr_groups.insert(o1.lr_groups.begin(), GroupRule{"log_alpha", c.gate_lr, 0.0});
  TrainableModel t1 = trainable_adapted(model, job.base_model, job.task_json);
  t1.save_task = {};  // the task is the projected diff, saved in stage 2
  // lambda: the authors' constant, or a multiplier steered to the density target (checkpointed with
  // the trained tensors so that a resumed run continues with the same value).
  std::shared_ptr<SparsityController> controller;
  if (c.sparsity_control == "target") {
    controller = std::make_shared<SparsityController>(c.controller());
    t1.tensors.push_back({"diff_pruning.l0_log_lambda", controller->state()});
    t1.after_step = [method, controller, numel](int64_t step, int64_t total) {
      controller->update(double(method->open_gates()) / numel, step, total);  // the same on every rank
    };
  }
  auto lambda = [controller, fixed = c.l0_lambda] { return controller ? controller->lambda() : fixed; };
  // The penalty enters as (L0 - L0.detach()): its gradient is lambda * dL0, its value 0, so the logged
  // loss is the task's and the penalty has fields of its own.
  t1.loss = [model, method, lambda](const ModelInput& in, const torch::Tensor& labels) {
    torch::Tensor logits = model->forward(in);
    const torch::Tensor l0 = method->penalty();
    return model->head().loss(logits, labels) + lambda() * (l0 - l0.detach());
  };
  t1.log_values = [method, numel, lambda, controller](int64_t step, int64_t total) {
    const double l0 = method->penalty().item<double>();
    nlohmann::json line{{"expected_l0", l0}, {"density", l0 / numel}, {"open_gates", method->open_gates()},
                        {"l0_lambda", lambda()}};
    if (controller) line["target_density"] = controller->target(step, total);
    return line;
  };
  const fs::path l0_dir = run_dir / "l0";
  fs::create_directories(l0_dir);
  TrainJob j1{&t1, job.train, job.dev, job.metrics, l0_dir.string(), job.resume};
  TrainResult r1 = train(j1, o1, cb);

  // ---- projection to the exact target, with the dev metrics it costs ----
  const bool main_rank = options.rank() == 0;  // the only rank that writes files
  auto dev_metrics = [&](TrainableModel& t) {
    if (!job.dev) return nlohmann::json();
    return evaluate(t, *job.dev, job.metrics, options.eval_batch_size, options.device, options.parallel.get()).metrics;
  };
  const nlohmann::json before = dev_metrics(t1);
  const int64_t open_before = method->open_gates();
  const double density_before = method->expected_l0() / numel;
  const ProjectionReport report = method->project();
  model->refreeze();
  TrainableModel t2 = trainable_adapted(model, job.base_model, job.task_json);
  nlohmann::json projection = report.to_json();
  projection["open_gates_before"] = open_before;
  projection["density_before"] = density_before;
  if (job.dev) projection["dev_before"] = before, projection["dev_after"] = dev_metrics(t2);
  if (main_rank) io::write_file_atomically((run_dir / "projection.json").string(), projection.dump(2) + "\n");

  auto save = [model, method, base = job.base_model, task = job.task_json](const std::string& dir) {
    save_diff_task(*model, *method, dir, base, task);
  };
  if (c.mask_epochs == 0) {
    if (main_rank) replace_folder((run_dir / "task").string(), save);
    r1.task_dir = (run_dir / "task").string();
    return r1;
  }

  // ---- stage 2: the kept entries only, mask fixed, no L0 term ----
  TrainOptions o2 = options;
  o2.epochs = c.mask_epochs;
  o2.max_steps = 0;
  if (c.mask_lr > 0) o2.lr = c.mask_lr;
  t2.save_task = save;
  t2.log_values = [nnz = report.nnz](int64_t, int64_t) { return nlohmann::json{{"nnz", nnz}}; };
  TrainJob j2{&t2, job.train, job.dev, job.metrics, job.run_dir, job.resume};
  return train(j2, o2, cb);
}

}  // namespace peft::train
