#include "peft/methods/model_params.h"

#include <unordered_set>

namespace peft {

std::vector<std::pair<std::string, torch::Tensor>> base_named_parameters(SequenceClassifierImpl& model) {
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
  for (auto& item : model.named_children())
    if (item.key() != model.base_prefix() && item.key() != "classifier")
      for (auto& p : item.value()->parameters()) method_params.insert(p.unsafeGetTensorImpl());

  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& item : model.named_parameters())
    if (!method_params.count(item.value().unsafeGetTensorImpl())) out.emplace_back(item.key(), item.value());
  return out;
}

int64_t base_parameter_count(SequenceClassifierImpl& model) {
  int64_t n = 0;
  for (auto& [name, p] : base_named_parameters(model)) n += p.numel();
  return n;
}

void set_trainable(SequenceClassifierImpl& model, const std::vector<torch::Tensor>& trainable) {
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  for (auto& p : trainable) p.set_requires_grad(true);
}

}  // namespace peft
