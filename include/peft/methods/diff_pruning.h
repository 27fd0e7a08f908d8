#pragma once
// Diff pruning (Guo, Rush & Kim, ACL 2021): the task model is theta + delta with the base theta
// frozen and delta = z * w sparse. z is a hard-concrete gate per entry (hard_concrete.h), times a
// gate per group in the structured variant (group = one tensor, or one row). Training has two
// stages (see train/diff_pruning.h): (1) w and the gates' log alpha train with task loss +
// l0_lambda * expected L0; (2) project() keeps the target_sparsity fraction of entries of largest
// |delta| (exactly, globally) and only those train on, with the mask fixed. The task is stored as a
// sparse file (sparse_diff.h) plus the dense head.
//
// Mechanism: the pruned parameters stay registered, untouched, as the model's base; before each
// forward (Method::before_forward) the module members that forward() reads (a linear site's,
// embedding's or LayerNorm's weight/bias) point at theta + z * w, computed in one fused pass per tensor.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "peft/methods/hard_concrete.h"
#include "peft/methods/method.h"
#include "peft/methods/sparse_diff.h"
#include "peft/methods/sparsity_controller.h"

namespace peft {

struct DiffPruningConfig {
  std::string target_parameters;   // regex over HF parameter names; "" = every base parameter but the head
  double target_sparsity = 0.005;  // fraction of the pruned entries kept by the projection, in (0, 1]
  bool structured = false;
  std::string group = "tensor";    // structured groups: "tensor" or "row" (dim 0 of each tensor)
  // "target": a Lagrange multiplier on the expected L0, steered so that the share of open gates follows
  // a schedule down to target_sparsity (sparsity_controller.h); "fixed": the authors' constant l0_lambda.
  std::string sparsity_control = "target";
  double l0_lambda = 1.25e-7;      // weight of the expected L0 (per entry); the multiplier's start with "target"
  double ramp_start = 0.1, ramp_end = 0.6;  // "target": the density target falls between these fractions of stage 1
  double controller_rate = 0.1;    // "target": largest change of log lambda per step
  double gate_lr = 0.1;            // learning rate of log alpha (AdamW, no weight decay)
  double init_log_alpha = 5.0;     // gates start open
  double beta = 1.0, gate_l = -1.5, gate_r = 1.5;
  int64_t l0_epochs = 0;           // stage 1 epochs; 0: --epochs
  int64_t mask_epochs = 1;         // stage 2 (fixed mask) epochs; 0: skip
  double mask_lr = 2e-3;           // stage 2 learning rate of the kept entries and the head; 0: --lr
  std::string value_dtype = "F32"; // values in the task file: F32, F16 or BF16

  HardConcrete gate() const { return {beta, gate_l, gate_r}; }
  SparsityControllerConfig controller() const {
    return {target_sparsity, l0_lambda, ramp_start, ramp_end, controller_rate};
  }
  void validate() const;
  static DiffPruningConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

struct ProjectionReport {
  int64_t numel = 0;      // pruned entries
  int64_t target = 0;     // round(target_sparsity * numel), at least 1
  int64_t nnz = 0;        // entries kept (== target)
  double threshold = 0;   // |delta| of the smallest kept entry
  int64_t ties_kept = 0;  // entries equal to the threshold kept (lowest tensor order / index first)
  nlohmann::json to_json() const;
};

class DiffPruning : public Method {
 public:
  enum class Stage { Gates, Mask };

  explicit DiffPruning(DiffPruningConfig config);
  std::string type() const override { return "diff_pruning"; }
  nlohmann::json config() const override;
  void attach(Model& model) override;
  void detach(Model& model) override;
  std::vector<MethodTensor> tensors() override;
  void before_forward(Model& model) override;

  const DiffPruningConfig& settings() const { return config_; }
  Stage stage() const { return stage_; }
  // Stage 1: the expected L0 of the last training forward (a graph-connected scalar) and its
  // weighted form for the loss; the expected L0 of the current gates (no graph) for logs.
  torch::Tensor penalty() const;
  double expected_l0();
  int64_t pruned_numel() const;
  // Entries whose deterministic gate is non-zero (what the projection can keep without loss).
  int64_t open_gates();

  // delta = z_eval * w (stage 1) or mask * w (stage 2), per pruned tensor.
  std::vector<torch::Tensor> deltas();
  // Ends stage 1: keeps exactly round(target_sparsity * numel) entries; w becomes delta on them, 0 elsewhere.
  ProjectionReport project(double target_sparsity);
  ProjectionReport project() { return project(config_.target_sparsity); }
  // The task as a sparse diff (after project()): base checksum, indices, values, the head.
  SparseDiff sparse_diff(Model& model, const std::string& base_model);

 private:
  struct Pruned {
    std::string name;       // HF parameter name
    torch::Tensor base;     // the registered parameter (frozen, never written)
    torch::Tensor* slot;    // the member forward() reads
    torch::Tensor w, log_alpha, group_log_alpha, mask;
    std::vector<int64_t> group_shape;
  };
  void restore_slots();
  torch::Tensor gate_eval(const Pruned& e) const;
  torch::Tensor gate_l0(const Pruned& e) const;

  DiffPruningConfig config_;
  HardConcrete gate_;
  Stage stage_ = Stage::Gates;
  std::vector<Pruned> pruned_;
  torch::Tensor penalty_;
  std::optional<uint64_t> base_checksum_;
};

std::shared_ptr<DiffPruning> make_diff_pruning(const DiffPruningConfig& config);

}  // namespace peft
