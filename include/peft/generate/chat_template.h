#pragma once
// Chat templates rendered as transformers' tokenizer.apply_chat_template(messages, tokenize=False)
// renders them: a self-contained interpreter for the Jinja subset chat templates use, with jinja2's
// sandboxed environment settings (trim_blocks, lstrip_blocks, loop controls), transformers' globals
// (raise_exception, strftime_now) and its tojson. docs/chat_templates.md lists what is supported.
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace peft {

struct ChatMessage {
  std::string role, content;
};

struct ChatTemplateOptions {
  bool add_generation_prompt = true;
  std::string bos_token, eos_token;
};

// Renders `template_source` for `messages` with the variables transformers passes: messages,
// add_generation_prompt, bos_token, eos_token, tools=None, documents=None. Throws peft::Error with a
// one-line message on a syntax error (naming line and column), an unsupported construct, a runtime
// error, or raise_exception() called by the template (with its message).
std::string render_chat_template(const std::string& template_source, const std::vector<ChatMessage>& messages,
                                 const ChatTemplateOptions& options);

// The same with every template variable given as one JSON object (key order is kept, as Python dicts
// keep it): messages with tool_calls or list content, tools, documents, date_string, ... Nothing is
// added, so pass tools / documents as null to mirror transformers.
std::string render_jinja_template(const std::string& template_source, const nlohmann::ordered_json& variables);

}  // namespace peft
