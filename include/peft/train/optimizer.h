#pragma once
// AdamW over the trainable tensors, in parameter groups: decoupled weight decay except on biases and
// LayerNorm weights, and per-group learning rates chosen by name patterns (e.g. a higher rate for
// diff pruning's gates or the classifier head).
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/optim/adamw.h>

namespace peft::train {

struct NamedTensor {
  std::string name;
  torch::Tensor tensor;
};

// Tensors whose name contains `pattern` train with `lr` (and `weight_decay` when given). The first
// matching rule wins.
struct GroupRule {
  std::string pattern;
  double lr = 0;
  std::optional<double> weight_decay;
};

// Parses "PATTERN=LR" (e.g. "classifier=1e-3").
GroupRule parse_group_rule(const std::string& text);

// Whether a tensor is exempt from weight decay: biases and LayerNorm weights (BERT's convention).
bool exempt_from_decay(const std::string& name);

// LibTorch's AdamW with the update done by ATen's fused kernel (`_fused_adamw_`, CPU and CUDA): one
// vectorised pass per tensor instead of a chain of element-wise ops with temporaries. Same formula,
// state and checkpoint format as torch::optim::AdamW (the state is its AdamWParamState); amsgrad
// groups and unsupported dtypes fall back to the parent's step.
class FusedAdamW : public torch::optim::AdamW {
 public:
  using torch::optim::AdamW::AdamW;
  torch::Tensor step(LossClosure closure = nullptr) override;
};

struct OptimizerSetup {
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<double> base_lrs;                 // per param group, before the schedule
  std::vector<std::vector<std::string>> names;  // tensor names per group (for logs and tests)
};

OptimizerSetup make_adamw(const std::vector<NamedTensor>& tensors, double lr, double weight_decay,
                          const std::vector<GroupRule>& rules = {});

// Sets every group's rate to base_lrs[i] * factor.
void set_lr(OptimizerSetup& setup, double factor);

}  // namespace peft::train
