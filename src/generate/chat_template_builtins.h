#pragma once
// What a chat template can do with values: operators, attribute / item access with Python's methods
// (str.strip, dict.get, ...) under jinja2's immutable sandbox, the built-in filters and tests, and the
// globals transformers provides.
#include <string>
#include <string_view>

#include "generate/chat_template_value.h"

namespace peft::jinja {

// Operators; `op` is the template's spelling: + - * / // % ** ~
Value binary_op(const std::string& op, const Value& a, const Value& b);
Value negate(const Value& v);
// Python's `format % args` (printf-style); args is a tuple or a single value.
std::string percent_format(const std::string& format, const Value& args);
bool contains(const Value& container, const Value& item);  // item in container

// obj.name (Python attribute first, then item) and obj[key] (item first, then attribute); missing
// ones are Undefined, as jinja2's getattr / getitem make them.
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

bool has_filter(std::string_view name);
bool has_test(std::string_view name);
Value apply_filter(const std::string& name, const Value& input, CallArgs& args);
bool apply_test(const std::string& name, const Value& input, CallArgs& args);

// range, dict, namespace, joiner, cycler, raise_exception, strftime_now.
void add_globals(DictData& globals);

}  // namespace peft::jinja
