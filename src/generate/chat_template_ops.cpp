// Operators, attribute / item access and the Python methods templates call on str, dict and list.
// ImmutableSandboxedEnvironment (transformers' choice) refuses methods that mutate lists and dicts
// and attributes starting with an underscore.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "generate/chat_template_builtins.h"
#include "generate/chat_template_text.h"

namespace peft::jinja {

namespace {

[[noreturn]] void unsupported_operands(const std::string& op, const Value& a, const Value& b) {
  if (a.is_string() || a.is_sequence()) {
    if (op == "+") {
      render_fail(fmt::format("can only concatenate {} (not \"{}\") to {}", type_name(a), type_name(b), type_name(a)));
    }
  }
  render_fail(fmt::format("unsupported operand type(s) for {}: '{}' and '{}'", op, type_name(a), type_name(b)));
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value(std::move(out));
  }
  ValueList out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.items().begin(), seq.items().end());
  return seq.is(Value::Type::Tuple) ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

// One printf-style conversion of Python's `str % args`.
std::string format_one(const std::string& spec, char conv, const Value& v) {
  char buf[512];
  auto number = [&]() {
    if (!v.is_number()) render_fail(fmt::format("%{} format: a real number is required, not {}", conv, type_name(v)));
  };
  switch (conv) {
    case 's':
    case 'r': {
      const std::string s = conv == 's' ? to_str(v) : repr(v);
      std::snprintf(buf, sizeof buf, ("%" + spec + "s").c_str(), s.c_str());
      return s.size() >= sizeof buf - 1 ? s : std::string(buf);
    }
    case 'd':
    case 'i':
    case 'x':
    case 'X':
    case 'o': {
      number();
      const long long i = v.is_integer() ? v.as_int() : static_cast<long long>(v.as_double());
      const char c = conv == 'i' ? 'd' : conv;
      std::snprintf(buf, sizeof buf, ("%" + spec + "ll" + c).c_str(), i);
      return buf;
    }
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
      number();
      std::snprintf(buf, sizeof buf, ("%" + spec + conv).c_str(), v.as_double());
      return buf;
    case 'c':
      if (v.is_string()) return v.str();
      if (v.is_integer()) {
        std::string out;
        append_utf8(out, static_cast<char32_t>(v.as_int()));
        return out;
      }
      break;
    default:
      break;
  }
  render_fail(fmt::format("unsupported format character '{}'", conv));
}

}  // namespace

