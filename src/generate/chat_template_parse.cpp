// Recursive-descent parser with jinja2's grammar and precedence: conditional expressions, or, and,
// not, comparisons, + -, ~, * / // %, **, unary - +, then postfix (. [] ()) and filters / tests, which
// bind tighter than every binary operator (`a + b | trim` trims b).
#include <fmt/format.h>

#include <algorithm>

#include "generate/chat_template_ast.h"
#include "generate/chat_template_builtins.h"
#include "generate/chat_template_lexer.h"

namespace peft::jinja {

std::pair<size_t, size_t> line_column(const std::string& source, size_t pos) {
  pos = std::min(pos, source.size());
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < pos; ++i) {
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  size_t column = 1;
  for (size_t i = line_start; i < pos; ++i) {
    if ((static_cast<unsigned char>(source[i]) & 0xC0) != 0x80) ++column;
  }
  return {line, column};
}

namespace {

ExprPtr make(Expr::Kind kind, size_t pos) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->pos = pos;
  return e;
}

NodePtr make_node(Node::Kind kind, size_t pos) {
  auto n = std::make_unique<Node>();
  n->kind = kind;
  n->pos = pos;
  return n;
}

std::string describe(const Token& t) {
  switch (t.type) {
    case Tok::Data:
      return "template data / text";
    case Tok::VarBegin:
      return "begin of print statement";
    case Tok::VarEnd:
      return "end of print statement";
    case Tok::BlockBegin:
      return "begin of statement block";
    case Tok::BlockEnd:
      return "end of statement block";
    case Tok::String:
      return "string";
    case Tok::Int:
      return "integer";
    case Tok::Float:
      return "float";
    case Tok::Eof:
      return "end of template";
    default:
      return t.text;
  }
}

constexpr int kMaxNesting = 400;  // deeper templates are refused instead of exhausting the stack

class Parser {
 public:
  Parser(const std::string& source, std::vector<Token> tokens) : source_(source), toks_(std::move(tokens)) {}

  Body parse() { return subparse({}); }

