#pragma once
// Consistency regularisation between two stochastic forward passes of the same batch (AdaMix's
// two routes, also R-Drop's two dropout masks), and averaging the outputs of several passes.
//   classification  task = CE averaged over both passes (or pass 1),
//                   term = ½·(KL(p₁‖p₂) + KL(p₂‖p₁)), batch mean, gradients through both passes
//   multi-label     the same with per-label Bernoulli distributions (summed over labels)
//   regression      task = MSE averaged over both passes (or pass 1), term = MSE(y₁, y₂)
//   loss = task + weight · term
// Sequence-level only: the library's heads classify sequences (token-level KL for language models
// is out of scope).
#include <string>
#include <vector>

#include <torch/types.h>

#include "peft/models/model.h"

namespace peft {

struct ConsistencyOptions {
  double weight = 1.0;      // λ; 0 turns the second pass off (plain task loss of one pass)
  std::string ce = "mean";  // mean: task loss averaged over both passes | first: pass 1 only

  void validate(const std::string& method) const;  // errors name the method's config keys
};

// ½·(KL(p₁‖p₂) + KL(p₂‖p₁)) of the softmax distributions of two logits (batch, classes), batch mean.
torch::Tensor symmetric_kl(const torch::Tensor& logits1, const torch::Tensor& logits2);

torch::Tensor consistency_loss(const HeadSpec& head, const torch::Tensor& out1, const torch::Tensor& out2,
                               const torch::Tensor& labels, const ConsistencyOptions& options);

// Ensemble of several passes as one output the task loss and argmax understand: classification
// log(mean softmax) (its softmax is the averaged probabilities), multi-label logit(mean sigmoid),
// regression the mean.
torch::Tensor average_outputs(const HeadSpec& head, const std::vector<torch::Tensor>& outputs);

}  // namespace peft
