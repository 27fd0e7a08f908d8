#include "peft/methods/model_params.h"

#include <unordered_set>

namespace peft {

namespace {

// Pre-order over the modules, as named_parameters() walks them, without entering sites' children
// (every child of a site is a method): the cost does not grow with the tasks attached.
void collect_base(const torch::nn::Module& module, const std::string& prefix,
                  std::vector<std::pair<std::string, torch::Tensor>>& out) {
  for (auto& p : module.named_parameters(/*recurse=*/false)) out.emplace_back(prefix + p.key(), p.value());
  if (dynamic_cast<const LinearSite*>(&module) || dynamic_cast<const SublayerSite*>(&module) ||
      dynamic_cast<const AttentionKVSite*>(&module))
    return;
  for (auto& child : module.named_children()) collect_base(*child.value(), prefix + child.key() + ".", out);
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> base_named_parameters(Model& model) {
  // The prompt encoder of prefix tuning hangs off the model itself: only the base children count.
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : model.named_parameters(/*recurse=*/false)) out.emplace_back(p.key(), p.value());
  const auto base = model.base_children();
  for (auto& item : model.named_children())
    if (std::find(base.begin(), base.end(), item.key()) != base.end()) collect_base(*item.value(), item.key() + ".", out);
  return out;
}

bool is_head_parameter(const Model& model, const std::string& name) {
  for (auto& prefix : model.head_parameter_prefixes())
    if (name.rfind(prefix, 0) == 0) return true;
  return false;
}

int64_t base_parameter_count(Model& model) {
  int64_t n = 0;
  for (auto& [name, p] : base_named_parameters(model)) n += p.numel();
  return n;
}

void set_trainable(Model& model, const std::vector<torch::Tensor>& trainable) {
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  for (auto& p : trainable) p.set_requires_grad(true);
}

}  // namespace peft
