#pragma once
// LoRA (Hu et al. 2021): y = x Wᵀ + b + s · dropout(x) Aᵀ Bᵀ with A (r × in), B (out × r),
// s = lora_alpha / r (rsLoRA: lora_alpha / sqrt(r)). A starts Kaiming-uniform, B zero, so the model
// starts as the base model. Mergeable: W' = W + s·B·A. JSON keys are PEFT's LoraConfig keys.
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "peft/methods/method.h"
#include "peft/methods/targets.h"

namespace peft {

struct LoraConfig {
  int64_t r = 8;
  double lora_alpha = 8;
  double lora_dropout = 0.0;
  TargetModules target_modules = TargetModules::list({"query", "value"});
  bool default_targets = true;  // none given: PEFT's defaults for the model type, chosen at attach
  std::string bias = "none";  // none | all | lora_only: which biases also train
  bool fan_in_fan_out = false;  // checkpoint stores weights (in × out) (GPT-2 Conv1D); sites always hold (out × in)
  bool use_rslora = false;
  bool init_lora_weights = true;  // false: B random too (tests: a non-trivial adapter)

  double scaling() const;
  void validate() const;
  static LoraConfig from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

std::shared_ptr<Method> make_lora(const LoraConfig& config);

}  // namespace peft
