#include "peft/methods/lora.h"

#include <cmath>

#include <torch/nn/functional/dropout.h>
#include <torch/nn/functional/linear.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>

#include "methods/fold_deltas.h"
#include "methods/json_config.h"
#include "peft/error.h"
#include "peft/methods/model_params.h"

namespace peft {
namespace F = torch::nn::functional;

double LoraConfig::scaling() const { return use_rslora ? lora_alpha / std::sqrt(double(r)) : lora_alpha / double(r); }

void LoraConfig::validate() const {
  if (r <= 0) fail("lora: r must be > 0 (got {})", r);
  if (lora_dropout < 0 || lora_dropout >= 1) fail("lora: lora_dropout must be in [0, 1) (got {})", lora_dropout);
  if (bias != "none" && bias != "all" && bias != "lora_only")
    fail("lora: bias must be none, all or lora_only (got '{}')", bias);
  if (target_modules.empty()) fail("lora: target_modules is empty");
}

LoraConfig LoraConfig::from_json(const nlohmann::json& j) {
  LoraConfig c;
  read_key(j, "r", c.r);
  read_key(j, "lora_alpha", c.lora_alpha);
  read_key(j, "lora_dropout", c.lora_dropout);
  if (j.contains("target_modules") && !j["target_modules"].is_null()) {
    c.target_modules = TargetModules::from_json(j["target_modules"], "lora: target_modules");
    c.default_targets = false;
  }
  read_key(j, "bias", c.bias);
  read_key(j, "fan_in_fan_out", c.fan_in_fan_out);
  read_key(j, "use_rslora", c.use_rslora);
  if (j.contains("init_lora_weights") && j["init_lora_weights"].is_boolean())
    c.init_lora_weights = j["init_lora_weights"].get<bool>();
  // PEFT options this implementation does not have must not be silently ignored.
  for (const char* key : {"use_dora", "lora_bias"})
    if (j.contains(key) && j[key].is_boolean() && j[key].get<bool>()) fail("lora: {} is not supported", key);
  for (const char* key : {"rank_pattern", "alpha_pattern"})
    if (j.contains(key) && j[key].is_object() && !j[key].empty()) fail("lora: {} is not supported", key);
  for (const char* key : {"layers_to_transform", "exclude_modules"})
    if (j.contains(key) && !j[key].is_null()) fail("lora: {} is not supported", key);
  c.validate();
  return c;
}

nlohmann::json LoraConfig::to_json() const {
  return {{"r", r},
          {"lora_alpha", lora_alpha},
          {"lora_dropout", lora_dropout},
          {"target_modules", target_modules.to_json()},
          {"bias", bias},
          {"fan_in_fan_out", fan_in_fan_out},
          {"use_rslora", use_rslora},
          {"init_lora_weights", init_lora_weights}};
}

namespace {

// The LoRA pair on one linear site; lora_A / lora_B are bias-free linears so parameter names are
// "lora_A.weight" / "lora_B.weight", PEFT's names.
class LoraLinear : public LinearMethod {
 public:
  LoraLinear(const LoraConfig& c, int64_t in, int64_t out) : scaling_(c.scaling()), dropout_(c.lora_dropout) {
    lora_A = register_module("lora_A", torch::nn::Linear(torch::nn::LinearOptions(in, c.r).bias(false)));
    lora_B = register_module("lora_B", torch::nn::Linear(torch::nn::LinearOptions(c.r, out).bias(false)));
    torch::NoGradGuard no_grad;
    // nn.Linear's default init is Kaiming-uniform(a = sqrt 5), as LoRA's A.
    if (c.init_lora_weights) lora_B->weight.zero_();
  }

  torch::Tensor transform_output(const torch::Tensor& x, torch::Tensor y) override {
    if (merged) return y;
    torch::Tensor in = x;
    if (dropout_ > 0 && is_training()) in = F::dropout(in, F::DropoutFuncOptions().p(dropout_).training(true));
    return y + F::linear(F::linear(in, lora_A->weight), lora_B->weight) * scaling_;
  }

  std::optional<LowRankUpdate> low_rank_update() const override {
    if (merged || (dropout_ > 0 && is_training())) return std::nullopt;
    return LowRankUpdate{lora_A->weight, lora_B->weight, scaling_};
  }

  torch::Tensor delta() const { return torch::matmul(lora_B->weight, lora_A->weight) * scaling_; }

  torch::nn::Linear lora_A{nullptr}, lora_B{nullptr};
  bool merged = false;

 private:
  double scaling_, dropout_;
};

class Lora : public Method {
 public:
  explicit Lora(LoraConfig c) : config_(std::move(c)) { config_.validate(); }

  std::string type() const override { return "lora"; }
  nlohmann::json config() const override { return config_.to_json(); }

  void attach(Model& model) override {
    SiteIndex sites = model.sites();
    std::vector<std::string> names;
    for (auto& [path, site] : sites.linear) names.push_back(path);
    // Biases to train are those of the base model, taken before any LoRA module exists.
    auto base = base_named_parameters(model);
    if (config_.default_targets && !selects_any(config_.target_modules, names))
      config_.target_modules = default_lora_targets(model.arch().model_type);
    for (auto& path : select_targets(config_.target_modules, names, "lora: target_modules")) {
      auto site = sites.linear.at(path);
      // As PEFT: Conv1D layers (GPT-2) store the weight transposed, and the config says so.
      if (site->fan_in_fan_out()) config_.fan_in_fan_out = true;
      auto m = std::make_shared<LoraLinear>(config_, site->in_features(), site->out_features());
      m->to(site->weight.device(), site->weight.scalar_type());
      modules_.attach(adapter_name(), type(), site, m);
    }
    biases_.clear();
    if (config_.bias == "none") return;
    for (auto& [name, p] : base) {
      if (name.size() < 5 || name.compare(name.size() - 5, 5, ".bias") != 0 || is_head_parameter(model, name))
        continue;
      const std::string owner = name.substr(0, name.size() - 5);
      const bool targeted = std::any_of(modules_.begin(), modules_.end(), [&](auto& m) { return m.first->path() == owner; });
      if (config_.bias == "lora_only" && !targeted) continue;
      // PEFT wraps targeted layers, so their bias is saved as "<module>.base_layer.bias".
      biases_.push_back({owner, kModelKeyPrefix + owner + (targeted ? ".base_layer.bias" : ".bias"), p});
    }
  }

  void detach(Model& model) override {
    if (merged_) unmerge();
    modules_.detach_all(adapter_name(), type());
    biases_.clear();
  }

  std::vector<MethodTensor> tensors() override {
    std::vector<MethodTensor> out = modules_.tensors();
    out.insert(out.end(), biases_.begin(), biases_.end());
    return out;
  }

  bool mergeable() const override { return true; }
  void merge() override {
    if (merged_) return;
    fold_deltas(modules_, /*fold=*/true);
    merged_ = true;
  }
  void unmerge() override {
    if (!merged_) return;
    fold_deltas(modules_, /*fold=*/false);
    merged_ = false;
  }

 private:
  LoraConfig config_;
  SiteModules<LinearSite, LoraLinear> modules_;
  std::vector<MethodTensor> biases_;
};

}  // namespace

std::shared_ptr<Method> make_lora(const LoraConfig& config) { return std::make_shared<Lora>(config); }

}  // namespace peft
