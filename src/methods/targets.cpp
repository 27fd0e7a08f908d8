#include "peft/methods/targets.h"

#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "peft/error.h"

namespace peft {

TargetModules TargetModules::list(std::vector<std::string> names) {
  TargetModules t;
  t.names = std::move(names);
  return t;
}

TargetModules TargetModules::pattern(std::string regex) {
  TargetModules t;
  t.regex = std::move(regex);
  return t;
}

TargetModules TargetModules::from_json(const nlohmann::json& j, const std::string& key) {
  if (j.is_string()) {
    const std::string re = j.get<std::string>();
    try {
      std::regex check(re);
    } catch (const std::regex_error& e) {
      fail("{}: invalid regular expression '{}': {}", key, re, e.what());
    }
    return pattern(re);
  }
  if (j.is_array()) {
    std::vector<std::string> names;
    for (auto& n : j) {
      if (!n.is_string() || n.get<std::string>().empty()) fail("{}: list entries must be non-empty strings", key);
      names.push_back(n.get<std::string>());
    }
    return list(std::move(names));
  }
  if (j.is_null()) return {};
  fail("{}: expected a string (regex) or a list of module names", key);
}

nlohmann::json TargetModules::to_json() const {
  if (!regex.empty()) return regex;
  if (names.empty()) return nullptr;
  return names;
}

bool TargetModules::matches(const std::string& path) const {
  if (!regex.empty()) return std::regex_match(path, std::regex(regex));
  for (auto& n : names) {
    if (path == n) return true;
    if (path.size() > n.size() && path.compare(path.size() - n.size(), n.size(), n) == 0 &&
        path[path.size() - n.size() - 1] == '.')
      return true;
  }
  return false;
}

std::string TargetModules::describe() const {
  if (!regex.empty()) return fmt::format("regex '{}'", regex);
  return fmt::format("[{}]", fmt::join(names, ", "));
}

std::vector<std::string> select_targets(const TargetModules& targets, const std::vector<std::string>& available,
                                        const std::string& option) {
  std::vector<std::string> out;
  if (!targets.regex.empty()) {
    std::regex re(targets.regex);
    for (auto& p : available)
      if (std::regex_match(p, re)) out.push_back(p);
  } else {
    for (auto& p : available)
      if (targets.matches(p)) out.push_back(p);
  }
  if (out.empty()) {
    // List short names (after "layer.N."), which is what users write in target lists.
    std::set<std::string> names;
    for (auto& p : available) {
      static const std::regex layer_part(R"(^.*\.layer\.\d+\.)");
      names.insert(std::regex_replace(p, layer_part, ""));
    }
    fail("{} {} matches no module; available: {}", option, targets.describe(), fmt::join(names, ", "));
  }
  return out;
}

bool selects_any(const TargetModules& targets, const std::vector<std::string>& available) {
  for (const auto& path : available)
    if (targets.matches(path)) return true;
  return false;
}

TargetModules default_lora_targets(const std::string& model_type) {
  if (model_type == "gpt2") return TargetModules::list({"c_attn"});
  if (model_type == "llama" || model_type == "mistral") return TargetModules::list({"q_proj", "v_proj"});
  return TargetModules::list({"query", "value"});
}

Ia3Targets default_ia3_targets(const std::string& model_type) {
  if (model_type == "gpt2") return {TargetModules::list({"c_attn", "mlp.c_proj"}), TargetModules::list({"mlp.c_proj"})};
  if (model_type == "llama" || model_type == "mistral")
    return {TargetModules::list({"k_proj", "v_proj", "down_proj"}), TargetModules::list({"down_proj"})};
  return {TargetModules::list({"key", "value", "output.dense"}), TargetModules::list({"output.dense"})};
}

}  // namespace peft
