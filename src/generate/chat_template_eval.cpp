#include "generate/chat_template_eval.h"

#include <fmt/format.h>

#include <memory>
#include <unordered_map>

#include "generate/chat_template_builtins.h"

namespace peft::jinja {

namespace {

struct Scope {
  std::shared_ptr<Scope> parent;  // children own their parents; nothing owns downwards
  std::unordered_map<std::string, Value> vars;

  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      if (auto it = s->vars.find(name); it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

ScopePtr child_of(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

enum class Flow { Normal, Break, Continue };

constexpr int kMaxCallDepth = 200;

class Renderer {
 public:
  explicit Renderer(const Template& tmpl) : tmpl_(tmpl) {}

  std::string run(const DictData& variables) {
    DictData globals;
    add_globals(globals);
    auto global_scope = std::make_shared<Scope>();
    for (auto& [k, v] : globals.entries) global_scope->vars[k.str()] = v;
    ScopePtr root = child_of(global_scope);
    for (const auto& [k, v] : variables.entries) root->vars[k.str()] = v;
    std::string out;
    exec(tmpl_.body, root, out);
    return out;
  }

 private:
  Flow exec(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const auto& node : body) {
      const Flow f = exec_node(*node, scope, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec_node(const Node& node, const ScopePtr& scope, std::string& out) {
    try {
      return exec_node_unchecked(node, scope, out);
    } catch (RenderError& e) {
      if (e.pos == std::string::npos) e.pos = node.pos;
      throw;
    }
  }

  Flow exec_node_unchecked(const Node& node, const ScopePtr& scope, std::string& out) {
    switch (node.kind) {
      case Node::Kind::Text:
        out += node.text;
        return Flow::Normal;
      case Node::Kind::Output:
        out += to_str(eval(*node.expr, scope));
        return Flow::Normal;
      case Node::Kind::If:
        return exec(truthy(eval(*node.expr, scope)) ? node.body : node.else_body, scope, out);
      case Node::Kind::For:
        return exec_for(node, scope, out);
      case Node::Kind::Set:
        assign(*node.target, eval(*node.expr, scope), *scope);
        return Flow::Normal;
      case Node::Kind::SetBlock: {
        std::string text;
        exec(node.body, scope, text);
        assign(*node.target, node.filter ? eval_with_input(*node.filter, scope, Value(text)) : Value(text), *scope);
        return Flow::Normal;
      }
      case Node::Kind::FilterBlock: {
        std::string text;
        exec(node.body, scope, text);
        out += to_str(eval_with_input(*node.filter, scope, Value(text)));
        return Flow::Normal;
      }
      case Node::Kind::Macro:
        define_macro(node, scope);
        return Flow::Normal;
      case Node::Kind::With: {
        ScopePtr inner = child_of(scope);
        for (size_t i = 0; i < node.params.size(); ++i) inner->vars[node.params[i]] = eval(*node.defaults[i], scope);
        return exec(node.body, inner, out);
      }
      case Node::Kind::Group:
        return exec(node.body, scope, out);
      case Node::Kind::Break:
        return Flow::Break;
      case Node::Kind::Continue:
        return Flow::Continue;
    }
    return Flow::Normal;
  }

  void assign(const Expr& target, const Value& value, Scope& scope) {
    switch (target.kind) {
      case Expr::Kind::Name:
        scope.vars[target.name] = value;
        return;
      case Expr::Kind::NamespaceRef: {
        const Value* ns = scope.find(target.name);
        if (!ns || !ns->is(Value::Type::Namespace)) render_fail("cannot assign attribute on non-namespace object");
        ns->namespace_data().set(Value(target.attr), value);
        return;
      }
      case Expr::Kind::Tuple: {
        const ValueList items = iterate(value);
        const size_t want = target.children.size();
        if (items.size() < want) {
          render_fail(fmt::format("not enough values to unpack (expected {}, got {})", want, items.size()));
        }
        if (items.size() > want) render_fail(fmt::format("too many values to unpack (expected {})", want));
        for (size_t i = 0; i < want; ++i) assign(*target.children[i], items[i], scope);
        return;
      }
      default:
        render_fail("can't assign to this expression");
    }
  }

  Flow exec_for(const Node& node, const ScopePtr& scope, std::string& out) {
    ValueList items = iterate(eval(*node.expr, scope));
    if (node.filter) {  // `for x in xs if cond`: filtered before loop.index / loop.length are counted
      ValueList kept;
      for (Value& item : items) {
        ScopePtr s = child_of(scope);
        assign(*node.target, item, *s);
        if (truthy(eval(*node.filter, s))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    const auto n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      ScopePtr s = child_of(scope);
      assign(*node.target, items[static_cast<size_t>(i)], *s);
      s->vars["loop"] = loop_object(items, i);
      if (exec(node.body, s, out) == Flow::Break) break;
    }
    if (n == 0) exec(node.else_body, scope, out);
    return Flow::Normal;
  }

  static Value loop_object(const ValueList& items, int64_t i) {
    const auto n = static_cast<int64_t>(items.size());
    DictData d;
    d.set(Value("index"), Value(i + 1));
    d.set(Value("index0"), Value(i));
    d.set(Value("revindex"), Value(n - i));
    d.set(Value("revindex0"), Value(n - i - 1));
    d.set(Value("first"), Value(i == 0));
    d.set(Value("last"), Value(i == n - 1));
    d.set(Value("length"), Value(n));
    d.set(Value("depth"), Value(1));
    d.set(Value("depth0"), Value(0));
    d.set(Value("previtem"), i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
    d.set(Value("nextitem"), i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
    d.set(Value("cycle"), Value::function("cycle", [i](CallArgs& a) {
            if (a.positional.empty()) render_fail("no items for cycling given");
            return a.positional[static_cast<size_t>(i) % a.positional.size()];
          }));
    return Value::dict(std::move(d));
  }

  void define_macro(const Node& node, const ScopePtr& scope) {
    // The macro refers to its scope by slot, not by shared_ptr: the scope holds the macro, so owning
    // it from there would be a cycle. The renderer keeps the scope alive until rendering ends.
    const size_t slot = keep_alive_.size();
    keep_alive_.push_back(scope);
    const Node* macro = &node;
    Value fn =
        Value::function(node.text, [this, macro, slot](CallArgs& args) { return call_macro(*macro, slot, args); });
    scope->vars[node.text] = std::move(fn);
  }

  Value call_macro(const Node& macro, size_t slot, CallArgs& args) {
    if (depth_ >= kMaxCallDepth) render_fail(fmt::format("macro '{}': maximum recursion depth exceeded", macro.text));
    ScopePtr s = child_of(keep_alive_[slot]);
    ValueList varargs;
    for (size_t i = 0; i < args.positional.size(); ++i) {
      if (i < macro.params.size())
        s->vars[macro.params[i]] = args.positional[i];
      else
        varargs.push_back(args.positional[i]);
    }
    DictData kwargs;
    for (const auto& [k, v] : args.keywords) {
      bool is_param = false;
      for (size_t i = 0; i < macro.params.size(); ++i) {
        if (macro.params[i] != k) continue;
        if (i < args.positional.size())
          render_fail(fmt::format("macro '{}' got multiple values for argument '{}'", macro.text, k));
        s->vars[k] = v;
        is_param = true;
      }
      if (!is_param) kwargs.set(Value(k), v);
    }
    for (size_t i = args.positional.size(); i < macro.params.size(); ++i) {
      if (s->vars.count(macro.params[i])) continue;
      s->vars[macro.params[i]] =
          macro.defaults[i] ? eval(*macro.defaults[i], s)
                            : Value::undefined(fmt::format("parameter '{}' was not provided", macro.params[i]));
    }
    s->vars["varargs"] = Value::tuple(std::move(varargs));
    s->vars["kwargs"] = Value::dict(std::move(kwargs));
    std::string out;
    ++depth_;
    try {
      exec(macro.body, s, out);
    } catch (...) {
      --depth_;
      throw;
    }
    --depth_;
    return Value(std::move(out));
  }

  // Filter chains of `{% set x | f %}` and `{% filter f %}`: the innermost filter's input is `input`.
  Value eval_with_input(const Expr& chain, const ScopePtr& scope, Value input) {
    Value saved = std::exchange(block_input_, std::move(input));
    Value result = eval(chain, scope);
    block_input_ = std::move(saved);
    return result;
  }

  CallArgs eval_args(const Expr& e, size_t first, const ScopePtr& scope) {
    CallArgs args;
    for (size_t i = first; i < e.children.size(); ++i) args.positional.push_back(eval(*e.children[i], scope));
    for (const auto& [k, v] : e.kwargs) args.keywords.emplace_back(k, eval(*v, scope));
    return args;
  }

  Value eval(const Expr& e, const ScopePtr& scope) {
    try {
      return eval_unchecked(e, scope);
    } catch (RenderError& err) {
      if (err.pos == std::string::npos) err.pos = e.pos;
      throw;
    }
  }

  bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "<") return less(a, b, "<");
    if (op == ">") return less(b, a, ">");
    if (op == "<=") return !less(b, a, "<=");
    if (op == ">=") return !less(a, b, ">=");
    if (op == "in") return contains(b, a);
    return !contains(b, a);  // not in
  }

  Value eval_unchecked(const Expr& e, const ScopePtr& scope) {
    using K = Expr::Kind;
    switch (e.kind) {
      case K::Const:
        return e.value;
      case K::Name: {
        const Value* v = scope->find(e.name);
        return v ? *v : Value::undefined(fmt::format("'{}' is undefined", e.name));
      }
      case K::NamespaceRef:
        render_fail("namespace attribute reference outside an assignment");
      case K::List:
      case K::Tuple: {
        ValueList items;
        for (const auto& c : e.children) items.push_back(eval(*c, scope));
        return e.kind == K::List ? Value::list(std::move(items)) : Value::tuple(std::move(items));
      }
      case K::Dict: {
        DictData d;
        for (size_t i = 0; i + 1 < e.children.size(); i += 2)
          d.set(eval(*e.children[i], scope), eval(*e.children[i + 1], scope));
        return Value::dict(std::move(d));
      }
      case K::Getattr:
        return get_attr(eval(*e.children[0], scope), e.name);
      case K::Getitem: {
        const Value obj = eval(*e.children[0], scope);
        const Expr& key = *e.children[1];
        if (key.kind != K::Slice) return get_item(obj, eval(key, scope));
        auto part = [&](size_t i) { return key.children[i] ? eval(*key.children[i], scope) : Value(nullptr); };
        return get_slice(obj, part(0), part(1), part(2));
      }
      case K::Slice:
        render_fail("slice outside a subscript");
      case K::Call: {
        const Value callee = eval(*e.children[0], scope);
        CallArgs args = eval_args(e, 1, scope);
        defined(callee);
        if (!callee.is(Value::Type::Function))
          render_fail(fmt::format("'{}' object is not callable", type_name(callee)));
        return callee.call(args);
      }
      case K::Filter: {
        const Value input = e.children[0] ? eval(*e.children[0], scope) : block_input_;
        CallArgs args = eval_args(e, 1, scope);
        return apply_filter(e.name, input, args);
      }
      case K::Test: {
        const Value input = eval(*e.children[0], scope);
        CallArgs args = eval_args(e, 1, scope);
        return Value(apply_test(e.name, input, args));
      }
      case K::Neg:
        return negate(eval(*e.children[0], scope));
      case K::Pos: {
        Value v = eval(*e.children[0], scope);
        if (!defined(v).is_number()) render_fail(fmt::format("bad operand type for unary +: '{}'", type_name(v)));
        return v;
      }
      case K::Not:
        return Value(!truthy(eval(*e.children[0], scope)));
      case K::Binary:
        return binary_op(e.name, eval(*e.children[0], scope), eval(*e.children[1], scope));
      case K::And: {
        Value left = eval(*e.children[0], scope);
        return truthy(left) ? eval(*e.children[1], scope) : left;
      }
      case K::Or: {
        Value left = eval(*e.children[0], scope);
        return truthy(left) ? left : eval(*e.children[1], scope);
      }
      case K::Compare: {
        Value left = eval(*e.children[0], scope);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.children[i + 1], scope);
          if (!compare(e.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case K::Concat: {
        std::string out;
        for (const auto& c : e.children) out += to_str(eval(*c, scope));
        return Value(std::move(out));
      }
      case K::CondExpr: {
        if (truthy(eval(*e.children[1], scope))) return eval(*e.children[0], scope);
        if (e.children[2]) return eval(*e.children[2], scope);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
      }
    }
    return Value();
  }

  const Template& tmpl_;
  std::vector<ScopePtr> keep_alive_;
  Value block_input_;
  int depth_ = 0;
};

}  // namespace

std::string render_template(const Template& tmpl, const DictData& variables) { return Renderer(tmpl).run(variables); }

}  // namespace peft::jinja
