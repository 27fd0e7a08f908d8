#pragma once
// Method specs as written on the command line, and the named presets.
//
//   SPEC  := ITEM ("+" ITEM)*
//   ITEM  := NAME [":" KEY "=" VALUE ("," KEY "=" VALUE)*]
//   NAME  := a method type (lora, ia3, prefix, bottleneck, bitfit, classifier_only, full) or a preset
//   VALUE := JSON scalar (4, 0.1, true, "x") or bare text; bare "a|b|c" is a list of strings.
//            target_modules / feedforward_modules: bare text is a list of names (query|value), a
//            quoted string is PEFT's full-match regex (target_modules=".*(key|value)")
// e.g. "lora:r=4,target_modules=query|value", "prefix:num_virtual_tokens=10+bottleneck:r=16", "mam".
// Presets (published defaults, see docs/methods.md): houlsby, pfeiffer, lora, prefix, parallel,
// scaled_parallel, mam, adamix, adamix_lora. Overrides on a preset apply to its items that have the key.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/methods/method.h"

namespace peft {

struct MethodSpecItem {
  std::string type;       // registry name
  nlohmann::json config;  // overrides of the defaults
};

std::vector<std::string> preset_names();
// A preset's items; throws for an unknown name.
std::vector<MethodSpecItem> preset(const std::string& name);

// Parses SPEC into items (presets expanded, overrides applied).
std::vector<MethodSpecItem> parse_method_spec(const std::string& spec);

// Items from a JSON file's content: {"methods": [{"type": ..., ...}, ...]} or one {"type": ..., ...}.
std::vector<MethodSpecItem> method_items_from_json(const nlohmann::json& j);

// Builds (validated) methods from items; unknown keys are errors.
std::vector<std::shared_ptr<Method>> make_methods(const std::vector<MethodSpecItem>& items);

}  // namespace peft
