// Chat templates against transformers' apply_chat_template (fixtures from
// scripts/fixtures/make_chat_fixtures.py), plus jinja2's whitespace rules, expressions and errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "peft/error.h"
#include "peft/generate/chat_template.h"
#include "test_util.h"

namespace {

using nlohmann::ordered_json;

ordered_json load_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("missing fixture " + path.string() + " (run scripts/fixtures/make_chat_fixtures.py)");
  return ordered_json::parse(in);
}

// Conversations of plain role/content strings and no extra variables go through the ChatMessage API;
// the rest (tool calls, list content, tools, date_string) through the JSON one.
bool plain(const ordered_json& conversation) {
  if (conversation.contains("variables")) return false;
  return std::all_of(conversation["messages"].begin(), conversation["messages"].end(), [](const ordered_json& m) {
    return m.size() == 2 && m.contains("role") && m.contains("content") && m["content"].is_string();
  });
}

std::string render_case(const ordered_json& fixture, const ordered_json& conversation, bool add_generation_prompt) {
  const std::string& tmpl = fixture["template"].get_ref<const std::string&>();
  if (plain(conversation)) {
    std::vector<peft::ChatMessage> messages;
    for (const auto& m : conversation["messages"]) messages.push_back({m["role"], m["content"]});
    peft::ChatTemplateOptions options;
    options.add_generation_prompt = add_generation_prompt;
    options.bos_token = fixture["bos_token"];
    options.eos_token = fixture["eos_token"];
    return peft::render_chat_template(tmpl, messages, options);
  }
  ordered_json vars = {{"messages", conversation["messages"]},
                       {"tools", nullptr},
                       {"documents", nullptr},
                       {"add_generation_prompt", add_generation_prompt},
                       {"bos_token", fixture["bos_token"]},
                       {"eos_token", fixture["eos_token"]}};
  if (conversation.contains("variables")) {
    for (const auto& [k, v] : conversation["variables"].items()) vars[k] = v;
  }
  return peft::render_jinja_template(tmpl, vars);
}

std::string error_of(const std::string& tmpl, const ordered_json& vars = ordered_json::object()) {
  try {
    peft::render_jinja_template(tmpl, vars);
  } catch (const peft::Error& e) {
    return e.what();
  }
  return "(no error)";
}

ordered_json test_vars() { return {{"msgs", {{{"role", "user"}, {"c", "hi"}}, {{"role", "assistant"}, {"c", "yo"}}}}}; }

// Expected outputs rendered by jinja2 3.1.6 with transformers' environment.
const std::pair<const char*, const char*> kWhitespace[] = {
    {"a\n{% if true %}\nb\n{% endif %}\nc", "a\nb\nc"},
    {"a\n  {% if true %}\n  b\n  {% endif %}\nc\n", "a\n  b\nc"},
    {"a\n  {%+ if true %}\n  b\n  {%- endif %}  \nc\n\n", "a\n    b  \nc\n"},
    {"  {{ 'x' }}  \n  {% if true -%}   \n  y  {%- endif %}", "  x  \ny"},
    {"{% for i in [1,2] %}\n  - {{ i }}\n{% endfor %}\n", "  - 1\n  - 2\n"},
    {"{% for i in [1,2] -%}\n  - {{ i }}\n{%- endfor %}", "- 1- 2"},
    {"x {#- comment -#} y", "xy"},
    {"x\n  {# comment #}\ny", "x\ny"},
    {"x\n  {# comment +#}\ny", "x\n\ny"},
    {"  {% raw %}{{ not }}{% endraw %}\nafter", "{{ not }}after"},
    {"a {%- raw -%}  {{ x }}  {%- endraw -%}  b", "a{{ x }}b"},
    {"line1\r\nline2\r{% if true %}\r\nz{% endif %}\n", "line1\nline2\nz"},
    {"{{ 'a' -}}\n\n   {{ 'b' }}", "ab"},
    {"{%- if true %}  a{% if true +%}\n{% endif %}{% endif -%}  \n\t b", "  a\nb"},
    {"\t{% if true %}tab{% endif %}", "tab"},
    {"x {% if true %}y{% endif %}", "x y"},
    {"{% set x %}\n  inner {{ 1 }}\n{% endset %}[{{ x }}]", "[  inner 1\n]"},
    {"{% if true %}\n\n{% endif %}end\n", "\nend"},
};

