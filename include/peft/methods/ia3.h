#pragma once
// IA³ (Liu et al. 2022): learned vectors that rescale activations. On key/value-like targets the
// vector (out × 1) scales the layer's output; on feed-forward targets (`feedforward_modules`,
// PEFT's default "output.dense") the vector (1 × in) scales the layer's input, i.e. the FFN
// intermediate activation. Starts at ones (the base model). Mergeable into the weights.
#include <memory>

#include <nlohmann/json_fwd.hpp>

#include "peft/methods/method.h"
#include "peft/methods/targets.h"

namespace peft {

struct Ia3Config {
  TargetModules target_modules = TargetModules::list({"key", "value", "output.dense"});
  TargetModules feedforward_modules = TargetModules::list({"output.dense"});
  bool default_targets = true;  // no target_modules given: PEFT's defaults for the model type, at attach
  bool init_ia3_weights = true;  // false: random vectors (tests)

  void validate() const;
  static Ia3Config from_json(const nlohmann::json& j);
  nlohmann::json to_json() const;
};

std::shared_ptr<Method> make_ia3(const Ia3Config& config);

}  // namespace peft
