#include "peft/generate/chat_template.h"

#include <nlohmann/json.hpp>

#include "generate/chat_template_ast.h"
#include "generate/chat_template_eval.h"
#include "generate/chat_template_lexer.h"
#include "peft/error.h"

namespace peft {

namespace {

jinja::Value from_json(const nlohmann::ordered_json& j) {
  using jinja::Value;
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null:
      return Value(nullptr);
    case nlohmann::ordered_json::value_t::boolean:
      return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer:
      return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      const auto u = j.get<uint64_t>();
      return u <= static_cast<uint64_t>(INT64_MAX) ? Value(static_cast<int64_t>(u)) : Value(static_cast<double>(u));
    }
    case nlohmann::ordered_json::value_t::number_float:
      return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string:
      return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      jinja::ValueList items;
      for (const auto& e : j) items.push_back(from_json(e));
      return Value::list(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      jinja::DictData d;
      for (const auto& [k, v] : j.items()) d.entries.emplace_back(Value(k), from_json(v));
      return Value::dict(std::move(d));
    }
    default:
      fail("chat template variables: unsupported JSON value of type {}", j.type_name());
  }
}

std::string one_line(std::string s) {
  std::string out;
  for (char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c != '\r')
      out.push_back(c);
  }
  return out;
}

}  // namespace

std::string render_jinja_template(const std::string& template_source, const nlohmann::ordered_json& variables) {
  if (!variables.is_object()) fail("chat template variables must be a JSON object, got {}", variables.type_name());
  jinja::Template tmpl;
  try {
    tmpl = jinja::parse_template(template_source);
  } catch (const jinja::SyntaxError& e) {
    const auto [line, column] = jinja::line_column(jinja::normalize_source(template_source), e.pos);
    fail("chat template syntax error at line {}, column {}: {}", line, column, one_line(e.message));
  }
  jinja::DictData vars;
  for (const auto& [k, v] : variables.items()) vars.entries.emplace_back(jinja::Value(k), from_json(v));
  try {
    return jinja::render_template(tmpl, vars);
  } catch (const jinja::RenderError& e) {
    if (e.raised) fail("chat template error: {}", one_line(e.message));
    const auto [line, column] = jinja::line_column(tmpl.source, e.pos);
    fail("chat template error at line {}, column {}: {}", line, column, one_line(e.message));
  }
}

std::string render_chat_template(const std::string& template_source, const std::vector<ChatMessage>& messages,
                                 const ChatTemplateOptions& options) {
  nlohmann::ordered_json vars = nlohmann::ordered_json::object();
  vars["messages"] = nlohmann::ordered_json::array();
  for (const auto& m : messages) vars["messages"].push_back({{"role", m.role}, {"content", m.content}});
  vars["tools"] = nullptr;
  vars["documents"] = nullptr;
  vars["add_generation_prompt"] = options.add_generation_prompt;
  vars["bos_token"] = options.bos_token;
  vars["eos_token"] = options.eos_token;
  return render_jinja_template(template_source, vars);
}

}  // namespace peft
