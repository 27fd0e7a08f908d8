// AdaMix configs: JSON keys, defaults, validation (see peft/methods/adamix.h).
#include <nlohmann/json.hpp>

#include "methods/json_config.h"
#include "methods/mixture.h"
#include "peft/error.h"

namespace peft {
namespace {

void read_consistency(const nlohmann::json& j, ConsistencyOptions& c) {
  read_key(j, "consistency_weight", c.weight);
  read_key(j, "consistency_ce", c.ce);
}

}  // namespace

void AdaMixConfig::validate() const {
  validate_mixture("adamix", num_experts, r, share, {"up", "down"});
  check_choice("adamix", "placement", placement, {"attention", "ffn", "both"});
  check_choice("adamix", "insertion", insertion, {"sequential", "parallel"});
  if (composition == "gated") fail("adamix: composition 'gated' is not supported (use add or scaled)");
  check_choice("adamix", "composition", composition, {"add", "scaled"});
  check_choice("adamix", "activation", activation, {"relu", "tanh", "identity", "gelu"});
  check_choice("adamix", "init", init, {"near_identity", "lora"});
  consistency.validate("adamix");
}

AdaMixConfig AdaMixConfig::from_json(const nlohmann::json& j) {
  AdaMixConfig c;
  read_key(j, "num_experts", c.num_experts);
  read_key(j, "r", c.r);
  read_key(j, "share", c.share);
  read_key(j, "placement", c.placement);
  read_key(j, "insertion", c.insertion);
  read_key(j, "composition", c.composition);
  read_key(j, "scaling", c.scaling);
  read_key(j, "activation", c.activation);
  read_key(j, "init", c.init);
  read_consistency(j, c.consistency);
  c.validate();
  return c;
}

nlohmann::json AdaMixConfig::to_json() const {
  return {{"num_experts", num_experts},   {"r", r},
          {"share", share},               {"placement", placement},
          {"insertion", insertion},       {"composition", composition},
          {"scaling", scaling},           {"activation", activation},
          {"init", init},                 {"consistency_weight", consistency.weight},
          {"consistency_ce", consistency.ce}};
}

void AdaMixLoraConfig::validate() const {
  validate_mixture("adamix_lora", num_experts, r, share, {"A", "B"});
  if (lora_dropout < 0 || lora_dropout >= 1) fail("adamix_lora: lora_dropout must be in [0, 1) (got {})", lora_dropout);
  if (target_modules.empty()) fail("adamix_lora: target_modules is empty");
  consistency.validate("adamix_lora");
}

AdaMixLoraConfig AdaMixLoraConfig::from_json(const nlohmann::json& j) {
  AdaMixLoraConfig c;
  read_key(j, "num_experts", c.num_experts);
  read_key(j, "r", c.r);
  read_key(j, "lora_alpha", c.lora_alpha);
  read_key(j, "lora_dropout", c.lora_dropout);
  if (j.contains("target_modules") && !j["target_modules"].is_null()) {
    c.target_modules = TargetModules::from_json(j["target_modules"], "adamix_lora: target_modules");
    c.default_targets = false;
  }
  read_key(j, "share", c.share);
  read_consistency(j, c.consistency);
  c.validate();
  return c;
}

nlohmann::json AdaMixLoraConfig::to_json() const {
  return {{"num_experts", num_experts},
          {"r", r},
          {"lora_alpha", lora_alpha},
          {"lora_dropout", lora_dropout},
          {"target_modules", target_modules.to_json()},
          {"share", share},
          {"consistency_weight", consistency.weight},
          {"consistency_ce", consistency.ce}};
}

}  // namespace peft
