// jinja2's built-in tests and the globals a chat template sees under transformers: range, dict,
// namespace, joiner, plus raise_exception and strftime_now from transformers.
#include "generate/chat_template_builtins.h"

#include <fmt/format.h>

#include <cmath>
#include <ctime>
#include <memory>
#include <string_view>

#include "generate/chat_template_text.h"

namespace peft::jinja {

namespace {

const Value& arg(const CallArgs& a, const char* test) {
  const Value* v = a.get(0, "value");
  if (!v) render_fail(fmt::format("test '{}' needs an argument", test));
  return *v;
}

bool all_cased(const Value& v, bool upper) {
  bool any = false;
  for (char32_t c : decode_utf8(to_str(v))) {
    if (!is_cased(c)) continue;
    any = true;
    if (upper ? lower_cp(c) == c : upper_cp(c) == c) return false;
  }
  return any;
}

int64_t integer_of(const Value& v, const char* test) {
  defined(v);
  if (!v.is_integer()) {
    if (v.is(Value::Type::Float) && v.as_double() == std::trunc(v.as_double()))
      return static_cast<int64_t>(v.as_double());
    render_fail(fmt::format("test '{}' needs an integer, got {}", test, type_name(v)));
  }
  return v.as_int();
}

bool run_test(std::string_view name, const Value& v, CallArgs& a, bool& known) {
  known = true;
  using T = Value::Type;
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is(T::Bool);
  if (name == "true") return v.is(T::Bool) && v.as_int() == 1;
  if (name == "false") return v.is(T::Bool) && v.as_int() == 0;
  if (name == "integer") return v.is(T::Int);
  if (name == "float") return v.is(T::Float);
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_mapping();
  if (name == "iterable") return v.is_string() || v.is_sequence() || v.is_mapping() || v.is_undefined();
  if (name == "sequence") return v.is_string() || v.is_sequence() || v.is_mapping() || v.is_undefined();
  if (name == "callable") return v.is(T::Function);
  if (name == "escaped") return false;
  if (name == "lower") return all_cased(v, false);
  if (name == "upper") return all_cased(v, true);
  if (name == "odd") return integer_of(v, "odd") % 2 != 0;
  if (name == "even") return integer_of(v, "even") % 2 == 0;
  if (name == "divisibleby") {
    const int64_t d = integer_of(arg(a, "divisibleby"), "divisibleby");
    if (d == 0) render_fail("integer division or modulo by zero");
    return integer_of(v, "divisibleby") % d == 0;
  }
  if (name == "sameas") return v.same_object(arg(a, "sameas"));
  if (name == "in") return contains(arg(a, "in"), v);
  if (name == "==" || name == "eq" || name == "equalto") return equals(v, arg(a, "eq"));
  if (name == "!=" || name == "ne") return !equals(v, arg(a, "ne"));
  if (name == "<" || name == "lt" || name == "lessthan") return less(v, arg(a, "lt"), "<");
  if (name == ">" || name == "gt" || name == "greaterthan") return less(arg(a, "gt"), v, ">");
  if (name == "<=" || name == "le") return !less(arg(a, "le"), v, "<=");
  if (name == ">=" || name == "ge") return !less(v, arg(a, "ge"), ">=");
  if (name == "filter") return v.is_string() && has_filter(v.str());
  if (name == "test") return v.is_string() && has_test(v.str());
  known = false;
  return false;
}

Value make_range(CallArgs& a) {
  int64_t start = 0, stop = 0, step = 1;
  auto integer = [](const Value& v) {
    if (!v.is_integer()) render_fail(fmt::format("'{}' object cannot be interpreted as an integer", type_name(v)));
    return v.as_int();
  };
  if (a.positional.size() == 1) {
    stop = integer(a.positional[0]);
  } else if (a.positional.size() == 2 || a.positional.size() == 3) {
    start = integer(a.positional[0]);
    stop = integer(a.positional[1]);
    if (a.positional.size() == 3) step = integer(a.positional[2]);
  } else {
    render_fail(fmt::format("range expected 1 to 3 arguments, got {}", a.positional.size()));
  }
  if (step == 0) render_fail("range() arg 3 must not be zero");
  ValueList out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (out.size() >= 100000) render_fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    out.emplace_back(i);
  }
  return Value::list(std::move(out));
}

DictData keyword_dict(const CallArgs& a, const char* what) {
  DictData d;
  if (a.positional.size() > 1) render_fail(fmt::format("{} expected at most 1 positional argument", what));
  if (!a.positional.empty()) {
    const Value& init = a.positional[0];
    if (init.is_mapping()) {
      d = init.dict();
    } else {
      for (const Value& pair : iterate(init)) {
        if (!pair.is_sequence() || pair.items().size() != 2)
          render_fail(fmt::format("{}: expected key/value pairs", what));
        d.set(pair.items()[0], pair.items()[1]);
      }
    }
  }
  for (const auto& [k, v] : a.keywords) d.set(Value(k), v);
  return d;
}

Value strftime_now(CallArgs& a) {
  const Value* format = a.get(0, "format");
  if (!format || !format->is_string()) render_fail("strftime_now() needs a format string");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[512];
  const size_t n = std::strftime(buf, sizeof buf, format->str().c_str(), &local);
  return Value(std::string(buf, n));
}

}  // namespace

// A test is known when run_test recognizes its name; probing with None and no arguments may make a
// known test fail on its input, which still counts.
bool has_test(std::string_view name) {
  CallArgs none;
  bool known = false;
  try {
    run_test(name, Value(nullptr), none, known);
  } catch (const RenderError&) {
    known = true;  // known test that wanted an argument or an integer
  }
  return known;
}

bool apply_test(const std::string& name, const Value& input, CallArgs& args) {
  bool known = false;
  const bool result = run_test(name, input, args, known);
  if (!known) render_fail(fmt::format("No test named '{}'", name));
  return result;
}

void add_globals(DictData& g) {
  g.set(Value("range"), Value::function("range", make_range));
  g.set(Value("dict"), Value::function("dict", [](CallArgs& a) { return Value::dict(keyword_dict(a, "dict")); }));
  g.set(Value("namespace"),
        Value::function("namespace", [](CallArgs& a) { return Value::make_namespace(keyword_dict(a, "namespace")); }));
  g.set(Value("joiner"), Value::function("joiner", [](CallArgs& a) {
          const std::string sep = to_str(a.get_or(0, "sep", Value(", ")));
          auto used = std::make_shared<bool>(false);
          return Value::function("joiner", [sep, used](CallArgs&) {
            if (!*used) {
              *used = true;
              return Value("");
            }
            return Value(sep);
          });
        }));
  g.set(Value("raise_exception"), Value::function("raise_exception", [](CallArgs& a) -> Value {
          throw RenderError{to_str(a.get_or(0, "message", Value(""))), true};
        }));
  g.set(Value("strftime_now"), Value::function("strftime_now", strftime_now));
}

}  // namespace peft::jinja
