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

torch::Tensor Method::training_loss(const std::function<torch::Tensor()>& forward, const EncoderConfig& config,
                                    const torch::Tensor& labels) {
  return sequence_loss(config, forward(), labels);
}

torch::Tensor Method::predict(const std::function<torch::Tensor()>& forward, const EncoderConfig&) { return forward(); }

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