const std::pair<const char*, const char*> kExpressions[] = {
    {"{% set ns = namespace(found=false, n=0) %}{% for m in msgs %}{% set ns.n = ns.n + 1 %}{% if m.role == "
     "'assistant' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}",
     "True 2"},
    {"{% set x = 0 %}{% for i in [1,2,3] %}{% set x = i %}{% endfor %}{{ x }}", "0"},
    {"{% for i in [1,2,3] if i != 2 %}{{ loop.index }}/{{ loop.length }}{{ '' if loop.last else ',' }}{% else %}none{% "
     "endfor %}",
     "1/2,2/2"},
    {"{% for m in msgs[1:] %}{{ m['role'] }}{% endfor %}|{{ msgs[-1].c }}|{{ 'hello'[::-1] }}|{{ [1,2,3][:-1] }}",
     "assistant|yo|olleh|[1, 2]"},
    {"{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='c')|join(',') }} {{ msgs|rejectattr('role', "
     "'equalto', 'user')|list|length }}",
     "hi 1"},
    {"{{ '  Hi  '|trim }}|{{ 'hi there'|title }}|{{ 'hi'|upper }}|{{ 'HI'|lower }}|{{ 'hI'|capitalize }}|{{ "
     "'a-b'|replace('-', '+') }}",
     "Hi|Hi There|HI|hi|Hi|a+b"},
    {"{{ {'a': 'é', 'b': [1, 2.5, none, true]}|tojson }} {{ {'k': 1}|tojson(indent=2) }}",
     "{\"a\": \"é\", \"b\": [1, 2.5, null, true]} {\n  \"k\": 1\n}"},
    {"{{ x is defined }} {{ x|default('d') }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is "
     "iterable }} {{ 3 is odd }}",
     "False d True True True True True"},
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 / 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 ~ 2 }} {{ 'a' + 'b' }} {{ 0.1 + 0.2 }}",
     "3 -4 3.5 2 1024 12 ab 0.30000000000000004"},
    {"{{ 'a' if false else 'b' }} {{ 'y' in 'xyz' }} {{ 'q' not in ['a'] }} {{ 1 < 2 <= 2 }} {{ not false and true or "
     "false }}",
     "b True True True True"},
    {"{{ msgs[0].get('role') }} {{ msgs[0].get('x', 'dflt') }} {{ msgs[0].keys()|list }} {% for k, v in "
     "msgs[0].items() %}{{ k }}={{ v }};{% endfor %}",
     "user dflt ['role', 'c'] role=user;c=hi;"},
    {"{{ ' a  b '.split() }} {{ 'a,b'.split(',') }} {{ ' x '.strip() }}|{{ 'xx'.lstrip('x') }}|{{ 'ab'.startswith('a') "
     "}} {{ 'ab'.endswith('a') }}",
     "['a', 'b'] ['a', 'b'] x||True False"},
    {"{{ [1, 'a', none, true, 1.5] }} {{ (1,) }} {{ none }} {{ true }} {{ 1e20 }} {{ 3.0 }}",
     "[1, 'a', None, True, 1.5] (1,) None True 1e+20 3.0"},
    {"{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', "
     "punct='?') }}",
     "Hi Ann! Hi Bob?"},
    {"{{ 'a\\nb\\n\\nc'|indent(2) }}|{{ 'héllo'|length }}|{{ ['b', 'A', 'c']|sort|first }}|{{ [3, 1]|max }}",
     "a\n  b\n\n  c|5|A|3"},
    {"{% for i in range(6) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% "
     "endfor %}",
     "023"},
    {"{{ undefined_var }}|{{ undefined_var|length }}|{{ [1, 2][5] }}|{{ msgs[0].nope }}|{{ msgs[0].nope is defined }}",
     "|0|||False"},
};

}  // namespace

