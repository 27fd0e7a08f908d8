#include "peft/methods/hard_concrete.h"

#include <cmath>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include "methods/gated_diff_cpu.h"
#include "peft/error.h"

namespace peft {
namespace {

double logit(double p) { return std::log(p / (1 - p)); }
double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

using detail::hash_u;

constexpr int64_t kGrain = 32768;

struct GatedDiff : public torch::autograd::Function<GatedDiff> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& theta,
                                                const torch::Tensor& w, const torch::Tensor& log_alpha,
                                                int64_t seed, double beta, double l, double r) {
    const HardConcrete hc{beta, l, r};
    auto th = theta.contiguous(), wc = w.contiguous(), la = log_alpha.contiguous();
    auto out = torch::empty_like(wc), z = torch::empty_like(wc);
    double l0 = 0;
    AT_DISPATCH_FLOATING_TYPES(wc.scalar_type(), "gated_diff", [&] {
      l0 = detail::gated_forward_cpu<scalar_t>(th.data_ptr<scalar_t>(), wc.data_ptr<scalar_t>(), la.data_ptr<scalar_t>(),
                                   out.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), wc.numel(),
                                   static_cast<uint64_t>(seed), hc);
    });
    ctx->save_for_backward({wc, la, z});
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["l"] = l;
    ctx->saved_data["r"] = r;
    return {out, torch::scalar_tensor(l0, wc.options())};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& w = saved[0];
    const auto& la = saved[1];
    const auto& z = saved[2];
    const HardConcrete hc{ctx->saved_data["beta"].toDouble(), ctx->saved_data["l"].toDouble(),
                          ctx->saved_data["r"].toDouble()};
    torch::Tensor g = grads[0].defined() ? grads[0].contiguous() : torch::Tensor();
    const double g_l0 = grads[1].defined() ? grads[1].item<double>() : 0.0;
    auto gw = torch::empty_like(w), gla = torch::empty_like(la);
    AT_DISPATCH_FLOATING_TYPES(w.scalar_type(), "gated_diff_backward", [&] {
      detail::gated_backward_cpu<scalar_t>(g.defined() ? g.data_ptr<scalar_t>() : nullptr, w.data_ptr<scalar_t>(),
                               la.data_ptr<scalar_t>(), z.data_ptr<scalar_t>(), gw.data_ptr<scalar_t>(),
                               gla.data_ptr<scalar_t>(), w.numel(), g_l0, hc);
    });
    return {torch::Tensor(), gw, gla, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

void HardConcrete::validate() const {
  if (!(beta > 0)) fail("hard-concrete: beta must be > 0 (got {})", beta);
  if (!(l < 0) || !(r > 1)) fail("hard-concrete: need l < 0 and r > 1 (got l {}, r {})", l, r);
}

torch::Tensor hard_concrete_sample(const torch::Tensor& log_alpha, const torch::Tensor& u, const HardConcrete& hc) {
  auto s = torch::sigmoid((torch::log(u) - torch::log1p(-u) + log_alpha) / hc.beta);
  return torch::clamp(s * (hc.r - hc.l) + hc.l, 0.0, 1.0);
}

torch::Tensor hard_concrete_eval(const torch::Tensor& log_alpha, const HardConcrete& hc) {
  return torch::clamp(torch::sigmoid(log_alpha) * (hc.r - hc.l) + hc.l, 0.0, 1.0);
}

torch::Tensor hard_concrete_l0(const torch::Tensor& log_alpha, const HardConcrete& hc) {
  return torch::sigmoid(log_alpha - hc.beta * std::log(-hc.l / hc.r));
}

// z = 0 when s <= -l / (r - l), z = 1 when s >= (1 - l) / (r - l); logit(u) is logistic.
double hard_concrete_p_zero(double log_alpha, const HardConcrete& hc) {
  return sigmoid(hc.beta * logit(-hc.l / (hc.r - hc.l)) - log_alpha);
}

double hard_concrete_p_one(double log_alpha, const HardConcrete& hc) {
  return sigmoid(log_alpha - hc.beta * logit((1 - hc.l) / (hc.r - hc.l)));
}

torch::Tensor hash_uniform(uint64_t seed, int64_t numel, torch::ScalarType dtype) {
  auto out = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
  AT_DISPATCH_FLOATING_TYPES(dtype, "hash_uniform", [&] {
    auto* p = out.data_ptr<scalar_t>();
    at::parallel_for(0, numel, kGrain, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) p[i] = hash_u<scalar_t>(seed, i);
    });
  });
  return out;
}

std::pair<torch::Tensor, torch::Tensor> gated_diff(const torch::Tensor& theta, const torch::Tensor& w,
                                                   const torch::Tensor& log_alpha, uint64_t seed,
                                                   const HardConcrete& hc) {
  if (theta.sizes() != w.sizes() || w.sizes() != log_alpha.sizes()) fail("gated_diff: theta, w and log_alpha differ in shape");
  const auto type = w.scalar_type();
  if (w.device().is_cpu() && (type == torch::kFloat || type == torch::kDouble) && theta.scalar_type() == type &&
      log_alpha.scalar_type() == type) {
    auto out = GatedDiff::apply(theta.detach(), w, log_alpha, static_cast<int64_t>(seed), hc.beta, hc.l, hc.r);
    return {out[0], out[1]};
  }
  // Elsewhere: the same formulas as tensor ops, on the same noise (made on the CPU from the seed).
  const auto noise_type = type == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto u = hash_uniform(seed, log_alpha.numel(), noise_type)
               .view(log_alpha.sizes()).to(log_alpha.options()).clamp(1e-6, 1 - 1e-6);
  auto z = hard_concrete_sample(log_alpha, u, hc);
  return {theta.detach() + z * w, hard_concrete_l0(log_alpha, hc).sum()};
}

}  // namespace peft
