#include "peft/methods/method.h"

#include "peft/error.h"

namespace peft {

void Method::load_tensors(const std::function<torch::Tensor(const std::string&)>& lookup) {
  for (auto& t : tensors()) copy_checked(t.tensor, lookup(t.key), t.key);
}

int64_t Method::inference_parameter_count() {
  int64_t n = 0;
  for (auto& t : tensors()) n += t.tensor.numel();
  return n;
}

torch::Tensor Method::training_loss(const std::function<torch::Tensor()>& forward, const HeadSpec& head,
                                    const torch::Tensor& labels) {
  return head.loss(forward(), labels);
}

torch::Tensor Method::predict(const std::function<torch::Tensor()>& forward, const HeadSpec&) { return forward(); }

std::vector<std::shared_ptr<SublayerSite>> sublayer_sites(const Model& model, const std::string& placement) {
  const SiteIndex sites = model.sites();
  std::vector<std::shared_ptr<SublayerSite>> chosen;
  if (placement != "ffn")
    for (auto& site : sites.sublayer_with(SiteRole::AfterAttention)) chosen.push_back(site);
  if (placement != "attention")
    for (auto& site : sites.sublayer_with(SiteRole::AfterFfn)) chosen.push_back(site);
  std::stable_sort(chosen.begin(), chosen.end(), [](auto& a, auto& b) { return a->info().layer < b->info().layer; });
  if (chosen.empty()) fail("the model has no {} sublayer sites", placement);
  return chosen;
}

void copy_checked(const torch::Tensor& target, const torch::Tensor& value, const std::string& key) {
  if (target.sizes() != value.sizes())
    fail("adapter tensor {} has shape {} but the model expects {} (adapter made for another base model?)", key,
         fmt::format("({})", fmt::join(value.sizes(), ", ")), fmt::format("({})", fmt::join(target.sizes(), ", ")));
  torch::NoGradGuard no_grad;
  target.copy_(value);
}

void append_module_tensors(std::vector<MethodTensor>& out, const std::string& site_path, torch::nn::Module& module) {
  for (auto& item : module.named_parameters(/*recurse=*/true))
    out.push_back({site_path, kModelKeyPrefix + site_path + "." + item.key(), item.value()});
}

}  // namespace peft