TEST(ChatTemplate, MatchesTransformersFixtures) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(peft::test::fixtures_dir() / "chat")) {
    if (entry.path().extension() == ".json") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 12u) << "run scripts/fixtures/make_chat_fixtures.py";
  size_t checked = 0, errors = 0;
  for (const auto& path : files) {
    const ordered_json fixture = load_json(path);
    for (const auto& c : fixture["cases"]) {
      const std::string label = c["conversation"];
      const bool agp = c["add_generation_prompt"];
      SCOPED_TRACE(fixture["name"].get<std::string>() + " / " + label + (agp ? " / generation prompt" : ""));
      const ordered_json& conversation = fixture["conversations"][label];
      if (c.contains("expected")) {
        EXPECT_EQ(render_case(fixture, conversation, agp), c["expected"].get<std::string>());
      } else {
        ++errors;
        try {
          render_case(fixture, conversation, agp);
          ADD_FAILURE() << "expected an error: " << c["error"];
        } catch (const peft::Error& e) {
          const std::string message = e.what();
          EXPECT_EQ(message.find('\n'), std::string::npos) << message;
          if (c["raised"].get<bool>()) {
            EXPECT_EQ(message, "chat template error: " + c["error"].get<std::string>());
          }
        }
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 200u);
  EXPECT_GT(errors, 10u);
}

TEST(ChatTemplate, SmolLM2WithChatMessages) {
  const std::string smollm2 =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
      "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
      "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  const std::string out = peft::render_chat_template(smollm2, {{"user", "Hi"}}, {});
  EXPECT_EQ(out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, WhitespaceControl) {
  for (const auto& [tmpl, expected] : kWhitespace) {
    SCOPED_TRACE(tmpl);
    EXPECT_EQ(peft::render_jinja_template(tmpl, test_vars()), expected);
  }
}

TEST(ChatTemplate, Expressions) {
  for (const auto& [tmpl, expected] : kExpressions) {
    SCOPED_TRACE(tmpl);
    EXPECT_EQ(peft::render_jinja_template(tmpl, test_vars()), expected);
  }
}

TEST(ChatTemplate, VariablesAsTransformersPassesThem) {
  peft::ChatTemplateOptions options;
  options.add_generation_prompt = false;
  options.bos_token = "<s>";
  options.eos_token = "</s>";
  const std::string out = peft::render_chat_template(
      "{{ tools is none }} {{ documents is defined }} {{ bos_token }}{{ eos_token }} {{ add_generation_prompt }} "
      "{{ messages|length }} {{ messages[0].role }}",
      {{"user", "x"}}, options);
  EXPECT_EQ(out, "True True <s></s> False 1 user");
}

TEST(ChatTemplate, StrftimeNowUsesTheLocalDate) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char year[16];
  std::strftime(year, sizeof year, "%Y", &local);
  EXPECT_EQ(peft::render_jinja_template("{{ strftime_now('%Y') }}", ordered_json::object()), year);
}

TEST(ChatTemplate, SyntaxErrorsNameLineAndColumn) {
  const std::pair<const char*, const char*> cases[] = {
      {"{% if x %}abc", "line 1, column 14: unexpected end of template"},
      {"Hello\n{{ 1 + }}", "line 2, column 8: unexpected 'end of print statement'"},
      {"a\n  {% for x in %}{% endfor %}", "line 2, column 15: expected an expression"},
      {"{{ x | nofilter }}", "line 1, column 8: no filter named 'nofilter'"},
      {"{{ x is nosuchtest }}", "line 1, column 9: no test named 'nosuchtest'"},
      {"{% include 'other.jinja' %}", "line 1, column 4: unsupported tag 'include'"},
      {"x\r\n{{ (1, 2 }}", "line 2, column 10: unexpected '}', expected ')'"},
      {"{{ 'é' ~ ) }}", "line 1, column 10: unexpected ')'"},
      {"{# no end", "line 1, column 1: Missing end of comment tag"},
      {"{% endif %}", "line 1, column 4: unexpected 'endif'"},
      {"{% break %}", "line 1, column 4: 'break' outside of a loop"},
      {"{{ 'open }}", "line 1, column 4: unterminated string literal"},
      {"{% frobnicate %}", "line 1, column 4: unknown tag 'frobnicate'"},
  };
  for (const auto& [tmpl, expected] : cases) {
    const std::string message = error_of(tmpl);
    EXPECT_EQ(message.rfind("chat template syntax error at ", 0), 0u) << message;
    EXPECT_NE(message.find(expected), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(ChatTemplate, RuntimeErrors) {
  EXPECT_EQ(error_of("{{ raise_exception('Bad role: ' ~ 'x') }}"), "chat template error: Bad role: x");
  EXPECT_EQ(error_of("{{ raise_exception('two\nlines') }}"), "chat template error: two\\nlines");
  EXPECT_EQ(error_of("ok\n{{ foo.bar }}"), "chat template error at line 2, column 7: 'foo' is undefined");
  EXPECT_EQ(error_of("{{ messages[0]['role'] }}", {{"messages", ordered_json::array()}}),
            "chat template error at line 1, column 15: list object has no element 0");
  EXPECT_NE(error_of("{{ [1] + 'a' }}").find("can only concatenate list"), std::string::npos);
  EXPECT_NE(error_of("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
  EXPECT_NE(error_of("{{ [1].append(2) }}").find("unsafe"), std::string::npos);
  EXPECT_NE(error_of("{% set x.y = 1 %}").find("non-namespace"), std::string::npos);
  EXPECT_NE(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("recursion"), std::string::npos);
  EXPECT_THROW(peft::render_jinja_template("x", ordered_json::array()), peft::Error);
}
