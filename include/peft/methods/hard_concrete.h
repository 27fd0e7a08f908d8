#pragma once
// Hard-concrete gates (Louizos et al. 2018) as diff pruning uses them (Guo et al. 2021): a relaxed
// binary mask z in [0, 1] per entry, with exact zeros and ones, parametrised by log alpha.
//   sample: u ~ U(0,1); s = sigmoid((log u - log(1-u) + log_alpha) / beta); z = clamp(s (r - l) + l, 0, 1)
//   eval:   z = clamp(sigmoid(log_alpha) (r - l) + l, 0, 1)
//   L0:     P(z != 0) = sigmoid(log_alpha - beta log(-l / r))   (the expected L0 norm, per entry)
#include <cstdint>

#include <torch/types.h>

namespace peft {

struct HardConcrete {
  double beta = 1.0, l = -1.5, r = 1.5;  // authors' defaults: temperature, stretch interval
  void validate() const;                 // beta > 0, l < 0, r > 1
};

// Differentiable in log_alpha (plain tensor ops). `u` has log_alpha's shape, entries in (0, 1).
torch::Tensor hard_concrete_sample(const torch::Tensor& log_alpha, const torch::Tensor& u, const HardConcrete& hc = {});
torch::Tensor hard_concrete_eval(const torch::Tensor& log_alpha, const HardConcrete& hc = {});
torch::Tensor hard_concrete_l0(const torch::Tensor& log_alpha, const HardConcrete& hc = {});  // per entry

// Closed forms of P(z = 0) and P(z = 1) for one log alpha (for tests and docs).
double hard_concrete_p_zero(double log_alpha, const HardConcrete& hc = {});
double hard_concrete_p_one(double log_alpha, const HardConcrete& hc = {});

// Counter-based noise: entry i is a fixed function of (seed, i), uniform on (0, 1) in steps of 2^-24.
// The fused op below recomputes nothing and stores no noise; this is the same noise as a tensor.
torch::Tensor hash_uniform(uint64_t seed, int64_t numel, torch::ScalarType dtype = torch::kFloat);

// The diff-pruned weight and its expected L0 in one pass: returns {theta + z * w, sum(L0(log_alpha))}
// with z sampled from hash_uniform(seed). Gradients flow to w and log_alpha (theta is the frozen base).
// CPU float/double run one fused loop forward and one backward (z is saved, not recomputed); other
// devices use the tensor-op formulas with torch::rand noise.
std::pair<torch::Tensor, torch::Tensor> gated_diff(const torch::Tensor& theta, const torch::Tensor& w,
                                                   const torch::Tensor& log_alpha, uint64_t seed,
                                                   const HardConcrete& hc = {});

}  // namespace peft
