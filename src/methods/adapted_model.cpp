#include "peft/methods/adapted_model.h"

#include <unordered_set>

#include "peft/error.h"
#include "peft/methods/model_params.h"

namespace peft {

AdaptedModel::AdaptedModel(std::shared_ptr<Model> model) : model_(std::move(model)) {
  if (!model_) fail("AdaptedModel: no model");
  base_count_ = peft::base_parameter_count(*model_);
  refreeze();
}

void AdaptedModel::add(std::shared_ptr<Method> method) {
  method->attach(*model_);
  model_->train(model_->is_training());  // new modules follow the model's train/eval mode
  methods_.push_back(std::move(method));
  refreeze();
}

void AdaptedModel::add(const std::vector<std::shared_ptr<Method>>& methods) {
  for (auto& m : methods) add(m);
}

void AdaptedModel::remove_all() {
  for (auto it = methods_.rbegin(); it != methods_.rend(); ++it) (*it)->detach(*model_);
  methods_.clear();
  refreeze();
}

bool AdaptedModel::trains_head() const {
  // LM heads stay frozen, as PEFT leaves them for CAUSAL_LM (and a tied head is the embedding).
  if (model_->head().kind == HeadKind::CausalLM) return false;
  return std::any_of(methods_.begin(), methods_.end(), [](auto& m) { return m->trains_head(); });
}

std::vector<MethodTensor> AdaptedModel::head_tensors() {
  if (!trains_head()) return {};
  const std::string prefix = methods_.front()->head_key_prefix();
  std::vector<MethodTensor> out;
  for (auto& [name, p] : base_named_parameters(*model_))
    if (is_head_parameter(*model_, name)) out.push_back({model_->head_module_name(), prefix + name, p});
  return out;
}

std::vector<MethodTensor> AdaptedModel::trainable_tensors() {
  std::vector<MethodTensor> out;
  std::unordered_set<const void*> seen;
  auto add_all = [&](std::vector<MethodTensor> ts) {
    for (auto& t : ts)
      if (seen.insert(t.tensor.unsafeGetTensorImpl()).second) out.push_back(std::move(t));
  };
  for (auto& m : methods_) add_all(m->tensors());
  add_all(head_tensors());
  return out;
}

std::vector<torch::Tensor> AdaptedModel::trainable_parameters() {
  std::vector<torch::Tensor> out;
  for (auto& t : trainable_tensors()) out.push_back(t.tensor);
  return out;
}

void AdaptedModel::refreeze() { set_trainable(*model_, trainable_parameters()); }

bool AdaptedModel::mergeable() const {
  return std::all_of(methods_.begin(), methods_.end(), [](auto& m) { return m->mergeable(); });
}

void AdaptedModel::merge() {
  if (!mergeable()) {
    std::vector<std::string> names;
    for (auto& m : methods_)
      if (!m->mergeable()) names.push_back(m->type());
    fail("cannot merge: method(s) {} change the computation, not just the weights", fmt::join(names, ", "));
  }
  for (auto& m : methods_) m->merge();
}

void AdaptedModel::unmerge() {
  for (auto it = methods_.rbegin(); it != methods_.rend(); ++it) (*it)->unmerge();
}

void AdaptedModel::finalize() {
  for (auto& m : methods_) m->finalize();
  refreeze();
}

}  // namespace peft
