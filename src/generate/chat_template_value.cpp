#include "generate/chat_template_value.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "generate/chat_template_text.h"

namespace peft::jinja {

void render_fail(std::string message) { throw RenderError{std::move(message)}; }

Value Value::undefined(std::string why) {
  Value v;
  v.str_ = std::move(why);
  return v;
}

Value Value::list(ValueList items) {
  Value v;
  v.type_ = Type::List;
  v.list_ = std::make_shared<const ValueList>(std::move(items));
  return v;
}

Value Value::tuple(ValueList items) {
  Value v = list(std::move(items));
  v.type_ = Type::Tuple;
  return v;
}

Value Value::dict(DictData items) {
  Value v;
  v.type_ = Type::Dict;
  v.dict_ = std::make_shared<DictData>(std::move(items));
  return v;
}

Value Value::make_namespace(DictData items) {
  Value v = dict(std::move(items));
  v.type_ = Type::Namespace;
  return v;
}

Value Value::function(std::string name, NativeFunction fn) {
  Value v;
  v.type_ = Type::Function;
  v.fn_ = std::make_shared<const std::pair<std::string, NativeFunction>>(std::move(name), std::move(fn));
  return v;
}

const ValueList& Value::items() const {
  static const ValueList empty;
  return list_ ? *list_ : empty;
}

const DictData& Value::dict() const {
  static const DictData empty;
  return dict_ ? *dict_ : empty;
}

DictData& Value::namespace_data() const { return *dict_; }

const std::string& Value::function_name() const { return fn_->first; }

Value Value::call(CallArgs& args) const { return fn_->second(args); }

bool Value::same_object(const Value& other) const {
  if (type_ != other.type_) return false;
  switch (type_) {
    case Type::List:
    case Type::Tuple:
      return list_ == other.list_;
    case Type::Dict:
    case Type::Namespace:
      return dict_ == other.dict_;
    case Type::Function:
      return fn_ == other.fn_;
    case Type::String:
      return str_ == other.str_;  // interned in CPython for the short strings templates use
    default:
      return equals(*this, other);
  }
}

const Value* DictData::find(const Value& key) const {
  for (const auto& [k, v] : entries) {
    if (equals(k, key)) return &v;
  }
  return nullptr;
}

void DictData::set(Value key, Value value) {
  for (auto& [k, v] : entries) {
    if (equals(k, key)) {
      v = std::move(value);
      return;
    }
  }
  entries.emplace_back(std::move(key), std::move(value));
}

const Value* CallArgs::get(size_t index, std::string_view name) const {
  if (index < positional.size()) return &positional[index];
  for (const auto& [k, v] : keywords) {
    if (k == name) return &v;
  }
  return nullptr;
}

Value CallArgs::get_or(size_t index, std::string_view name, Value fallback) const {
  const Value* v = get(index, name);
  return v ? *v : std::move(fallback);
}

void CallArgs::expect_at_most(size_t count, std::string_view what) const {
  if (positional.size() > count) {
    render_fail(fmt::format("{} takes at most {} argument(s) ({} given)", what, count, positional.size()));
  }
}

const char* type_name(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return "Undefined";
    case Value::Type::None:
      return "NoneType";
    case Value::Type::Bool:
      return "bool";
    case Value::Type::Int:
      return "int";
    case Value::Type::Float:
      return "float";
    case Value::Type::String:
      return "str";
    case Value::Type::List:
      return "list";
    case Value::Type::Tuple:
      return "tuple";
    case Value::Type::Dict:
      return "dict";
    case Value::Type::Namespace:
      return "Namespace";
    case Value::Type::Function:
      return "function";
  }
  return "object";
}

void fail_undefined(const Value& v) { render_fail(v.str().empty() ? "value is undefined" : v.str()); }

const Value& defined(const Value& v) {
  if (v.is_undefined()) fail_undefined(v);
  return v;
}

bool truthy(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
    case Value::Type::None:
      return false;
    case Value::Type::Bool:
    case Value::Type::Int:
      return v.as_int() != 0;
    case Value::Type::Float:
      return v.as_double() != 0.0;
    case Value::Type::String:
      return !v.str().empty();
    case Value::Type::List:
    case Value::Type::Tuple:
      return !v.items().empty();
    case Value::Type::Dict:
      return !v.dict().entries.empty();
    default:
      return true;
  }
}

bool equals(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_integer() && b.is_integer()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::Undefined:
    case Value::Type::None:
      return true;
    case Value::Type::String:
      return a.str() == b.str();
    case Value::Type::List:
    case Value::Type::Tuple: {
      const auto &x = a.items(), &y = b.items();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!equals(x[i], y[i])) return false;
      }
      return true;
    }
    case Value::Type::Dict: {
      const auto &x = a.dict().entries, &y = b.dict().entries;
      if (x.size() != y.size()) return false;
      for (const auto& [k, v] : x) {
        const Value* other = b.dict().find(k);
        if (!other || !equals(v, *other)) return false;
      }
      return true;
    }
    default:
      return a.same_object(b);
  }
}