std::string percent_format(const std::string& format, const Value& args) {
  const ValueList items = args.is(Value::Type::Tuple) ? args.items() : ValueList{args};
  std::string out;
  size_t next = 0;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    size_t j = i + 1;
    while (j < format.size() && std::string_view("-+ #0123456789.").find(format[j]) != std::string_view::npos) ++j;
    if (j >= format.size()) render_fail("incomplete format");
    const char conv = format[j];
    if (conv == '%') {
      out.push_back('%');
    } else {
      if (next >= items.size()) render_fail("not enough arguments for format string");
      out += format_one(format.substr(i + 1, j - i - 1), conv, items[next++]);
    }
    i = j;
  }
  if (next < items.size() && args.is(Value::Type::Tuple)) {
    render_fail("not all arguments converted during string formatting");
  }
  return out;
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  defined(a);
  defined(b);
  const bool ints = a.is_integer() && b.is_integer();
  const bool numbers = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) return Value(a.as_int() + b.as_int());
    if (numbers) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
    if (a.is_sequence() && a.type() == b.type()) {
      ValueList out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return a.is(Value::Type::Tuple) ? Value::tuple(std::move(out)) : Value::list(std::move(out));
    }
  } else if (op == "-") {
    if (ints) return Value(a.as_int() - b.as_int());
    if (numbers) return Value(a.as_double() - b.as_double());
  } else if (op == "*") {
    if (ints) return Value(a.as_int() * b.as_int());
    if (numbers) return Value(a.as_double() * b.as_double());
    if ((a.is_string() || a.is_sequence()) && b.is_integer()) return repeat(a, b.as_int());
    if (a.is_integer() && (b.is_string() || b.is_sequence())) return repeat(b, a.as_int());
  } else if (op == "/") {
    if (numbers) {
      if (b.as_double() == 0.0) render_fail("division by zero");
      return Value(a.as_double() / b.as_double());
    }
  } else if (op == "//") {
    if (ints) {
      if (b.as_int() == 0) render_fail("integer division or modulo by zero");
      return Value(floor_div(a.as_int(), b.as_int()));
    }
    if (numbers) {
      if (b.as_double() == 0.0) render_fail("float floor division by zero");
      return Value(std::floor(a.as_double() / b.as_double()));
    }
  } else if (op == "%") {
    if (ints) {
      if (b.as_int() == 0) render_fail("integer modulo by zero");
      return Value(py_mod(a.as_int(), b.as_int()));
    }
    if (numbers) {
      if (b.as_double() == 0.0) render_fail("float modulo");
      double r = std::fmod(a.as_double(), b.as_double());
      if (r != 0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
      return Value(r);
    }
    if (a.is_string()) return Value(percent_format(a.str(), b));
  } else if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t r = 1;
      for (int64_t i = 0; i < b.as_int(); ++i) r *= a.as_int();
      return Value(r);
    }
    if (numbers) return Value(std::pow(a.as_double(), b.as_double()));
  }
  unsupported_operands(op, a, b);
}

Value negate(const Value& v) {
  defined(v);
  if (v.is_integer()) return Value(-v.as_int());
  if (v.is(Value::Type::Float)) return Value(-v.as_double());
  render_fail(fmt::format("bad operand type for unary -: '{}'", type_name(v)));
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::Undefined:
      return false;
    case Value::Type::String:
      if (!item.is_string()) {
        render_fail(fmt::format("'in <string>' requires string as left operand, not {}", type_name(item)));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Type::List:
    case Value::Type::Tuple:
      for (const Value& v : container.items()) {
        if (equals(v, item)) return true;
      }
      return false;
    case Value::Type::Dict:
      return container.dict().find(item) != nullptr;
    default:
      render_fail(fmt::format("argument of type '{}' is not iterable", type_name(container)));
  }
}

namespace {

std::string object_type(const Value& obj) { return obj.is_none() ? "None" : fmt::format("{} object", type_name(obj)); }

Value missing_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(fmt::format("'{}' has no attribute '{}'", object_type(obj), name));
}

Value missing_item(const Value& obj, const Value& key) {
  if (key.is_string()) return missing_attribute(obj, key.str());
  return Value::undefined(fmt::format("{} has no element {}", object_type(obj), repr(key)));
}

// ---- str methods ----

std::u32string u32(const Value& v) { return decode_utf8(v.str()); }

const std::string& string_arg(const CallArgs& args, size_t i, const char* name, const char* method) {
  const Value* v = args.get(i, name);
  if (!v || !v->is_string()) {
    render_fail(fmt::format("{}() argument must be str, not {}", method, v ? type_name(*v) : "nothing"));
  }
  return v->str();
}

ValueList split_whitespace(const std::u32string& s, int64_t maxsplit, bool from_right) {
  std::vector<std::u32string> parts;
  if (!from_right) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && is_py_space(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        size_t end = s.size();
        while (end > i && is_py_space(s[end - 1])) --end;
        parts.push_back(s.substr(i, end - i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !is_py_space(s[j])) ++j;
      parts.push_back(s.substr(i, j - i));
      i = j;
    }
  } else {
    size_t i = s.size();
    while (true) {
      while (i > 0 && is_py_space(s[i - 1])) --i;
      if (i == 0) break;
      if (maxsplit >= 0 && static_cast<int64_t>(parts.size()) == maxsplit) {
        size_t begin = 0;
        while (begin < i && is_py_space(s[begin])) ++begin;
        parts.push_back(s.substr(begin, i - begin));
        break;
      }
      size_t j = i;
      while (j > 0 && !is_py_space(s[j - 1])) --j;
      parts.push_back(s.substr(j, i - j));
      i = j;
    }
    std::reverse(parts.begin(), parts.end());
  }
  ValueList out;
  for (const auto& p : parts) out.emplace_back(encode_utf8(p));
  return out;
}

