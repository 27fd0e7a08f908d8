#include "peft/methods/spec.h"

#include "peft/error.h"
#include "peft/methods/registry.h"

namespace peft {
namespace {

using nlohmann::json;

// Published defaults. Unified-view recipes (He et al. 2022, their code): MAM = prefix l=30 with a
// mid-800 MLP + parallel FFN adapter r=512, s=4, ReLU, LoRA-style init. Houlsby / Pfeiffer use
// bottleneck 64 here (the paper's ablations use up to 200); LoRA: r=8, alpha=8 on query/value
// (Hu et al. RoBERTa-base GLUE). Prefix: l=200, mid 512 (Li & Liang; the unified view's baseline).
const std::vector<std::pair<std::string, std::vector<MethodSpecItem>>>& presets() {
  static const std::vector<std::pair<std::string, std::vector<MethodSpecItem>>> table = {
      {"houlsby",
       {{"bottleneck", json{{"placement", "both"}, {"insertion", "sequential"}, {"composition", "add"}, {"r", 64},
                            {"activation", "relu"}, {"init", "near_identity"}}}}},
      {"pfeiffer",
       {{"bottleneck", json{{"placement", "ffn"}, {"insertion", "sequential"}, {"composition", "add"}, {"r", 64},
                            {"activation", "relu"}, {"init", "near_identity"}}}}},
      {"lora",
       {{"lora", json{{"r", 8}, {"lora_alpha", 8}, {"lora_dropout", 0.1}}}}},  // targets: the model type's default
      {"prefix", {{"prefix", json{{"num_virtual_tokens", 200}, {"prefix_projection", true}, {"encoder_hidden_size", 512}}}}},
      {"parallel",
       {{"bottleneck", json{{"placement", "ffn"}, {"insertion", "parallel"}, {"composition", "add"}, {"r", 512},
                            {"activation", "relu"}, {"init", "lora"}}}}},
      {"scaled_parallel",
       {{"bottleneck", json{{"placement", "ffn"}, {"insertion", "parallel"}, {"composition", "scaled"},
                            {"scaling", 4.0}, {"r", 512}, {"activation", "relu"}, {"init", "lora"}}}}},
      {"mam",
       {{"prefix", json{{"num_virtual_tokens", 30}, {"prefix_projection", true}, {"encoder_hidden_size", 800}}},
        {"bottleneck", json{{"placement", "ffn"}, {"insertion", "parallel"}, {"composition", "scaled"},
                            {"scaling", 4.0}, {"r", 512}, {"activation", "relu"}, {"init", "lora"}}}}},
      // AdaMix (Wang et al. 2022; docs/adamix.md): M = 4, adapter after the FFN sharing the up
      // projection, bottleneck 24 = BERT-base's 48 scaled to hidden 384; LoRA r 4, alpha 32, share B.
      {"adamix",
       {{"adamix", json{{"num_experts", 4}, {"r", 24}, {"share", "up"}, {"placement", "ffn"},
                        {"insertion", "sequential"}, {"activation", "relu"}, {"consistency_weight", 1.0}}}}},
      {"adamix_lora",
       {{"adamix_lora", json{{"num_experts", 4}, {"r", 4}, {"lora_alpha", 32}, {"lora_dropout", 0.1}, {"share", "B"},
                             {"consistency_weight", 1.0}}}}},
  };
  return table;
}

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      out.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  return out;
}

json parse_value(const std::string& key, const std::string& text) {
  // Module lists: bare text is a list of names (like PEFT's list form); a quoted string is a regex.
  const bool module_list = key == "target_modules" || key == "feedforward_modules";
  if (module_list && !text.empty() && text.front() != '"') {
    json list = json::array();
    for (auto& part : split(text, '|')) list.push_back(part);
    return list;
  }
  json v = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!v.is_discarded() && !v.is_object() && !v.is_array()) return v;  // 4, 0.1, true, "a quoted regex"
  if (text.find('|') != std::string::npos) {
    json list = json::array();
    for (auto& part : split(text, '|')) list.push_back(part);
    return list;
  }
  return text;  // bare text is a string
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (auto& [name, items] : presets()) names.push_back(name);
  return names;
}

std::vector<MethodSpecItem> preset(const std::string& name) {
  for (auto& [n, items] : presets())
    if (n == name) return items;
  fail("unknown preset '{}' (presets: {})", name, fmt::join(preset_names(), ", "));
}

std::vector<MethodSpecItem> parse_method_spec(const std::string& spec) {
  std::vector<MethodSpecItem> out;
  if (trim(spec).empty()) fail("empty method spec");
  for (auto& item_text : split(spec, '+')) {
    const size_t colon = item_text.find(':');
    const std::string name = trim(item_text.substr(0, colon));
    json overrides = json::object();
    if (colon != std::string::npos)
      for (auto& kv : split(item_text.substr(colon + 1), ',')) {
        const size_t eq = kv.find('=');
        if (eq == std::string::npos || trim(kv.substr(0, eq)).empty())
          fail("method spec '{}': expected KEY=VALUE, got '{}'", spec, kv);
        overrides[trim(kv.substr(0, eq))] = parse_value(trim(kv.substr(0, eq)), trim(kv.substr(eq + 1)));
      }
    // A preset name wins over a method type of the same name ("lora", "prefix"); its defaults are the published ones.
    bool is_preset = false;
    for (auto& p : preset_names()) is_preset |= p == name;
    std::vector<MethodSpecItem> items = is_preset ? preset(name) : std::vector<MethodSpecItem>{{name, json::object()}};
    if (!is_preset) method_type(name);  // throws listing the known names
    for (auto& [key, value] : overrides.items()) {
      bool used = false;
      for (auto& item : items)
        if (items.size() == 1 || method_type(item.type).defaults().contains(key)) {
          item.config[key] = value;
          used = true;
        }
      if (!used) fail("method spec '{}': no method of preset '{}' has the key '{}'", spec, name, key);
    }
    out.insert(out.end(), items.begin(), items.end());
  }
  return out;
}

std::vector<MethodSpecItem> method_items_from_json(const json& j) {
  auto one = [](const json& m) {
    if (!m.is_object() || !m.contains("type") || !m["type"].is_string())
      fail("method config: each method needs a \"type\" (e.g. {{\"type\": \"lora\", \"r\": 8}})");
    json config = m;
    config.erase("type");
    return MethodSpecItem{m["type"].get<std::string>(), config};
  };
  std::vector<MethodSpecItem> out;
  if (j.is_object() && j.contains("methods")) {
    if (!j["methods"].is_array()) fail("method config: \"methods\" must be a list");
    for (auto& m : j["methods"]) out.push_back(one(m));
  } else {
    out.push_back(one(j));
  }
  return out;
}

std::vector<std::shared_ptr<Method>> make_methods(const std::vector<MethodSpecItem>& items) {
  std::vector<std::shared_ptr<Method>> out;
  for (auto& item : items) out.push_back(make_method(item.type, item.config));
  return out;
}

}  // namespace peft
