#include "peft/train/model.h"

#include "peft/error.h"
#include "peft/io/safetensors.h"

namespace peft::train {

TrainableModel trainable_base_model(std::shared_ptr<Model> model, const std::vector<std::string>& prefixes) {
  TrainableModel out;
  for (auto& item : model->named_parameters()) {
    const bool chosen = std::any_of(prefixes.begin(), prefixes.end(),
                                    [&](const std::string& p) { return item.key().rfind(p, 0) == 0; });
    item.value().set_requires_grad(chosen);
    if (chosen) out.tensors.push_back({item.key(), item.value()});
  }
  if (out.tensors.empty()) fail("no parameter starts with {}", fmt::join(prefixes, " or "));
  out.forward = [model](const ModelInput& in) mutable { return model->forward(in); };
  out.set_training = [model](bool on) mutable { model->train(on); };
  out.head = model->head();
  auto tensors = out.tensors;
  out.save_task = [tensors](const std::string& dir) {
    std::vector<std::pair<std::string, torch::Tensor>> named;
    for (const auto& t : tensors) named.emplace_back(t.name, t.tensor.detach());
    io::save_safetensors(dir + "/model.safetensors", named);
  };
  return out;
}

}  // namespace peft::train