 private:
  const Token& cur() const { return toks_[i_]; }
  const Token& peek() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < toks_.size()) ++i_;
  }
  bool at_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool at_name(const char* name) const { return cur().type == Tok::Name && cur().text == name; }

  [[noreturn]] void fail(std::string message, size_t pos) const { throw SyntaxError{std::move(message), pos}; }
  [[noreturn]] void fail_here(const std::string& what) const {
    fail(fmt::format("expected {}, got '{}'", what, describe(cur())), cur().pos);
  }

  void expect_op(const char* op) {
    if (!at_op(op)) fail_here(fmt::format("token '{}'", op));
    advance();
  }
  void expect(Tok type, const char* what) {
    if (cur().type != type) fail_here(what);
    advance();
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail_here("a name");
    std::string name = cur().text;
    advance();
    return name;
  }

  struct NestingGuard {
    NestingGuard(Parser& p, size_t pos) : parser(p) {
      if (++parser.nesting_ > kMaxNesting) parser.fail("template nested too deeply", pos);
    }
    ~NestingGuard() { --parser.nesting_; }
    Parser& parser;
  };

  // ---- statements ----

  // Parses until a block tag named in `ends`; the stream is left on that name.
  Body subparse(const std::vector<std::string>& ends) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Data) {
        auto n = make_node(Node::Kind::Text, t.pos);
        n->text = t.text;
        body.push_back(std::move(n));
        advance();
      } else if (t.type == Tok::VarBegin) {
        advance();
        auto n = make_node(Node::Kind::Output, cur().pos);
        n->expr = parse_tuple(false, true, {}, false, false);
        expect(Tok::VarEnd, "end of print statement");
        body.push_back(std::move(n));
      } else if (t.type == Tok::BlockBegin) {
        advance();
        if (cur().type == Tok::Name && std::find(ends.begin(), ends.end(), cur().text) != ends.end()) return body;
        body.push_back(parse_statement());
        expect(Tok::BlockEnd, "end of statement block");
      } else if (t.type == Tok::Eof) {
        if (!ends.empty()) {
          std::string names;
          for (const auto& e : ends) names += (names.empty() ? "'" : " or '") + e + "'";
          fail(fmt::format("unexpected end of template; expected {} to close the '{}' block opened at {}", names,
                           tags_.back().first, location_hint(tags_.back().second)),
               t.pos);
        }
        return body;
      } else {
        fail(fmt::format("unexpected '{}'", describe(t)), t.pos);
      }
    }
  }

  std::string location_hint(size_t pos) const {
    const auto [line, column] = line_column(source_, pos);
    return fmt::format("line {}, column {}", line, column);
  }

  Body parse_statements(const std::vector<std::string>& ends) {
    if (at_op(":")) advance();
    expect(Tok::BlockEnd, "end of statement block");
    return subparse(ends);
  }

  NodePtr parse_statement() {
    const NestingGuard guard(*this, cur().pos);
    if (cur().type != Tok::Name) fail_here("a tag name");
    const std::string tag = cur().text;
    const size_t pos = cur().pos;
    tags_.emplace_back(tag, pos);
    NodePtr node;
    if (tag == "if")
      node = parse_if();
    else if (tag == "for")
      node = parse_for();
    else if (tag == "set")
      node = parse_set();
    else if (tag == "macro")
      node = parse_macro();
    else if (tag == "filter")
      node = parse_filter_block();
    else if (tag == "with")
      node = parse_with();
    else if (tag == "print")
      node = parse_print();
    else if (tag == "generation")
      node = parse_generation();
    else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(fmt::format("'{}' outside of a loop", tag), pos);
      advance();
      node = make_node(tag == "break" ? Node::Kind::Break : Node::Kind::Continue, pos);
    } else if (tag == "call" || tag == "block" || tag == "extends" || tag == "include" || tag == "import" ||
               tag == "from" || tag == "autoescape") {
      fail(fmt::format("unsupported tag '{}'", tag), pos);
    } else if (tag.rfind("end", 0) == 0 || tag == "else" || tag == "elif") {
      fail(fmt::format("unexpected '{}'", tag), pos);
    } else {
      fail(fmt::format("unknown tag '{}'", tag), pos);
    }
    tags_.pop_back();
    return node;
  }

  NodePtr parse_if() {
    auto root = make_node(Node::Kind::If, cur().pos);
    advance();
    Node* node = root.get();
    while (true) {
      node->expr = parse_tuple(false, false, {}, false, false);
      node->body = parse_statements({"elif", "else", "endif"});
      if (at_name("elif")) {
        auto next = make_node(Node::Kind::If, cur().pos);
        advance();
        Node* raw = next.get();
        node->else_body.push_back(std::move(next));
        node = raw;
        continue;
      }
      if (at_name("else")) {
        advance();
        node->else_body = parse_statements({"endif"});
      }
      advance();  // endif
      return root;
    }
  }

  NodePtr parse_for() {
    auto node = make_node(Node::Kind::For, cur().pos);
    advance();
    node->target = parse_assign_target(false, {"in"});
    if (!at_name("in")) fail_here("'in'");
    advance();
    node->expr = parse_tuple(false, false, {"recursive"}, false, false);
    if (at_name("if")) {
      advance();
      node->filter = parse_expression(true);
    }
    if (at_name("recursive")) fail("recursive loops are not supported", cur().pos);
    ++loop_depth_;
    node->body = parse_statements({"endfor", "else"});
    --loop_depth_;
    if (at_name("else")) {
      advance();
      node->else_body = parse_statements({"endfor"});
    }
    advance();  // endfor
    return node;
  }

  NodePtr parse_set() {
    auto node = make_node(Node::Kind::Set, cur().pos);
    advance();
    node->target = parse_assign_target(true, {});
    if (at_op("=")) {
      advance();
      node->expr = parse_tuple(false, true, {}, false, false);
      return node;
    }
    node->kind = Node::Kind::SetBlock;
    if (at_op("|")) node->filter = parse_filter(nullptr, false);
    node->body = parse_statements({"endset"});
    advance();
    return node;
  }

  NodePtr parse_macro() {
    auto node = make_node(Node::Kind::Macro, cur().pos);
    advance();
    node->text = expect_name();
    expect_op("(");
    while (!at_op(")")) {
      if (!node->params.empty()) expect_op(",");
      node->params.push_back(expect_name());
      if (at_op("=")) {
        advance();
        node->defaults.push_back(parse_expression(true));
      } else {
        if (std::any_of(node->defaults.begin(), node->defaults.end(), [](const auto& d) { return d != nullptr; })) {
          fail("non-default argument follows default argument", cur().pos);
        }
        node->defaults.push_back(nullptr);
      }
    }
    advance();
    const int saved = loop_depth_;
    loop_depth_ = 0;
    node->body = parse_statements({"endmacro"});
    loop_depth_ = saved;
    advance();
    return node;
  }

  NodePtr parse_filter_block() {
    auto node = make_node(Node::Kind::FilterBlock, cur().pos);
    advance();
    node->filter = parse_filter(nullptr, true);
    node->body = parse_statements({"endfilter"});
    advance();
    return node;
  }

  NodePtr parse_with() {
    auto node = make_node(Node::Kind::With, cur().pos);
    advance();
    while (cur().type != Tok::BlockEnd) {
      if (!node->params.empty()) expect_op(",");
      node->params.push_back(expect_name());
      expect_op("=");
      node->defaults.push_back(parse_expression(true));
    }
    node->body = parse_statements({"endwith"});
    advance();
    return node;
  }

  NodePtr parse_print() {
    auto node = make_node(Node::Kind::Group, cur().pos);
    advance();
    while (cur().type != Tok::BlockEnd) {
      if (!node->body.empty()) expect_op(",");
      auto out = make_node(Node::Kind::Output, cur().pos);
      out->expr = parse_expression(true);
      node->body.push_back(std::move(out));
    }
    return node;
  }

  NodePtr parse_generation() {  // transformers' {% generation %} marks assistant text; it renders as is
    auto node = make_node(Node::Kind::Group, cur().pos);
    advance();
    node->body = parse_statements({"endgeneration"});
    advance();
    return node;
  }

  ExprPtr parse_assign_target(bool with_namespace, const std::vector<std::string>& extra_end) {
    const size_t pos = cur().pos;
    ExprPtr target = parse_tuple(true, true, extra_end, false, with_namespace);
    auto assignable = [](const Expr& e) { return e.kind == Expr::Kind::Name || e.kind == Expr::Kind::NamespaceRef; };
    bool ok = assignable(*target);
    if (target->kind == Expr::Kind::Tuple) {
      ok = std::all_of(target->children.begin(), target->children.end(),
                       [](const auto& c) { return c->kind == Expr::Kind::Name; });
    }
    if (!ok) fail("can't assign to this expression", pos);
    return target;
  }

  // ---- expressions ----

  bool is_tuple_end(const std::vector<std::string>& extra) const {
    if (cur().type == Tok::VarEnd || cur().type == Tok::BlockEnd || at_op(")")) return true;
    return cur().type == Tok::Name && std::find(extra.begin(), extra.end(), cur().text) != extra.end();
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, const std::vector<std::string>& extra_end,
                      bool explicit_parentheses, bool with_namespace) {
    const size_t pos = cur().pos;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary(with_namespace) : parse_expression(with_condexpr));
      if (at_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) fail_here("an expression");
    }
    auto t = make(Expr::Kind::Tuple, pos);
    t->children = std::move(args);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    const NestingGuard guard(*this, cur().pos);
    ExprPtr expr = parse_or();
    while (at_name("if")) {
      const size_t pos = cur().pos;
      advance();
      auto c = make(Expr::Kind::CondExpr, pos);
      ExprPtr test = parse_or();
      ExprPtr otherwise;
      if (at_name("else")) {
        advance();
        otherwise = parse_condexpr();
      }
      c->children.push_back(std::move(expr));
      c->children.push_back(std::move(test));
      c->children.push_back(std::move(otherwise));
      expr = std::move(c);
    }
    return expr;
  }

  ExprPtr binary(Expr::Kind kind, std::string op, ExprPtr left, ExprPtr right, size_t pos) {
    auto e = make(kind, pos);
    e->name = std::move(op);
    e->children.push_back(std::move(left));
    e->children.push_back(std::move(right));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (at_name("or")) {
      const size_t pos = cur().pos;
      advance();
      left = binary(Expr::Kind::Or, "or", std::move(left), parse_and(), pos);
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (at_name("and")) {
      const size_t pos = cur().pos;
      advance();
      left = binary(Expr::Kind::And, "and", std::move(left), parse_not(), pos);
    }
    return left;
  }

  ExprPtr parse_not() {
    const NestingGuard guard(*this, cur().pos);
    if (at_name("not")) {
      auto e = make(Expr::Kind::Not, cur().pos);
      advance();
      e->children.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const size_t pos = cur().pos;
    ExprPtr first = parse_math1();
    std::vector<std::string> ops;
    std::vector<ExprPtr> operands;
    while (true) {
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        ops.push_back(cur().text);
        advance();
      } else if (at_name("in")) {
        ops.emplace_back("in");
        advance();
      } else if (at_name("not") && peek().type == Tok::Name && peek().text == "in") {
        ops.emplace_back("not in");
        advance();
        advance();
      } else {
        break;
      }
      operands.push_back(parse_math1());
    }
    if (ops.empty()) return first;
    auto e = make(Expr::Kind::Compare, pos);
    e->children.push_back(std::move(first));
    for (auto& o : operands) e->children.push_back(std::move(o));
    e->ops = std::move(ops);
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (at_op("+") || at_op("-")) {
      const std::string op = cur().text;
      const size_t pos = cur().pos;
      advance();
      left = binary(Expr::Kind::Binary, op, std::move(left), parse_concat(), pos);
    }
    return left;
  }

  ExprPtr parse_concat() {
    const size_t pos = cur().pos;
    ExprPtr first = parse_math2();
    if (!at_op("~")) return first;
    auto e = make(Expr::Kind::Concat, pos);
    e->children.push_back(std::move(first));
    while (at_op("~")) {
      advance();
      e->children.push_back(parse_math2());
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const std::string op = cur().text;
      const size_t pos = cur().pos;
      advance();
      left = binary(Expr::Kind::Binary, op, std::move(left), parse_pow(), pos);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (at_op("**")) {
      const size_t pos = cur().pos;
      advance();
      left = binary(Expr::Kind::Binary, "**", std::move(left), parse_unary(true), pos);
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    const NestingGuard guard(*this, cur().pos);
    ExprPtr node;
    if (at_op("-") || at_op("+")) {
      node = make(at_op("-") ? Expr::Kind::Neg : Expr::Kind::Pos, cur().pos);
      advance();
      node->children.push_back(parse_unary(false));
    } else {
      node = parse_primary(false);
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary(bool with_namespace) {
    const Token& t = cur();
    const size_t pos = t.pos;
    if (t.type == Tok::Name) {
      const std::string name = t.text;
      advance();
      if (name == "true" || name == "True" || name == "false" || name == "False") {
        auto e = make(Expr::Kind::Const, pos);
        e->value = Value(name == "true" || name == "True");
        return e;
      }
      if (name == "none" || name == "None") {
        auto e = make(Expr::Kind::Const, pos);
        e->value = Value(nullptr);
        return e;
      }
      if (with_namespace && at_op(".")) {
        advance();
        auto e = make(Expr::Kind::NamespaceRef, pos);
        e->name = name;
        e->attr = expect_name();
        return e;
      }
      auto e = make(Expr::Kind::Name, pos);
      e->name = name;
      return e;
    }
    if (t.type == Tok::String) {
      std::string text;
      while (cur().type == Tok::String) {
        text += cur().text;
        advance();
      }
      auto e = make(Expr::Kind::Const, pos);
      e->value = Value(std::move(text));
      return e;
    }
    if (t.type == Tok::Int || t.type == Tok::Float) {
      auto e = make(Expr::Kind::Const, pos);
      e->value = t.type == Tok::Int ? Value(t.int_value) : Value(t.float_value);
      advance();
      return e;
    }
    if (at_op("(")) {
      advance();
      ExprPtr e = parse_tuple(false, true, {}, true, false);
      expect_op(")");
      return e;
    }
    if (at_op("[")) {
      advance();
      auto e = make(Expr::Kind::List, pos);
      while (!at_op("]")) {
        if (!e->children.empty()) expect_op(",");
        if (at_op("]")) break;
        e->children.push_back(parse_expression(true));
      }
      advance();
      return e;
    }
    if (at_op("{")) {
      advance();
      auto e = make(Expr::Kind::Dict, pos);
      while (!at_op("}")) {
        if (!e->children.empty()) expect_op(",");
        if (at_op("}")) break;
        e->children.push_back(parse_expression(true));
        expect_op(":");
        e->children.push_back(parse_expression(true));
      }
      advance();
      return e;
    }
    fail(fmt::format("unexpected '{}'", describe(t)), pos);
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (at_op(".") || at_op("["))
        node = parse_subscript(std::move(node));
      else if (at_op("("))
        node = parse_call(std::move(node));
      else
        return node;
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (at_op("|"))
        node = parse_filter(std::move(node), false);
      else if (at_name("is"))
        node = parse_test(std::move(node));
      else if (at_op("("))
        node = parse_call(std::move(node));
      else
        return node;
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const size_t pos = cur().pos;
    if (at_op(".")) {
      advance();
      if (cur().type == Tok::Name) {
        auto e = make(Expr::Kind::Getattr, pos);
        e->name = cur().text;
        advance();
        e->children.push_back(std::move(node));
        return e;
      }
      if (cur().type != Tok::Int) fail_here("a name or number");
      auto key = make(Expr::Kind::Const, cur().pos);
      key->value = Value(cur().int_value);
      advance();
      auto e = make(Expr::Kind::Getitem, pos);
      e->children.push_back(std::move(node));
      e->children.push_back(std::move(key));
      return e;
    }
    advance();  // [
    std::vector<ExprPtr> args;
    while (!at_op("]")) {
      if (!args.empty()) expect_op(",");
      args.push_back(parse_subscribed());
    }
    advance();
    if (args.empty()) fail("expected a subscript expression", pos);
    auto e = make(Expr::Kind::Getitem, pos);
    e->children.push_back(std::move(node));
    if (args.size() == 1) {
      e->children.push_back(std::move(args[0]));
    } else {
      auto t = make(Expr::Kind::Tuple, pos);
      t->children = std::move(args);
      e->children.push_back(std::move(t));
    }
    return e;
  }

  ExprPtr parse_subscribed() {
    const size_t pos = cur().pos;
    ExprPtr start;
    if (!at_op(":")) {
      start = parse_expression(true);
      if (!at_op(":")) return start;
    }
    advance();  // first colon
    auto slice = make(Expr::Kind::Slice, pos);
    ExprPtr stop, step;
    if (!at_op(":") && !at_op("]") && !at_op(",")) stop = parse_expression(true);
    if (at_op(":")) {
      advance();
      if (!at_op("]") && !at_op(",")) step = parse_expression(true);
    }
    slice->children.push_back(std::move(start));
    slice->children.push_back(std::move(stop));
    slice->children.push_back(std::move(step));
    return slice;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool need_comma = false;
    while (!at_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (at_op(")")) break;
      }
      if (at_op("*") || at_op("**")) fail("*args and **kwargs in calls are not supported", cur().pos);
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail("positional argument follows keyword argument", cur().pos);
        e.children.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    advance();
  }

  ExprPtr parse_call(ExprPtr node) {
    auto e = make(Expr::Kind::Call, cur().pos);
    e->children.push_back(std::move(node));
    parse_call_args(*e);
    return e;
  }

  std::string dotted_name() {
    std::string name = expect_name();
    while (at_op(".")) {
      advance();
      name += "." + expect_name();
    }
    return name;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (at_op("|") || start_inline) {
      if (!start_inline) advance();
      start_inline = false;
      const size_t pos = cur().pos;
      auto e = make(Expr::Kind::Filter, pos);
      e->name = dotted_name();
      if (!has_filter(e->name)) fail(fmt::format("no filter named '{}'", e->name), pos);
      e->children.push_back(std::move(node));
      if (at_op("(")) parse_call_args(*e);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const size_t pos = cur().pos;
    advance();  // is
    bool negated = false;
    if (at_name("not")) {
      negated = true;
      advance();
    }
    const size_t name_pos = cur().pos;
    auto e = make(Expr::Kind::Test, pos);
    e->name = dotted_name();
    if (!has_test(e->name)) fail(fmt::format("no test named '{}'", e->name), name_pos);
    e->children.push_back(std::move(node));
    if (at_op("(")) {
      parse_call_args(*e);
    } else if ((cur().type == Tok::Name || cur().type == Tok::String || cur().type == Tok::Int ||
                cur().type == Tok::Float || at_op("[") || at_op("{")) &&
               !at_name("else") && !at_name("or") && !at_name("and")) {
      if (at_name("is")) fail("You cannot chain multiple tests with is", cur().pos);
      e->children.push_back(parse_postfix(parse_primary(false)));
    }
    if (!negated) return e;
    auto n = make(Expr::Kind::Not, pos);
    n->children.push_back(std::move(e));
    return n;
  }

  const std::string& source_;
  std::vector<Token> toks_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  int nesting_ = 0;
  std::vector<std::pair<std::string, size_t>> tags_;  // open block tags, for end-of-template errors
};

}  // namespace

Template parse_template(const std::string& source) {
  Template t;
  t.source = normalize_source(source);
  t.body = Parser(t.source, tokenize(t.source)).parse();
  return t;
}

}  // namespace peft::jinja
