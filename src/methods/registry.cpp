#include "peft/methods/registry.h"

#include "peft/error.h"
#include "peft/methods/adamix.h"
#include "peft/methods/baselines.h"
#include "peft/methods/bottleneck.h"
#include "peft/methods/diff_pruning.h"
#include "peft/methods/ia3.h"
#include "peft/methods/lora.h"
#include "peft/methods/prefix.h"

namespace peft {

const std::vector<MethodType>& method_types() {
  static const std::vector<MethodType> types = {
      {"lora", "LORA", "low-rank update B·A on linear layers",
       [] { return LoraConfig{}.to_json(); }, [](auto& j) { return make_lora(LoraConfig::from_json(j)); }},
      {"ia3", "IA3", "learned scaling of keys, values and the FFN intermediate",
       [] { return Ia3Config{}.to_json(); }, [](auto& j) { return make_ia3(Ia3Config::from_json(j)); }},
      {"prefix", "PREFIX_TUNING", "learned key/value prefixes in every attention layer",
       [] { return PrefixConfig{}.to_json(); }, [](auto& j) { return make_prefix(PrefixConfig::from_json(j)); }},
      {"bottleneck", "BOTTLENECK", "bottleneck adapters after attention/FFN (sequential or parallel)",
       [] { return BottleneckConfig{}.to_json(); },
       [](auto& j) { return make_bottleneck(BottleneckConfig::from_json(j)); }},
      {"adamix", "ADAMIX", "mixture of bottleneck adapters, random routes in training, averaged for inference",
       [] { return AdaMixConfig{}.to_json(); }, [](auto& j) { return make_adamix(AdaMixConfig::from_json(j)); }},
      {"adamix_lora", "ADAMIX_LORA", "mixture of LoRA modules, random routes in training, averaged for inference",
       [] { return AdaMixLoraConfig{}.to_json(); },
       [](auto& j) { return make_adamix_lora(AdaMixLoraConfig::from_json(j)); }},
      {"bitfit", "BITFIT", "train biases only", [] { return nlohmann::json::object(); },
       [](auto&) { return make_bitfit(); }},
      {"classifier_only", "CLASSIFIER_ONLY", "train the classifier head only", [] { return nlohmann::json::object(); },
       [](auto&) { return make_classifier_only(); }},
      {"full", "FULL_FINETUNING", "train every parameter", [] { return nlohmann::json::object(); },
       [](auto&) { return make_full_finetuning(); }},
      {"diff_pruning", "DIFF_PRUNING", "sparse learned diff of the base weights (L0 gates, projection, fixed mask)",
       [] { return DiffPruningConfig{}.to_json(); },
       [](auto& j) { return make_diff_pruning(DiffPruningConfig::from_json(j)); }},
  };
  return types;
}

const MethodType& method_type(const std::string& name) {
  std::vector<std::string> names;
  for (auto& t : method_types()) {
    if (t.name == name) return t;
    names.push_back(t.name);
  }
  fail("unknown method '{}' (methods: {})", name, fmt::join(names, ", "));
}

const MethodType& method_type_for_peft_type(const std::string& peft_type) {
  std::vector<std::string> names;
  for (auto& t : method_types()) {
    if (t.peft_type == peft_type) return t;
    names.push_back(t.peft_type);
  }
  fail("unsupported peft_type '{}' (supported: {})", peft_type, fmt::join(names, ", "));
}

std::shared_ptr<Method> make_method(const std::string& name, const nlohmann::json& config) {
  const MethodType& type = method_type(name);
  if (!config.is_null() && !config.is_object()) fail("{}: config must be a JSON object", name);
  const nlohmann::json defaults = type.defaults();
  if (config.is_object())
    for (auto& [key, value] : config.items())
      if (key != "type" && !defaults.contains(key)) {
        std::vector<std::string> keys;
        for (auto& [k, v] : defaults.items()) keys.push_back(k);
        fail("{}: unknown config key '{}' (valid keys: {})", name, key, keys.empty() ? "none" : fmt::format("{}", fmt::join(keys, ", ")));
      }
  return type.make(config.is_null() ? nlohmann::json::object() : config);
}

}  // namespace peft
