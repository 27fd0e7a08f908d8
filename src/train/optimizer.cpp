#include "peft/train/optimizer.h"

#include <map>
#include <tuple>

#include <ATen/ops/_fused_adamw.h>

#include "peft/error.h"

namespace peft::train {

GroupRule parse_group_rule(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0) fail("--lr-group '{}': expected PATTERN=LR", text);
  GroupRule rule;
  rule.pattern = text.substr(0, eq);
  try {
    size_t used = 0;
    rule.lr = std::stod(text.substr(eq + 1), &used);
    if (used != text.size() - eq - 1) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    fail("--lr-group '{}': '{}' is not a number", text, text.substr(eq + 1));
  }
  return rule;
}

bool exempt_from_decay(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with("bias") || name.find("LayerNorm") != std::string::npos ||
         name.find("layer_norm") != std::string::npos;
}

OptimizerSetup make_adamw(const std::vector<NamedTensor>& tensors, double lr, double weight_decay,
                          const std::vector<GroupRule>& rules) {
  if (tensors.empty()) fail("nothing to train: the model has no trainable tensors");
  // Groups keyed by (lr, decay), in order of first appearance so the layout is deterministic.
  std::vector<std::pair<double, double>> keys;
  std::vector<std::vector<torch::Tensor>> params;
  OptimizerSetup setup;
  for (const auto& t : tensors) {
    double group_lr = lr, decay = weight_decay;
    for (const auto& rule : rules) {
      if (t.name.find(rule.pattern) == std::string::npos) continue;
      group_lr = rule.lr;
      if (rule.weight_decay) decay = *rule.weight_decay;
      break;
    }
    if (exempt_from_decay(t.name)) decay = 0;
    auto it = std::find(keys.begin(), keys.end(), std::make_pair(group_lr, decay));
    size_t g = static_cast<size_t>(it - keys.begin());
    if (it == keys.end()) {
      keys.emplace_back(group_lr, decay);
      params.emplace_back();
      setup.names.emplace_back();
    }
    params[g].push_back(t.tensor);
    setup.names[g].push_back(t.name);
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (size_t g = 0; g < keys.size(); ++g) {
    auto options = std::make_unique<torch::optim::AdamWOptions>(keys[g].first);
    options->weight_decay(keys[g].second);
    groups.emplace_back(params[g], std::move(options));
    setup.base_lrs.push_back(keys[g].first);
  }
  setup.optimizer = std::make_unique<FusedAdamW>(groups, torch::optim::AdamWOptions(lr).weight_decay(weight_decay));
  return setup;
}

namespace {

bool fusable(const torch::Tensor& p) {
  const auto type = p.scalar_type();
  return (type == torch::kFloat || type == torch::kDouble || type == torch::kHalf || type == torch::kBFloat16) &&
         (p.device().is_cpu() || p.device().is_cuda()) && p.is_contiguous() && !p.grad().is_sparse();
}

}  // namespace

torch::Tensor FusedAdamW::step(LossClosure closure) {
  for (const auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    for (const auto& p : group.params())
      if (o.amsgrad() || (p.grad().defined() && !fusable(p))) return AdamW::step(std::move(closure));
  }
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  torch::NoGradGuard no_grad;
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    // One kernel call per (device, dtype): the kernel takes lists of like tensors.
    struct Lists {
      std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
    };
    std::map<std::tuple<int, int, int>, Lists> buckets;
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      auto& slot = state()[p.unsafeGetTensorImpl()];
      if (!slot) {
        auto fresh = std::make_unique<torch::optim::AdamWParamState>();
        fresh->step(0);
        fresh->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        fresh->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(fresh);
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*slot);
      s.step(s.step() + 1);
      auto& lists = buckets[{static_cast<int>(p.device().type()), p.device().index(), static_cast<int>(p.scalar_type())}];
      lists.params.push_back(p);
      lists.grads.push_back(p.grad().contiguous());
      lists.exp_avgs.push_back(s.exp_avg());
      lists.exp_avg_sqs.push_back(s.exp_avg_sq());
      // The kernel reads the step count after its increment (as torch.optim does before calling it).
      lists.steps.push_back(torch::full({}, static_cast<double>(s.step()), p.options().dtype(torch::kFloat)));
    }
    const auto [beta1, beta2] = o.betas();
    for (auto& [key, l] : buckets)
      at::_fused_adamw_(l.params, l.grads, l.exp_avgs, l.exp_avg_sqs, {}, l.steps, o.lr(), beta1, beta2,
                        o.weight_decay(), o.eps(), /*amsgrad=*/false, /*maximize=*/false);
  }
  return loss;
}

void set_lr(OptimizerSetup& setup, double factor) {
  auto& groups = setup.optimizer->param_groups();
  for (size_t g = 0; g < groups.size(); ++g)
    static_cast<torch::optim::AdamWOptions&>(groups[g].options()).lr(setup.base_lrs[g] * factor);
}

}  // namespace peft::train