ValueList split_on(const std::string& s, const std::string& sep, int64_t maxsplit, bool from_right) {
  if (sep.empty()) render_fail("empty separator");
  std::vector<std::string> parts;
  if (!from_right) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      const size_t at = s.find(sep, start);
      if (at == std::string::npos) break;
      parts.push_back(s.substr(start, at - start));
      start = at + sep.size();
    }
    parts.push_back(s.substr(start));
  } else {
    size_t end = s.size();
    while (maxsplit < 0 || static_cast<int64_t>(parts.size()) < maxsplit) {
      if (end < sep.size()) break;
      const size_t at = s.rfind(sep, end - sep.size());
      if (at == std::string::npos) break;
      parts.push_back(s.substr(at + sep.size(), end - at - sep.size()));
      end = at;
    }
    parts.push_back(s.substr(0, end));
    std::reverse(parts.begin(), parts.end());
  }
  ValueList out;
  for (auto& p : parts) out.emplace_back(std::move(p));
  return out;
}

std::string replace_all(const std::string& s, const std::string& old, const std::string& replacement, int64_t count) {
  std::string out;
  if (old.empty()) {  // Python inserts the replacement around every code point
    const std::u32string cps = decode_utf8(s);
    int64_t done = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || done < count) {
        out += replacement;
        ++done;
      }
      if (i < cps.size()) append_utf8(out, cps[i]);
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t at = s.find(old, start);
    if (at == std::string::npos) break;
    out.append(s, start, at - start);
    out += replacement;
    start = at + old.size();
    ++done;
  }
  out.append(s, start, std::string::npos);
  return out;
}

