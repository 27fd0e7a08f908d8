#include "peft/methods/consistency.h"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/loss.h>

#include "peft/error.h"

namespace peft {
namespace F = torch::nn::functional;

void ConsistencyOptions::validate(const std::string& method) const {
  if (!(weight >= 0)) fail("{}: consistency_weight must be >= 0 (got {})", method, weight);
  if (ce != "mean" && ce != "first") fail("{}: consistency_ce must be mean or first (got '{}')", method, ce);
}

torch::Tensor symmetric_kl(const torch::Tensor& logits1, const torch::Tensor& logits2) {
  const torch::Tensor lp1 = torch::log_softmax(logits1, -1), lp2 = torch::log_softmax(logits2, -1);
  const torch::Tensor diff = lp1 - lp2;  // KL(p1‖p2) = Σ p1·(lp1 − lp2); KL(p2‖p1) = Σ p2·(lp2 − lp1)
  return 0.5 * ((lp1.exp() - lp2.exp()) * diff).sum(-1).mean();
}

namespace {

// Per-label Bernoulli KL, symmetrised, summed over labels, batch mean.
torch::Tensor symmetric_bernoulli_kl(const torch::Tensor& logits1, const torch::Tensor& logits2) {
  const torch::Tensor p1 = torch::sigmoid(logits1), p2 = torch::sigmoid(logits2);
  // log p − log q for the "on" outcome is logsigmoid(a) − logsigmoid(b), for "off" logsigmoid(−a) − logsigmoid(−b).
  const torch::Tensor on = torch::log_sigmoid(logits1) - torch::log_sigmoid(logits2);
  const torch::Tensor off = torch::log_sigmoid(-logits1) - torch::log_sigmoid(-logits2);
  return 0.5 * ((p1 - p2) * on + ((1 - p1) - (1 - p2)) * off).sum(-1).mean();
}

}  // namespace

torch::Tensor consistency_loss(const HeadSpec& head, const torch::Tensor& out1, const torch::Tensor& out2,
                               const torch::Tensor& labels, const ConsistencyOptions& options) {
  torch::Tensor task = head.loss(out1, labels);
  if (options.ce == "mean") task = 0.5 * (task + head.loss(out2, labels));
  torch::Tensor term;
  if (head.regression()) term = F::mse_loss(out1, out2);
  else if (head.kind == HeadKind::MultiLabel) term = symmetric_bernoulli_kl(out1, out2);
  else term = symmetric_kl(out1, out2);
  return task + options.weight * term;
}

torch::Tensor average_outputs(const HeadSpec& head, const std::vector<torch::Tensor>& outputs) {
  if (outputs.empty()) fail("average_outputs: no outputs");
  if (outputs.size() == 1) return outputs.front();
  const torch::Tensor stacked = torch::stack(outputs);
  if (head.regression()) return stacked.mean(0);
  if (head.kind == HeadKind::MultiLabel) {
    const torch::Tensor p = torch::sigmoid(stacked).mean(0);
    return torch::log(p) - torch::log1p(-p);
  }
  return torch::log(torch::softmax(stacked, -1).mean(0));
}

}  // namespace peft
