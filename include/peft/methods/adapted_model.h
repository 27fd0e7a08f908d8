#pragma once
// A base model with methods attached: attaching, freezing, trainable parameters, merging.
// The base model keeps its own forward(); attached methods act through its sites.
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "peft/methods/method.h"
#include "peft/models/encoder.h"
#include "peft/models/model.h"

namespace peft {

class AdaptedModel {
 public:
  explicit AdaptedModel(std::shared_ptr<Model> model);
  explicit AdaptedModel(SequenceClassifier model) : AdaptedModel(std::shared_ptr<Model>(model.ptr())) {}

  // Attaches a method (several may be attached, e.g. prefix + adapter = MAM) and re-freezes the
  // model so that only method tensors and, when a method asks for it, the head train. Methods keep
  // the adapter name they were given (set_adapter_name), "default" otherwise.
  void add(std::shared_ptr<Method> method);
  void add(const std::vector<std::shared_ptr<Method>>& methods);
  void remove_all();  // detaches everything: the model is the base model again

  torch::Tensor forward(const ModelInput& in) {
    ForwardContext context;
    return forward(in, context);
  }
  torch::Tensor forward(const ModelInput& in, ForwardContext& context) {
    for (auto& m : methods_) m->before_forward(*model_);
    return model_->forward(in, context);
  }

  const std::shared_ptr<Model>& model() { return model_; }
  HeadSpec head() const { return model_->head(); }
  const std::vector<std::shared_ptr<Method>>& methods() const { return methods_; }

  bool trains_head() const;
  // The head's tensors with adapter-file keys (prefix of the first method).
  std::vector<MethodTensor> head_tensors();
  // Method tensors then head tensors, each tensor once.
  std::vector<MethodTensor> trainable_tensors();
  std::vector<torch::Tensor> trainable_parameters();
  void refreeze();

  int64_t base_parameter_count() const { return base_count_; }

  bool mergeable() const;  // every attached method with tensors of its own is mergeable
  void merge();
  void unmerge();
  void finalize();  // precompute-and-drop training-only parts (prefix MLP)

 private:
  std::shared_ptr<Model> model_;
  std::vector<std::shared_ptr<Method>> methods_;
  int64_t base_count_ = 0;
};

}  // namespace peft
