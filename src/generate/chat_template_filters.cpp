// jinja2's built-in filters, with transformers' tojson (json.dumps with ensure_ascii=False, so
// non-ASCII text and HTML characters pass through unescaped).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "generate/chat_template_builtins.h"
#include "generate/chat_template_text.h"

namespace peft::jinja {

namespace {

using FilterFn = Value (*)(const Value&, CallArgs&);

// ---- shared helpers ----

// jinja2's make_attrgetter: "a.b.0" looks up a, then b, then item 0 (environment.getitem each step).
std::vector<Value> attribute_path(const Value& attribute) {
  if (!attribute.is_string()) return {attribute};
  std::vector<Value> parts;
  const std::string& s = attribute.str();
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    const std::string part = s.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits =
        !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    parts.push_back(digits ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

Value lookup_path(Value item, const std::vector<Value>& path, const Value* fallback = nullptr) {
  for (const Value& part : path) {
    item = get_item(item, part);
    if (fallback && item.is_undefined()) item = *fallback;
  }
  return item;
}

Value sort_key(const Value& item, const Value& attribute, bool case_sensitive) {
  Value key = attribute.is_none() ? item : lookup_path(item, attribute_path(attribute));
  if (!case_sensitive && key.is_string()) return Value(py_lower(key.str()));
  return key;
}

const Value& none() {
  static const Value v(nullptr);
  return v;
}

int64_t to_length(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined:
      return 0;
    case Value::Type::String:
      return static_cast<int64_t>(decode_utf8(v.str()).size());
    case Value::Type::List:
    case Value::Type::Tuple:
      return static_cast<int64_t>(v.items().size());
    case Value::Type::Dict:
      return static_cast<int64_t>(v.dict().entries.size());
    default:
      render_fail(fmt::format("object of type '{}' has no len()", type_name(v)));
  }
}

// Python's int(str, base) for the int filter: optional sign, underscores between digits, prefixes.
std::optional<int64_t> parse_int(std::string s, int base) {
  s = py_strip(s, nullptr, true, true);
  bool negative = false;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (i + 1 < s.size() && s[i] == '0') {
    const char p = static_cast<char>(s[i + 1] | 0x20);
    const int prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefixed && (base == 0 || base == prefixed)) {
      base = prefixed;
      i += 2;
      if (i < s.size() && s[i] == '_') ++i;
    }
  }
  if (base == 0) base = 10;
  if (i >= s.size()) return std::nullopt;
  int64_t value = 0;
  bool last_digit = false;
  for (; i < s.size(); ++i) {
    if (s[i] == '_' && last_digit && i + 1 < s.size() && s[i + 1] != '_') {
      last_digit = false;
      continue;
    }
    const char c = static_cast<char>(s[i] | 0x20);
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'z' ? c - 'a' + 10 : 99;
    if (d >= base) return std::nullopt;
    value = value * base + d;
    last_digit = true;
  }
  return negative ? -value : value;
}

std::optional<double> parse_float(const std::string& raw) {
  std::string s;
  for (char c : py_strip(raw, nullptr, true, true)) {
    if (c != '_') s.push_back(c);
  }
  if (s.empty() || s.find_first_of("xXpP") != std::string::npos) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return d;
}

Value html_escape(const Value& v) {
  std::string out;
  for (char c : to_str(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return Value(std::move(out));
}

bool select_item(const Value& item, const CallArgs& args, size_t offset, bool lookup_attr) {
  const Value subject = lookup_attr ? lookup_path(item, attribute_path(args.positional.at(0))) : item;
  if (args.positional.size() <= offset) return truthy(subject);
  CallArgs test_args;
  test_args.positional.assign(args.positional.begin() + static_cast<std::ptrdiff_t>(offset) + 1, args.positional.end());
  test_args.keywords = args.keywords;
  const Value& name = args.positional[offset];
  if (!name.is_string()) render_fail("test name must be a string");
  return apply_test(name.str(), subject, test_args);
}

Value select_or_reject(const Value& input, CallArgs& args, bool keep, bool lookup_attr) {
  if (lookup_attr && args.positional.empty()) render_fail("Missing parameter for attribute name");
  ValueList out;
  if (!truthy(input)) return Value::list({});
  for (const Value& item : iterate(input)) {
    if (select_item(item, args, lookup_attr ? 1 : 0, lookup_attr) == keep) out.push_back(item);
  }
  return Value::list(std::move(out));
}

// ---- the filters ----

Value f_abs(const Value& v, CallArgs&) {
  if (v.is_integer()) return Value(static_cast<int64_t>(std::llabs(v.as_int())));
  if (v.is(Value::Type::Float)) return Value(std::fabs(v.as_double()));
  defined(v);
  render_fail(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
}

// Python getattr only: unlike `.name`, a dict's keys are not attributes.
Value f_attr(const Value& v, CallArgs& a) {
  const std::string name = to_str(a.get_or(0, "name", Value("")));
  Value attr = get_attr(v, name);
  if (v.is_mapping() && !attr.is(Value::Type::Function)) {
    return Value::undefined(fmt::format("'dict object' has no attribute '{}'", name));
  }
  return attr;
}

Value f_batch(const Value& v, CallArgs& a) {
  const Value count = a.get_or(0, "linecount", Value(1));
  if (!count.is_integer() || count.as_int() <= 0) render_fail("batch size must be a positive integer");
  const Value fill = a.get_or(1, "fill_with", Value(nullptr));
  ValueList out, row;
  for (const Value& item : iterate(v)) {
    row.push_back(item);
    if (static_cast<int64_t>(row.size()) == count.as_int()) out.push_back(Value::list(std::exchange(row, {})));
  }
  if (!row.empty()) {
    if (!fill.is_none()) {
      while (static_cast<int64_t>(row.size()) < count.as_int()) row.push_back(fill);
    }
    out.push_back(Value::list(std::move(row)));
  }
  return Value::list(std::move(out));
}

Value f_capitalize(const Value& v, CallArgs&) { return Value(py_capitalize(to_str(v))); }

Value f_center(const Value& v, CallArgs& a) {
  CallArgs args;
  args.positional.push_back(a.get_or(0, "width", Value(80)));
  return get_attr(Value(to_str(v)), "center").call(args);
}

Value f_default(const Value& v, CallArgs& a) {
  const bool boolean = truthy(a.get_or(1, "boolean", Value(false)));
  if (v.is_undefined() || (boolean && !truthy(v))) return a.get_or(0, "default_value", Value(""));
  return v;
}

Value f_dictsort(const Value& v, CallArgs& a) {
  if (!v.is_mapping()) render_fail("dictsort expects a mapping");
  const bool case_sensitive = truthy(a.get_or(0, "case_sensitive", Value(false)));
  const Value by = a.get_or(1, "by", Value("key"));
  const bool reverse = truthy(a.get_or(2, "reverse", Value(false)));
  const size_t pos = by.is_string() && by.str() == "value" ? 1 : 0;
  if (!(by.is_string() && (by.str() == "key" || by.str() == "value"))) {
    render_fail("You can only sort by either \"key\" or \"value\"");
  }
  std::vector<std::pair<Value, Value>> keyed;
  for (const auto& [k, val] : v.dict().entries) {
    keyed.emplace_back(sort_key(pos == 0 ? k : val, none(), case_sensitive), Value::tuple({k, val}));
  }
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less(y.first, x.first) : less(x.first, y.first);
  });
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Value f_escape(const Value& v, CallArgs&) { return html_escape(v); }

Value f_first(const Value& v, CallArgs&) {
  const ValueList items = iterate(v);
  return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
}

Value f_last(const Value& v, CallArgs&) {
  const ValueList items = iterate(v);
  return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
}

Value f_float(const Value& v, CallArgs& a) {
  if (v.is_number()) return Value(v.as_double());
  if (v.is_string()) {
    if (auto d = parse_float(v.str())) return Value(*d);
  }
  return a.get_or(0, "default", Value(0.0));
}

Value f_format(const Value& v, CallArgs& a) {
  if (!a.keywords.empty() && !a.positional.empty()) {
    render_fail("can't handle positional and keyword arguments at the same time");
  }
  if (!a.keywords.empty()) render_fail("format with keyword arguments is not supported");
  return Value(percent_format(to_str(v), Value::tuple(a.positional)));
}

Value f_indent(const Value& v, CallArgs& a) {
  const Value width = a.get_or(0, "width", Value(4));
  const bool first = truthy(a.get_or(1, "first", Value(false)));
  const bool blank = truthy(a.get_or(2, "blank", Value(false)));
  const std::string indention =
      width.is_string() ? width.str() : std::string(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), ' ');
  // jinja2 appends a newline before splitting, so a trailing newline survives
  const std::vector<std::string> lines = py_splitlines(to_str(v) + "\n", false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i == 0) {
      out += lines[0];
      continue;
    }
    out += "\n";
    if (blank || !lines[i].empty()) out += indention;
    out += lines[i];
  }
  return Value(first ? indention + out : out);
}

Value f_int(const Value& v, CallArgs& a) {
  const Value fallback = a.get_or(0, "default", Value(0));
  const Value base = a.get_or(1, "base", Value(10));
  if (v.is_integer()) return Value(v.as_int());
  // Python ints are unbounded; past int64 this keeps the truncated float rather than overflow
  auto truncate = [](double d) {
    return std::fabs(d) < 9.2e18 ? Value(static_cast<int64_t>(std::trunc(d))) : Value(std::trunc(d));
  };
  if (v.is(Value::Type::Float)) {
    if (!std::isfinite(v.as_double())) return fallback;
    return truncate(v.as_double());
  }
  if (v.is_string()) {
    if (auto i = parse_int(v.str(), base.is_integer() ? static_cast<int>(base.as_int()) : 10)) return Value(*i);
    if (auto d = parse_float(v.str()); d && std::isfinite(*d)) return truncate(*d);
  }
  return fallback;
}

Value f_items(const Value& v, CallArgs&) {
  if (v.is_undefined()) return Value::list({});
  if (!v.is_mapping()) render_fail("Can only get item pairs from a mapping.");
  ValueList out;
  for (const auto& [k, val] : v.dict().entries) out.push_back(Value::tuple({k, val}));
  return Value::list(std::move(out));
}

Value f_join(const Value& v, CallArgs& a) {
  const std::string sep = to_str(a.get_or(0, "d", Value("")));
  const Value attribute = a.get_or(1, "attribute", Value(nullptr));
  std::string out;
  bool first = true;
  for (const Value& item : iterate(v)) {
    if (!first) out += sep;
    first = false;
    out += to_str(attribute.is_none() ? item : lookup_path(item, attribute_path(attribute)));
  }
  return Value(std::move(out));
}

Value f_length(const Value& v, CallArgs&) { return Value(to_length(v)); }
Value f_list(const Value& v, CallArgs&) { return Value::list(iterate(v)); }
Value f_lower(const Value& v, CallArgs&) { return Value(py_lower(to_str(v))); }
Value f_upper(const Value& v, CallArgs&) { return Value(py_upper(to_str(v))); }
Value f_title(const Value& v, CallArgs&) { return Value(jinja_title(to_str(v))); }
Value f_string(const Value& v, CallArgs&) { return Value(to_str(v)); }
Value f_safe(const Value& v, CallArgs&) { return Value(to_str(v)); }

Value f_map(const Value& v, CallArgs& a) {
  ValueList out;
  const ValueList items = iterate(v);
  if (a.positional.empty()) {
    const Value* attribute = a.get(99, "attribute");
    if (!attribute) render_fail("map requires a filter argument");
    const Value fallback = a.get_or(99, "default", Value(nullptr));
    for (const auto& [k, _] : a.keywords) {
      if (k != "attribute" && k != "default") render_fail(fmt::format("Unexpected keyword argument '{}'", k));
    }
    const std::vector<Value> path = attribute_path(*attribute);
    for (const Value& item : items) out.push_back(lookup_path(item, path, fallback.is_none() ? nullptr : &fallback));
    return Value::list(std::move(out));
  }
  if (!a.positional[0].is_string()) render_fail("map requires a filter name");
  const std::string name = a.positional[0].str();
  if (!has_filter(name)) render_fail(fmt::format("No filter named '{}'", name));
  for (const Value& item : items) {
    CallArgs sub;
    sub.positional.assign(a.positional.begin() + 1, a.positional.end());
    sub.keywords = a.keywords;
    out.push_back(apply_filter(name, item, sub));
  }
  return Value::list(std::move(out));
}

Value min_or_max(const Value& v, CallArgs& a, bool want_max) {
  const bool case_sensitive = truthy(a.get_or(0, "case_sensitive", Value(false)));
  const Value attribute = a.get_or(1, "attribute", Value(nullptr));
  const ValueList items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  Value best_key = sort_key(items[0], attribute, case_sensitive);
  for (size_t i = 1; i < items.size(); ++i) {
    Value key = sort_key(items[i], attribute, case_sensitive);
    if (want_max ? less(best_key, key) : less(key, best_key)) {
      best = i;
      best_key = std::move(key);
    }
  }
  return items[best];
}

Value f_max(const Value& v, CallArgs& a) { return min_or_max(v, a, true); }
Value f_min(const Value& v, CallArgs& a) { return min_or_max(v, a, false); }

Value f_select(const Value& v, CallArgs& a) { return select_or_reject(v, a, true, false); }
Value f_reject(const Value& v, CallArgs& a) { return select_or_reject(v, a, false, false); }
Value f_selectattr(const Value& v, CallArgs& a) { return select_or_reject(v, a, true, true); }
Value f_rejectattr(const Value& v, CallArgs& a) { return select_or_reject(v, a, false, true); }

Value f_replace(const Value& v, CallArgs& a) {
  CallArgs args;
  args.positional = {a.get_or(0, "old", Value("")), a.get_or(1, "new", Value("")),
                     a.get_or(2, "count", Value(nullptr))};
  return get_attr(Value(to_str(v)), "replace").call(args);
}

Value f_reverse(const Value& v, CallArgs&) {
  if (v.is_string()) {
    std::u32string s = decode_utf8(v.str());
    std::reverse(s.begin(), s.end());
    return Value(encode_utf8(s));
  }
  ValueList items = iterate(v);
  std::reverse(items.begin(), items.end());
  return Value::list(std::move(items));
}

Value f_round(const Value& v, CallArgs& a) {
  const Value precision = a.get_or(0, "precision", Value(0));
  const std::string method = to_str(a.get_or(1, "method", Value("common")));
  if (!v.is_number()) render_fail(fmt::format("type {} doesn't define __round__ method", type_name(v)));
  if (!precision.is_integer()) render_fail("precision must be an integer");
  const int64_t p = precision.as_int();
  if (method == "common") {
    if (v.is_integer()) return Value(v.as_int());
    // Python rounds the exact binary value half-to-even, which is what printf does
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(std::clamp<int64_t>(p, 0, 300)), v.as_double());
    double r = std::strtod(buf, nullptr);
    if (p < 0) {
      const double scale = std::pow(10.0, static_cast<double>(-p));
      r = std::nearbyint(v.as_double() / scale) * scale;
    }
    return Value(r);
  }
  if (method != "floor" && method != "ceil") render_fail("method must be common, ceil or floor");
  const double scale = std::pow(10.0, static_cast<double>(p));
  const double x = v.as_double() * scale;
  return Value((method == "floor" ? std::floor(x) : std::ceil(x)) / scale);
}

Value f_sort(const Value& v, CallArgs& a) {
  const bool reverse = truthy(a.get_or(0, "reverse", Value(false)));
  const bool case_sensitive = truthy(a.get_or(1, "case_sensitive", Value(false)));
  const Value attribute = a.get_or(2, "attribute", Value(nullptr));
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& item : iterate(v)) keyed.emplace_back(sort_key(item, attribute, case_sensitive), item);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less(y.first, x.first) : less(x.first, y.first);
  });
  ValueList out;
  for (auto& kv : keyed) out.push_back(std::move(kv.second));
  return Value::list(std::move(out));
}