bool affix_matches(const Value& self, const Value& affix, bool prefix) {
  auto one = [&](const Value& a) {
    if (!a.is_string())
      render_fail(fmt::format("{} first arg must be str or a tuple of str, not {}", prefix ? "startswith" : "endswith",
                              type_name(a)));
    const std::string& s = self.str();
    const std::string& x = a.str();
    if (x.size() > s.size()) return false;
    return prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (affix.is(Value::Type::Tuple)) {
    for (const Value& a : affix.items()) {
      if (one(a)) return true;
    }
    return false;
  }
  return one(affix);
}

std::string pad(const std::u32string& s, int64_t width, char32_t fill,
                int where) {  // where: -1 left, 0 center, 1 right
  const int64_t n = static_cast<int64_t>(s.size());
  if (width <= n) return encode_utf8(s);
  const int64_t total = width - n;
  int64_t left = where < 0 ? 0 : where > 0 ? total : total / 2 + (total & width & 1);
  std::u32string out(static_cast<size_t>(left), fill);
  out += s;
  out += std::u32string(static_cast<size_t>(total - left), fill);
  return encode_utf8(out);
}

int64_t int_arg(const CallArgs& args, size_t i, const char* name, int64_t fallback) {
  const Value* v = args.get(i, name);
  if (!v || v->is_none()) return fallback;
  if (!v->is_integer()) render_fail(fmt::format("'{}' object cannot be interpreted as an integer", type_name(*v)));
  return v->as_int();
}

char32_t fill_arg(const CallArgs& args, size_t i) {
  const Value* v = args.get(i, "fillchar");
  if (!v) return ' ';
  const std::u32string f = v->is_string() ? decode_utf8(v->str()) : std::u32string();
  if (f.size() != 1) render_fail("The fill character must be exactly one character long");
  return f[0];
}

int64_t find_in(const Value& self, const CallArgs& args, bool reverse) {
  const std::u32string s = u32(self), sub = decode_utf8(string_arg(args, 0, "sub", "find"));
  const size_t at = reverse ? s.rfind(sub) : s.find(sub);
  return at == std::u32string::npos ? -1 : static_cast<int64_t>(at);
}

bool all_chars(const Value& self, bool (*pred)(char32_t)) {
  const std::u32string s = u32(self);
  if (s.empty()) return false;
  for (char32_t c : s) {
    if (!pred(c)) return false;
  }
  return true;
}

Value call_str_method(const Value& self, const std::string& name, CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Value chars = args.get_or(0, "chars", Value(nullptr));
    return Value(py_strip(self.str(), chars.is_string() ? &chars.str() : nullptr, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    const Value sep = args.get_or(0, "sep", Value(nullptr));
    const int64_t maxsplit = int_arg(args, 1, "maxsplit", -1);
    if (sep.is_none()) return Value::list(split_whitespace(u32(self), maxsplit, name == "rsplit"));
    if (!sep.is_string()) render_fail(fmt::format("must be str or None, not {}", type_name(sep)));
    return Value::list(split_on(self.str(), sep.str(), maxsplit, name == "rsplit"));
  }
  if (name == "splitlines") {
    ValueList out;
    for (auto& l : py_splitlines(self.str(), truthy(args.get_or(0, "keepends", Value(false))))) out.emplace_back(l);
    return Value::list(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    const Value* affix = args.get(0, "prefix");
    if (!affix) render_fail(fmt::format("{}() takes at least 1 argument (0 given)", name));
    return Value(affix_matches(self, *affix, name == "startswith"));
  }
  if (name == "upper") return Value(py_upper(self.str()));
  if (name == "lower") return Value(py_lower(self.str()));
  if (name == "title") return Value(py_title(self.str()));
  if (name == "capitalize") return Value(py_capitalize(self.str()));
  if (name == "replace") {
    return Value(replace_all(self.str(), string_arg(args, 0, "old", "replace"), string_arg(args, 1, "new", "replace"),
                             int_arg(args, 2, "count", -1)));
  }
  if (name == "find" || name == "rfind") return Value(find_in(self, args, name == "rfind"));
  if (name == "index" || name == "rindex") {
    const int64_t at = find_in(self, args, name == "rindex");
    if (at < 0) render_fail("substring not found");
    return Value(at);
  }
  if (name == "count") {
    const std::string& sub = string_arg(args, 0, "sub", "count");
    if (sub.empty()) return Value(static_cast<int64_t>(u32(self).size() + 1));
    int64_t n = 0;
    for (size_t at = self.str().find(sub); at != std::string::npos; at = self.str().find(sub, at + sub.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    std::string out;
    const ValueList items = iterate(args.get_or(0, "iterable", Value::list({})));
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string()) {
        render_fail(fmt::format("sequence item {}: expected str instance, {} found", i, type_name(items[i])));
      }
      if (i) out += self.str();
      out += items[i].str();
    }
    return Value(std::move(out));
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    return Value(pad(u32(self), int_arg(args, 0, "width", 0), fill_arg(args, 1),
                     name == "center"  ? 0
                     : name == "ljust" ? -1
                                       : 1));
  }
  if (name == "zfill") {
    std::u32string s = u32(self);
    const int64_t width = int_arg(args, 0, "width", 0);
    if (static_cast<int64_t>(s.size()) >= width) return self;
    const size_t sign = !s.empty() && (s[0] == '+' || s[0] == '-') ? 1 : 0;
    s.insert(sign, std::u32string(static_cast<size_t>(width) - s.size(), '0'));
    return Value(encode_utf8(s));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    const std::string& affix = string_arg(args, 0, "affix", name.c_str());
    const std::string& s = self.str();
    if (!affix_matches(self, Value(affix), name == "removeprefix")) return self;
    return Value(name == "removeprefix" ? s.substr(affix.size()) : s.substr(0, s.size() - affix.size()));
  }
  if (name == "partition" || name == "rpartition") {
    const std::string& sep = string_arg(args, 0, "sep", name.c_str());
    if (sep.empty()) render_fail("empty separator");
    const std::string& s = self.str();
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos) {
      return name == "partition" ? Value::tuple({self, Value(""), Value("")})
                                 : Value::tuple({Value(""), Value(""), self});
    }
    return Value::tuple({Value(s.substr(0, at)), Value(sep), Value(s.substr(at + sep.size()))});
  }
  if (name == "isspace") return Value(all_chars(self, is_py_space));
  if (name == "isalpha") return Value(all_chars(self, is_alpha));
  if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") {
    return Value(all_chars(self, [](char32_t c) { return c >= '0' && c <= '9'; }));
  }
  if (name == "isalnum") {
    return Value(all_chars(self, [](char32_t c) { return (c >= '0' && c <= '9') || is_alpha(c); }));
  }
  if (name == "isupper" || name == "islower") {
    bool any_cased = false;
    for (char32_t c : u32(self)) {
      if (!is_cased(c)) continue;
      any_cased = true;
      if ((name == "isupper" ? lower_cp(c) == c : upper_cp(c) == c)) return Value(false);
    }
    return Value(any_cased);
  }
  render_fail(fmt::format("str.{}() is not supported", name));
}

bool is_str_method(const std::string& n) {
  static const char* const kNames[] = {"strip",        "lstrip",    "rstrip",     "split",   "rsplit",  "splitlines",
                                       "startswith",   "endswith",  "upper",      "lower",   "title",   "capitalize",
                                       "replace",      "find",      "rfind",      "index",   "rindex",  "count",
                                       "join",         "center",    "ljust",      "rjust",   "zfill",   "removeprefix",
                                       "removesuffix", "partition", "rpartition", "isspace", "isalpha", "isdigit",
                                       "isdecimal",    "isnumeric", "isalnum",    "isupper", "islower"};
  for (const char* k : kNames) {
    if (n == k) return true;
  }
  return false;
}

Value call_dict_method(const Value& self, const std::string& name, CallArgs& args) {
  const DictData& d = self.dict();
  if (name == "get") {
    const Value* key = args.get(0, "key");
    if (!key) render_fail("get expected at least 1 argument, got 0");
    const Value* found = d.find(*key);
    return found ? *found : args.get_or(1, "default", Value(nullptr));
  }
  ValueList out;
  for (const auto& [k, v] : d.entries) {
    if (name == "items")
      out.push_back(Value::tuple({k, v}));
    else
      out.push_back(name == "keys" ? k : v);
  }
  return Value::list(std::move(out));
}

Value call_list_method(const Value& self, const std::string& name, CallArgs& args) {
  const Value* x = args.get(0, "value");
  if (!x) render_fail(fmt::format("{}() takes exactly one argument (0 given)", name));
  int64_t count = 0;
  const auto& items = self.items();
  for (size_t i = 0; i < items.size(); ++i) {
    if (!equals(items[i], *x)) continue;
    if (name == "index") return Value(static_cast<int64_t>(i));
    ++count;
  }
  if (name == "index") render_fail(fmt::format("{} is not in list", repr(*x)));
  return Value(count);
}

Value bound(const Value& self, const std::string& name, Value (*method)(const Value&, const std::string&, CallArgs&)) {
  return Value::function(name, [self, name, method](CallArgs& args) { return method(self, name, args); });
}

Value unsafe(const Value& self, const std::string& name) {
  std::string message = fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, type_name(self));
  return Value::function(name, [message](CallArgs&) -> Value { render_fail(message); });
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  defined(obj);
  if (!name.empty() && name[0] == '_') return Value::undefined(fmt::format("access to attribute '{}' is unsafe", name));
  switch (obj.type()) {
    case Value::Type::Dict: {
      if (name == "get" || name == "items" || name == "keys" || name == "values")
        return bound(obj, name, call_dict_method);
      if (name == "update" || name == "pop" || name == "popitem" || name == "setdefault" || name == "clear") {
        return unsafe(obj, name);
      }
      if (const Value* v = obj.dict().find(Value(name))) return *v;
      break;
    }
    case Value::Type::Namespace:
      if (const Value* v = obj.dict().find(Value(name))) return *v;
      break;
    case Value::Type::String:
      if (is_str_method(name)) return bound(obj, name, call_str_method);
      break;
    case Value::Type::List:
    case Value::Type::Tuple:
      if (name == "index" || name == "count") return bound(obj, name, call_list_method);
      if (obj.is(Value::Type::List) && (name == "append" || name == "extend" || name == "insert" || name == "pop" ||
                                        name == "remove" || name == "reverse" || name == "sort" || name == "clear")) {
        return unsafe(obj, name);
      }
      break;
    default:
      break;
  }
  return missing_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  defined(obj);
  switch (obj.type()) {
    case Value::Type::Dict:
      if (const Value* v = obj.dict().find(key)) return *v;
      break;
    case Value::Type::List:
    case Value::Type::Tuple:
    case Value::Type::String:
      if (key.is_integer()) {
        const bool str = obj.is_string();
        const std::u32string cps = str ? decode_utf8(obj.str()) : std::u32string();
        const int64_t n = static_cast<int64_t>(str ? cps.size() : obj.items().size());
        int64_t i = key.as_int();
        if (i < 0) i += n;
        if (i < 0 || i >= n) return missing_item(obj, key);
        if (!str) return obj.items()[static_cast<size_t>(i)];
        std::string c;
        append_utf8(c, cps[static_cast<size_t>(i)]);
        return Value(std::move(c));
      }
      break;
    default:
      break;
  }
  if (key.is_string()) {
    Value attr = get_attr(obj, key.str());
    if (!attr.is_undefined()) return attr;
  }
  return missing_item(obj, key);
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  defined(obj);
  auto bound_arg = [](const Value& v) -> std::optional<int64_t> {
    if (v.is_none() || v.is_undefined()) return std::nullopt;
    if (!v.is_integer()) render_fail("slice indices must be integers or None");
    return v.as_int();
  };
  const std::optional<int64_t> b = bound_arg(start), e = bound_arg(stop), s = bound_arg(step);
  const int64_t st = s.value_or(1);
  if (st == 0) render_fail("slice step cannot be zero");
  if (!obj.is_string() && !obj.is_sequence())
    return Value::undefined(fmt::format("{} is not sliceable", object_type(obj)));
  const std::u32string cps = obj.is_string() ? decode_utf8(obj.str()) : std::u32string();
  const int64_t n = static_cast<int64_t>(obj.is_string() ? cps.size() : obj.items().size());
  auto adjust = [&](std::optional<int64_t> v, int64_t fallback) {  // PySlice_AdjustIndices
    if (!v) return fallback;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < 0) x = st < 0 ? -1 : 0;
    } else if (x >= n) {
      x = st < 0 ? n - 1 : n;
    }
    return x;
  };
  const int64_t lo = adjust(b, st < 0 ? n - 1 : 0), hi = adjust(e, st < 0 ? -1 : n);
  std::vector<size_t> picked;
  for (int64_t i = lo; st > 0 ? i < hi : i > hi; i += st) picked.push_back(static_cast<size_t>(i));
  if (obj.is_string()) {
    std::u32string out;
    for (size_t i : picked) out.push_back(cps[i]);
    return Value(encode_utf8(out));
  }
  ValueList out;
  for (size_t i : picked) out.push_back(obj.items()[i]);
  return obj.is(Value::Type::Tuple) ? Value::tuple(std::move(out)) : Value::list(std::move(out));
}

}  // namespace peft::jinja
