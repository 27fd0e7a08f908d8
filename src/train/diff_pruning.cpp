#include "peft/train/diff_pruning.h"

#include <filesystem>

#include "peft/error.h"
#include "peft/io/atomic_file.h"
#include "peft/methods/adapter_io.h"
#include "peft/train/adapted.h"
#include "peft/train/checkpoint.h"

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
  const double lambda = c.l0_lambda;
  t1.loss = [model, method, lambda](const ModelInput& in, const torch::Tensor& labels) {
    torch::Tensor logits = model->forward(in);
    return model->head().loss(logits, labels) + lambda * method->penalty();
  };
  t1.log_values = [method, numel] {
    const double l0 = method->penalty().item<double>();
    return nlohmann::json{{"expected_l0", l0}, {"density", l0 / numel}};
  };
  const fs::path l0_dir = run_dir / "l0";
  fs::create_directories(l0_dir);
  TrainJob j1{&t1, job.train, job.dev, job.metrics, l0_dir.string(), job.resume};
  TrainResult r1 = train(j1, o1, cb);

  // ---- projection to the exact target ----
  const ProjectionReport report = method->project();
  model->refreeze();
  const bool main_rank = options.rank() == 0;  // the only rank that writes files
  if (main_rank) io::write_file_atomically((run_dir / "projection.json").string(), report.to_json().dump(2) + "\n");

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
  TrainableModel t2 = trainable_adapted(model, job.base_model, job.task_json);
  t2.save_task = save;
  t2.log_values = [nnz = report.nnz] { return nlohmann::json{{"nnz", nnz}}; };
  TrainJob j2{&t2, job.train, job.dev, job.metrics, job.run_dir, job.resume};
  return train(j2, o2, cb);
}

}  // namespace peft::train
