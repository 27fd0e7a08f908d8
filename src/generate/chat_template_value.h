#pragma once
// Values of the chat-template interpreter: Python's objects as Jinja templates see them (None, bool,
// int, float, str, list, tuple, dict, namespace, callables) plus Jinja's Undefined, with Python's
// truthiness, equality, ordering, str() / repr() and json.dumps.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace peft::jinja {

class Value;
using ValueList = std::vector<Value>;
struct DictData;
struct CallArgs;

// A failure while rendering. `raised` marks raise_exception(), whose message is the template's own;
// `pos` is the source offset of the construct at fault, filled in by the evaluator.
struct RenderError {
  std::string message;
  bool raised = false;
  size_t pos = std::string::npos;
};
[[noreturn]] void render_fail(std::string message);

using NativeFunction = std::function<Value(CallArgs&)>;

class Value {
 public:
  enum class Type : uint8_t { Undefined, None, Bool, Int, Float, String, List, Tuple, Dict, Namespace, Function };

  Value() = default;  // Undefined
  Value(std::nullptr_t) : type_(Type::None) {}
  Value(bool b) : type_(Type::Bool), int_(b ? 1 : 0) {}
  Value(int i) : type_(Type::Int), int_(i) {}
  Value(int64_t i) : type_(Type::Int), int_(i) {}
  Value(double d) : type_(Type::Float), float_(d) {}
  Value(std::string s) : type_(Type::String), str_(std::move(s)) {}
  Value(const char* s) : type_(Type::String), str_(s) {}

  // `why` is the error raised when the value is used for more than printing or testing.
  static Value undefined(std::string why);
  static Value list(ValueList items);
  static Value tuple(ValueList items);
  static Value dict(DictData items);
  static Value make_namespace(DictData items);
  static Value function(std::string name, NativeFunction fn);

  Type type() const { return type_; }
  bool is(Type t) const { return type_ == t; }
  bool is_undefined() const { return type_ == Type::Undefined; }
  bool is_none() const { return type_ == Type::None; }
  bool is_string() const { return type_ == Type::String; }
  bool is_number() const { return type_ == Type::Bool || type_ == Type::Int || type_ == Type::Float; }
  bool is_integer() const { return type_ == Type::Bool || type_ == Type::Int; }  // Python: bool is an int
  bool is_sequence() const { return type_ == Type::List || type_ == Type::Tuple; }
  bool is_mapping() const { return type_ == Type::Dict; }

  int64_t as_int() const { return int_; }
  double as_double() const { return type_ == Type::Float ? float_ : static_cast<double>(int_); }
  const std::string& str() const { return str_; }  // the string, or Undefined's error
  const ValueList& items() const;                  // List / Tuple
  const DictData& dict() const;                    // Dict / Namespace
  DictData& namespace_data() const;                // Namespace (mutable, shared)
  const std::string& function_name() const;
  Value call(CallArgs& args) const;
  bool same_object(const Value& other) const;  // Python `is`

 private:
  Type type_ = Type::Undefined;
  int64_t int_ = 0;
  double float_ = 0;
  std::string str_;
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<DictData> dict_;
  std::shared_ptr<const std::pair<std::string, NativeFunction>> fn_;
};

struct DictData {
  std::vector<std::pair<Value, Value>> entries;  // insertion order, as Python dicts keep it
  const Value* find(const Value& key) const;
  void set(Value key, Value value);
};

struct CallArgs {
  ValueList positional;
  std::vector<std::pair<std::string, Value>> keywords;

  // Python-style parameter binding: the i-th positional argument or the keyword `name`.
  const Value* get(size_t index, std::string_view name) const;
  Value get_or(size_t index, std::string_view name, Value fallback) const;
  void expect_at_most(size_t count, std::string_view what) const;
};

const char* type_name(const Value& v);  // Python's type name: str, int, dict, NoneType, ...
[[noreturn]] void fail_undefined(const Value& v);
const Value& defined(const Value& v);  // v, or throws Undefined's error

bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
// Python's a < b (or the mirrored operator in `op` for the message); throws TypeError-like errors.
bool less(const Value& a, const Value& b, const char* op = "<");

std::string to_str(const Value& v);  // str(v); Undefined prints as ""
std::string repr(const Value& v);

struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // newline + this per level, as json.dumps(indent=...)
  std::string item_separator, key_separator;
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonOptions& options);

// Elements of an iterable as Python's iter() yields them: list items, dict keys, string characters;
// Undefined is empty.
ValueList iterate(const Value& v);

}  // namespace peft::jinja
