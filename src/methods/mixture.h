#pragma once
// What the AdaMix adapter and LoRA mixtures share (internal to src/methods): drawing routes,
// averaging experts, the evaluation mode and running the model for the consistency loss and
// ensembles. See peft/methods/adamix.h.
#include <string>
#include <vector>

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>

#include "peft/methods/adamix.h"

namespace peft {

// One expert index, uniform in [0, n), from torch's default CPU generator (seeded by the trainer;
// saved and restored with its checkpoints). n == 1 draws nothing.
int64_t draw_expert(int64_t n);

// `n` copies of `proto` in a ModuleList registered on `owner` as `name`: the experts start equal,
// as in the authors' code, and diverge through routing.
std::vector<torch::nn::Linear> register_copies(torch::nn::Module& owner, const std::string& name,
                                               const torch::nn::Linear& proto, int64_t n);

// A projection side of a mixture site: its experts and the weight (and bias) a forward uses.
struct ExpertSide {
  std::vector<torch::nn::Linear> experts;

  // One random expert when routing, else the average (merged).
  std::pair<torch::Tensor, torch::Tensor> pick(bool route) const;
  std::pair<torch::Tensor, torch::Tensor> mean() const;
  // Replaces the experts by one Linear holding their average (registered on `owner` as `name`).
  void collapse(torch::nn::Module& owner, const std::string& name);
};

// Base of both mixture methods: evaluation mode, consistency loss, ensembles.
class MixtureMethod : public Method {
 public:
  MixtureMethod(std::string name, ConsistencyOptions consistency)
      : name_(std::move(name)), consistency_(std::move(consistency)) {}

  bool runs_model() const override { return true; }
  torch::Tensor training_loss(const std::function<torch::Tensor()>& forward, const HeadSpec& head,
                              const torch::Tensor& labels) override;
  torch::Tensor predict(const std::function<torch::Tensor()>& forward, const HeadSpec& head) override;

  void set_mode(const AdaMixMode& mode);
  const AdaMixMode& mode() const { return mode_; }

 protected:
  // Outside training: whether the sites draw random routes (random/ensemble) or use the average.
  virtual void set_eval_routing(bool random) = 0;
  bool eval_routing() const { return mode_.kind != AdaMixMode::Merged; }

  std::string name_;
  ConsistencyOptions consistency_;
  AdaMixMode mode_;
};

// Common config checks; `sides` are the two share values naming one side (e.g. "up", "down").
void validate_mixture(const std::string& method, int64_t num_experts, int64_t r, const std::string& share,
                      const std::pair<const char*, const char*>& sides);

}  // namespace peft
