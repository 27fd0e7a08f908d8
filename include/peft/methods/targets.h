#pragma once
// Which modules a method acts on, with PEFT's `target_modules` semantics:
//   a JSON string  -> a regular expression that must match the whole module path;
//   a JSON list    -> names that match a path exactly or its last components ("query" matches
//                     "bert.encoder.layer.0.attention.self.query", "output.dense" matches both
//                     "...attention.output.dense" and "...layer.0.output.dense").
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace peft {

struct TargetModules {
  std::vector<std::string> names;  // list form
  std::string regex;               // string form (non-empty: the regex is used, names ignored)

  static TargetModules list(std::vector<std::string> names);
  static TargetModules pattern(std::string regex);
  static TargetModules from_json(const nlohmann::json& j, const std::string& key);  // key names the option in errors
  nlohmann::json to_json() const;

  bool empty() const { return names.empty() && regex.empty(); }
  bool matches(const std::string& path) const;
  std::string describe() const;  // "[query, value]" or "regex '...'"
};

// The paths of `available` that `targets` selects, in order. When none match, throws a one-line
// peft::Error naming the option and listing the available module names (their last components).
// PEFT's defaults for a config that names no target_modules, by HF model_type
// (TRANSFORMERS_MODELS_TO_{LORA,IA3}_TARGET_MODULES_MAPPING): LoRA bert/roberta query+value, gpt2 c_attn,
// llama/mistral q_proj+v_proj; IA3 also the feed-forward output (bert output.dense, gpt2 mlp.c_proj,
// llama down_proj). Unknown types keep BERT's names.
TargetModules default_lora_targets(const std::string& model_type);
struct Ia3Targets {
  TargetModules target_modules, feedforward_modules;
};
Ia3Targets default_ia3_targets(const std::string& model_type);

// Whether `targets` selects any of `available` (a config's built-in default that fits no module of this
// architecture gives way to the model type's default).
bool selects_any(const TargetModules& targets, const std::vector<std::string>& available);

std::vector<std::string> select_targets(const TargetModules& targets, const std::vector<std::string>& available,
                                        const std::string& option);

}  // namespace peft