Value f_sum(const Value& v, CallArgs& a) {
  const Value attribute = a.get_or(0, "attribute", Value(nullptr));
  Value total = a.get_or(1, "start", Value(0));
  for (const Value& item : iterate(v)) {
    total = binary_op("+", total, attribute.is_none() ? item : lookup_path(item, attribute_path(attribute)));
  }
  return total;
}

Value f_tojson(const Value& v, CallArgs& a) {
  JsonOptions o;
  o.ensure_ascii = truthy(a.get_or(0, "ensure_ascii", Value(false)));
  const Value indent = a.get_or(1, "indent", Value(nullptr));
  if (indent.is_string())
    o.indent = indent.str();
  else if (indent.is_integer())
    o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, indent.as_int())), ' ');
  else if (!indent.is_none())
    render_fail("indent must be an integer or a string");
  const Value separators = a.get_or(2, "separators", Value(nullptr));
  if (separators.is_sequence() && separators.items().size() == 2) {
    o.item_separator = to_str(separators.items()[0]);
    o.key_separator = to_str(separators.items()[1]);
  } else if (!separators.is_none()) {
    render_fail("separators must be a pair of strings");
  } else {
    o.item_separator = o.indent ? "," : ", ";
    o.key_separator = ": ";
  }
  o.sort_keys = truthy(a.get_or(3, "sort_keys", Value(false)));
  return Value(to_json(v, o));
}

