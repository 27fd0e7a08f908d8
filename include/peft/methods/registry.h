#pragma once
// The method registry: one row per method type. Adding a method = its header + source file + one
// row in src/methods/registry.cpp.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/methods/method.h"

namespace peft {

struct MethodType {
  std::string name;       // as written in --method specs: "lora"
  std::string peft_type;  // adapter_config.json "peft_type": PEFT's ("LORA") or ours ("BOTTLENECK")
  std::string summary;
  std::function<nlohmann::json()> defaults;  // default config; its keys are the valid keys
  std::function<std::shared_ptr<Method>(const nlohmann::json&)> make;  // validates; ignores unknown keys
};

const std::vector<MethodType>& method_types();
const MethodType& method_type(const std::string& name);  // throws listing the known names
const MethodType& method_type_for_peft_type(const std::string& peft_type);

// A method from a user's config: unknown keys are an error listing the valid ones.
std::shared_ptr<Method> make_method(const std::string& name, const nlohmann::json& config);

}  // namespace peft
