#include "peft/methods/model_params.h"

#include <unordered_set>

namespace peft {

std::vector<std::pair<std::string, torch::Tensor>> base_named_parameters(Model& model) {
  // Sites own only weight/bias; every child module of a site is a method. The prompt encoder of
  // prefix tuning hangs off the model itself.
  std::unordered_set<const void*> method_params;
  auto mark = [&](torch::nn::Module& site) {
    for (auto& child : site.children())
      for (auto& p : child->parameters()) method_params.insert(p.unsafeGetTensorImpl());
  };
  SiteIndex sites = model.sites();
  for (auto& [path, site] : sites.linear) mark(*site);
  for (auto& [path, site] : sites.sublayer) mark(*site);
  const auto base = model.base_children();
  for (auto& item : model.named_children())
    if (std::find(base.begin(), base.end(), item.key()) == base.end())
      for (auto& p : item.value()->parameters()) method_params.insert(p.unsafeGetTensorImpl());

  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : model.named_parameters())
    if (!method_params.count(item.value().unsafeGetTensorImpl())) out.emplace_back(item.key(), item.value());
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
