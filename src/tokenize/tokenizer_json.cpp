#include "tokenize/tokenizer_json.h"

namespace peft::tok::tokenizer_json {
namespace {

std::vector<TemplatePiece> parse_template(const json& items, const json& specials, const std::string& path) {
  std::vector<TemplatePiece> pieces;
  if (!items.is_array()) fail("{}: TemplateProcessing template is not a list", path);
  for (const json& item : items) {
    if (item.contains("Sequence")) {
      const json& s = item["Sequence"];
      const std::string id = get_or<std::string>(s, "id", "A", path);
      if (id != "A" && id != "B") fail("{}: unknown template sequence '{}'", path, id);
      pieces.push_back({id == "A" ? TemplatePiece::SequenceA : TemplatePiece::SequenceB, {},
                        get_or<int64_t>(s, "type_id", 0, path)});
    } else if (item.contains("SpecialToken")) {
      const json& s = item["SpecialToken"];
      const std::string name = get_or<std::string>(s, "id", "", path);
      if (!specials.is_object() || !specials.contains(name))
        fail("{}: template special token '{}' is not in special_tokens", path, name);
      pieces.push_back({TemplatePiece::Special, get_or<std::vector<int64_t>>(specials[name], "ids", {}, path),
                        get_or<int64_t>(s, "type_id", 0, path)});
    } else {
      fail("{}: unknown TemplateProcessing item {}", path, item.dump());
    }
  }
  return pieces;
}

}  // namespace

const json& member(const json& j, const char* key) {
  static const json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

std::string type_of(const json& j, const std::string& path, const char* what) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string())
    fail("{}: {} has no 'type'", path, what);
  return j["type"].get<std::string>();
}

int64_t processing_token_id(const json& j, const char* key, const std::string& path) {
  const json& t = member(j, key);
  if (!t.is_array() || t.size() != 2 || !t[1].is_number_integer())
    fail("{}: post_processor '{}' must be [token, id]", path, key);
  return t[1].get<int64_t>();
}

TemplateProcessor parse_template_processing(const json& j, const std::string& path) {
  const json specials = j.value("special_tokens", json::object());
  return TemplateProcessor(parse_template(member(j, "single"), specials, path),
                           parse_template(member(j, "pair"), specials, path));
}

std::vector<AddedToken> parse_added_tokens(const json& j, const std::string& path) {
  std::vector<AddedToken> tokens;
  if (j.is_null()) return tokens;
  if (!j.is_array()) fail("{}: added_tokens is not a list", path);
  for (const json& t : j) {
    AddedToken a;
    a.content = get_or<std::string>(t, "content", "", path);
    a.id = get_or<int64_t>(t, "id", -1, path);
    if (a.content.empty() || a.id < 0) fail("{}: added token without content or id: {}", path, t.dump());
    a.special = get_or(t, "special", false, path);
    a.normalized = get_or(t, "normalized", !a.special, path);
    a.lstrip = get_or(t, "lstrip", false, path);
    a.rstrip = get_or(t, "rstrip", false, path);
    if (get_or(t, "single_word", false, path))
      fail("{}: added token '{}' has single_word=true, which is not supported", path, a.content);
    tokens.push_back(std::move(a));
  }
  return tokens;
}

}  // namespace peft::tok::tokenizer_json
