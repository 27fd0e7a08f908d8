#include "peft/models/sites.h"

#include <torch/nn/functional/linear.h>

#include "peft/error.h"

namespace peft {
namespace {

template <typename Vec>
void erase_named(Vec& methods, const std::string& name, const std::string& path) {
  auto it = std::find_if(methods.begin(), methods.end(), [&](auto& p) { return p.first == name; });
  if (it == methods.end()) fail("{}: no method named \"{}\" attached", path, name);
  methods.erase(it);
}

template <typename Vec>
void check_new_name(const Vec& methods, const std::string& name, const std::string& path) {
  for (auto& p : methods)
    if (p.first == name) fail("{}: a method named \"{}\" is already attached", path, name);
}

}  // namespace

LinearSite::LinearSite(std::string path, int64_t in_features, int64_t out_features, bool with_bias)
    : path_(std::move(path)), in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", torch::empty({out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({out_features}));
}

torch::Tensor LinearSite::forward(const torch::Tensor& x) {
  if (methods_.empty()) return torch::nn::functional::linear(x, weight, bias);
  torch::Tensor w = weight, b = bias, in = x;
  for (auto& [name, m] : methods_) {
    w = m->effective_weight(w);
    if (b.defined()) b = m->effective_bias(b);
    in = m->transform_input(in);
  }
  torch::Tensor y = torch::nn::functional::linear(in, w, b);
  for (auto& [name, m] : methods_) y = m->transform_output(x, y);
  return y;
}

void LinearSite::attach(const std::string& name, std::shared_ptr<LinearMethod> method) {
  check_new_name(methods_, name, path_);
  register_module(name, method);
  methods_.emplace_back(name, std::move(method));
}

void LinearSite::detach(const std::string& name) {
  erase_named(methods_, name, path_);
  unregister_module(name);
}

torch::Tensor SublayerSite::forward(const torch::Tensor& x, torch::Tensor h) {
  for (auto& [name, m] : methods_) h = m->apply(x, h);
  return h;
}

void SublayerSite::attach(const std::string& name, std::shared_ptr<SublayerMethod> method) {
  check_new_name(methods_, name, path_);
  register_module(name, method);
  methods_.emplace_back(name, std::move(method));
}

void SublayerSite::detach(const std::string& name) {
  erase_named(methods_, name, path_);
  unregister_module(name);
}

void AttentionKVSite::forward(AttentionKV& kv) {
  if (methods_.empty()) return;
  // Methods always see a mask; the model leaves it undefined when nothing is padded.
  if (!kv.mask.defined())
    kv.mask = torch::zeros({kv.key.size(0), 1, 1, kv.key.size(2)}, kv.key.options());
  for (auto& [name, m] : methods_) m->apply(layer_index_, kv);
}

void AttentionKVSite::attach(const std::string& name, std::shared_ptr<AttentionKVMethod> method) {
  check_new_name(methods_, name, path_);
  methods_.emplace_back(name, std::move(method));
}

void AttentionKVSite::detach(const std::string& name) { erase_named(methods_, name, path_); }

}  // namespace peft