bool less(const Value& a, const Value& b, const char* op) {
  defined(a);
  defined(b);
  if (a.is_number() && b.is_number()) {
    if (a.is_integer() && b.is_integer()) return a.as_int() < b.as_int();
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return a.str() < b.str();  // UTF-8 bytes sort as code points
  if (a.is_sequence() && a.type() == b.type()) {
    const auto &x = a.items(), &y = b.items();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less(x[i], y[i], op);
    }
    return x.size() < y.size();
  }
  render_fail(fmt::format("'{}' not supported between instances of '{}' and '{}'", op, type_name(a), type_name(b)));
}

namespace {

std::string repr_items(const ValueList& items, const char* open, const char* close, bool tuple) {
  std::string out = open;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ", ";
    out += repr(items[i]);
  }
  if (tuple && items.size() == 1) out += ",";
  return out + close;
}

std::string repr_dict(const DictData& d) {
  std::string out = "{";
  for (size_t i = 0; i < d.entries.size(); ++i) {
    if (i) out += ", ";
    out += repr(d.entries[i].first) + ": " + repr(d.entries[i].second);
  }
  return out + "}";
}

}  // namespace

std::string to_str(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return "";
    case Value::Type::String:
      return v.str();
    default:
      return repr(v);
  }
}

std::string repr(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return "Undefined";
    case Value::Type::None:
      return "None";
    case Value::Type::Bool:
      return v.as_int() ? "True" : "False";
    case Value::Type::Int:
      return std::to_string(v.as_int());
    case Value::Type::Float:
      return float_repr(v.as_double());
    case Value::Type::String:
      return string_repr(v.str());
    case Value::Type::List:
      return repr_items(v.items(), "[", "]", false);
    case Value::Type::Tuple:
      return repr_items(v.items(), "(", ")", true);
    case Value::Type::Dict:
      return repr_dict(v.dict());
    case Value::Type::Namespace:
      return "<Namespace " + repr_dict(v.dict()) + ">";
    case Value::Type::Function:
      return "<function " + v.function_name() + ">";
  }
  return "";
}

namespace {

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
  return float_repr(d);
}

std::string json_key(const Value& k, const JsonOptions& o) {
  std::string out;
  switch (k.type()) {
    case Value::Type::String:
      append_json_string(out, k.str(), o.ensure_ascii);
      return out;
    case Value::Type::Bool:
      append_json_string(out, k.as_int() ? "true" : "false", false);
      return out;
    case Value::Type::Int:
      append_json_string(out, std::to_string(k.as_int()), false);
      return out;
    case Value::Type::Float:
      append_json_string(out, json_float(k.as_double()), false);
      return out;
    case Value::Type::None:
      append_json_string(out, "null", false);
      return out;
    default:
      render_fail(fmt::format("keys must be str, int, float, bool or None, not {}", type_name(k)));
  }
}

void write_json(std::string& out, const Value& v, const JsonOptions& o, int level) {
  auto newline = [&](int depth) {
    if (!o.indent) return;
    out.push_back('\n');
    for (int i = 0; i < depth; ++i) out += *o.indent;
  };
  switch (v.type()) {
    case Value::Type::None:
      out += "null";
      return;
    case Value::Type::Bool:
      out += v.as_int() ? "true" : "false";
      return;
    case Value::Type::Int:
      out += std::to_string(v.as_int());
      return;
    case Value::Type::Float:
      out += json_float(v.as_double());
      return;
    case Value::Type::String:
      append_json_string(out, v.str(), o.ensure_ascii);
      return;
    case Value::Type::List:
    case Value::Type::Tuple: {
      const auto& items = v.items();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        newline(level + 1);
        write_json(out, items[i], o, level + 1);
      }
      newline(level);
      out.push_back(']');
      return;
    }
    case Value::Type::Dict: {
      std::vector<const std::pair<Value, Value>*> entries;
      for (const auto& e : v.dict().entries) entries.push_back(&e);
      if (entries.empty()) {
        out += "{}";
        return;
      }
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto* x, const auto* y) { return less(x->first, y->first); });
      }
      out.push_back('{');
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i) out += o.item_separator;
        newline(level + 1);
        out += json_key(entries[i]->first, o);
        out += o.key_separator;
        write_json(out, entries[i]->second, o, level + 1);
      }
      newline(level);
      out.push_back('}');
      return;
    }
    default:
      render_fail(fmt::format("Object of type {} is not JSON serializable", type_name(v)));
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonOptions& options) {
  std::string out;
  write_json(out, v, options, 0);
  return out;
}

ValueList iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return {};
    case Value::Type::List:
    case Value::Type::Tuple:
      return v.items();
    case Value::Type::Dict: {
      ValueList keys;
      for (const auto& e : v.dict().entries) keys.push_back(e.first);
      return keys;
    }
    case Value::Type::String: {
      ValueList chars;
      for (char32_t cp : decode_utf8(v.str())) {
        std::string c;
        append_utf8(c, cp);
        chars.emplace_back(std::move(c));
      }
      return chars;
    }
    default:
      render_fail(fmt::format("'{}' object is not iterable", type_name(v)));
  }
}

}  // namespace peft::jinja
