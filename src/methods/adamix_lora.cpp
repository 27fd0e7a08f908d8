// AdaMix over LoRA: M copies of A (r × in) and B (out × r) per targeted linear layer (one side may
// be shared; authors: share B). y = x Wᵀ + b + s · dropout(x) A_iᵀ B_jᵀ, s = α / r, i and j drawn
// per forward in training; inference uses mean(B) · mean(A), which can also be folded into W.
// Tensor keys: base_model.model.<module>.lora_A.<i>.weight, ...lora_B.<j>.weight.
#include <torch/nn/functional/dropout.h>
#include <torch/nn/functional/linear.h>

#include "methods/fold_deltas.h"
#include "methods/mixture.h"
#include "peft/error.h"

namespace peft {
namespace {
namespace F = torch::nn::functional;

class AdaMixLoraLinear : public LinearMethod {
 public:
  AdaMixLoraLinear(const AdaMixLoraConfig& c, int64_t in, int64_t out) : scaling_(c.scaling()), dropout_(c.lora_dropout) {
    // A keeps nn.Linear's Kaiming-uniform init, B starts at zero (the model starts as the base model).
    torch::nn::Linear a(torch::nn::LinearOptions(in, c.r).bias(false)), b(torch::nn::LinearOptions(c.r, out).bias(false));
    {
      torch::NoGradGuard no_grad;
      b->weight.zero_();
    }
    a_.experts = register_copies(*this, "lora_A", a, c.share == "A" ? 1 : c.num_experts);
    b_.experts = register_copies(*this, "lora_B", b, c.share == "B" ? 1 : c.num_experts);
  }

  torch::Tensor transform_output(const torch::Tensor& x, torch::Tensor y) override {
    if (merged) return y;
    const bool route = is_training() || random_eval;
    torch::Tensor in = x;
    if (dropout_ > 0 && is_training()) in = F::dropout(in, F::DropoutFuncOptions().p(dropout_).training(true));
    const torch::Tensor a = a_.pick(route).first, b = b_.pick(route).first;
    return y + F::linear(F::linear(in, a), b) * scaling_;
  }

  torch::Tensor delta() const { return torch::matmul(b_.mean().first, a_.mean().first) * scaling_; }

  void collapse() {
    a_.collapse(*this, "lora_A");
    b_.collapse(*this, "lora_B");
  }
  int64_t inference_parameters() const { return a_.experts[0]->weight.numel() + b_.experts[0]->weight.numel(); }

  bool merged = false, random_eval = false;

 private:
  double scaling_, dropout_;
  ExpertSide a_, b_;
};

class AdaMixLora : public MixtureMethod {
 public:
  explicit AdaMixLora(AdaMixLoraConfig c) : MixtureMethod("adamix_lora", c.consistency), config_(std::move(c)) {
    config_.validate();
  }
  std::string type() const override { return "adamix_lora"; }
  nlohmann::json config() const override { return config_.to_json(); }

  void attach(Model& model) override {
    SiteIndex sites = model.sites();
    std::vector<std::string> names;
    for (auto& [path, site] : sites.linear) names.push_back(path);
    if (config_.default_targets && !selects_any(config_.target_modules, names))
      config_.target_modules = default_lora_targets(model.arch().model_type);
    for (auto& path : select_targets(config_.target_modules, names, "adamix_lora: target_modules")) {
      auto site = sites.linear.at(path);
      auto m = std::make_shared<AdaMixLoraLinear>(config_, site->in_features(), site->out_features());
      m->to(site->weight.device(), site->weight.scalar_type());
      m->random_eval = eval_routing();
      modules_.attach(adapter_name(), type(), site, m);
    }
  }

  void detach(Model&) override {
    if (merged_) unmerge();
    modules_.detach_all(adapter_name(), type());
  }

  std::vector<MethodTensor> tensors() override {
    return modules_.tensors();
  }

  int64_t inference_parameter_count() override {
    int64_t n = 0;
    for (auto& [site, m] : modules_) n += m->inference_parameters();
    return n;
  }

  // The averaged pair is a plain LoRA update, so it folds into W (W += s · mean(B) · mean(A)).
  bool mergeable() const override { return true; }
  void merge() override {
    if (merged_) return;
    if (mode_.kind != AdaMixMode::Merged)
      fail("adamix_lora: cannot fold into the weights in {} mode (use merged)", mode_.to_string());
    fold_deltas(modules_, /*fold=*/true);
    merged_ = true;
  }
  void unmerge() override {
    if (!merged_) return;
    fold_deltas(modules_, /*fold=*/false);
    merged_ = false;
  }

  // Module merging: one A and one B per site, the experts' averages (AdaMix-LoRA with one expert).
  void finalize() override {
    if (merged_) fail("adamix_lora: unmerge before finalize()");
    for (auto& [site, m] : modules_) m->collapse();
    config_.num_experts = 1;
  }

 private:
  void set_eval_routing(bool random) override {
    for (auto& [site, m] : modules_) m->random_eval = random;
  }

  AdaMixLoraConfig config_;
  SiteModules<LinearSite, AdaMixLoraLinear> modules_;
};

}  // namespace

std::shared_ptr<Method> make_adamix_lora(const AdaMixLoraConfig& config) { return std::make_shared<AdaMixLora>(config); }

}  // namespace peft