Value f_trim(const Value& v, CallArgs& a) {
  const Value chars = a.get_or(0, "chars", Value(nullptr));
  return Value(py_strip(to_str(v), chars.is_string() ? &chars.str() : nullptr, true, true));
}

Value f_unique(const Value& v, CallArgs& a) {
  const bool case_sensitive = truthy(a.get_or(0, "case_sensitive", Value(false)));
  const Value attribute = a.get_or(1, "attribute", Value(nullptr));
  ValueList out, seen;
  for (const Value& item : iterate(v)) {
    Value key = sort_key(item, attribute, case_sensitive);
    if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); })) {
      seen.push_back(std::move(key));
      out.push_back(item);
    }
  }
  return Value::list(std::move(out));
}

Value f_wordcount(const Value& v, CallArgs&) {
  int64_t words = 0;
  bool in_word = false;
  for (char32_t c : decode_utf8(to_str(v))) {
    const bool word = c == '_' || (c >= '0' && c <= '9') || is_alpha(c);
    if (word && !in_word) ++words;
    in_word = word;
  }
  return Value(words);
}

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};

constexpr FilterEntry kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"batch", f_batch},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

FilterFn find_filter(std::string_view name) {
  for (const auto& f : kFilters) {
    if (f.name == name) return f.fn;
  }
  return nullptr;
}

}  // namespace

bool has_filter(std::string_view name) { return find_filter(name) != nullptr; }

Value apply_filter(const std::string& name, const Value& input, CallArgs& args) {
  const FilterFn fn = find_filter(name);
  if (!fn) render_fail(fmt::format("No filter named '{}'", name));
  return fn(input, args);
}

}  // namespace peft::jinja
