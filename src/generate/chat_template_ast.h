#pragma once
// Syntax tree of a chat template (the Jinja subset chat templates use) and the parser that builds it.
// The lexer reproduces jinja2's whitespace rules as transformers configures them (trim_blocks and
// lstrip_blocks on, `-` / `+` modifiers, one trailing newline dropped), so text nodes hold exactly
// the characters that get printed.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "generate/chat_template_value.h"

namespace peft::jinja {

struct SyntaxError {
  std::string message;
  size_t pos;  // offset into the normalized source
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Const,
    Name,
    NamespaceRef,
    List,
    Tuple,
    Dict,
    Getattr,
    Getitem,
    Slice,
    Call,
    Filter,
    Test,
    Neg,
    Pos,
    Not,
    Binary,
    And,
    Or,
    Compare,
    Concat,
    CondExpr,
  };
  Kind kind;
  size_t pos = 0;
  Value value;       // Const
  std::string name;  // Name / NamespaceRef variable, Getattr attribute, Filter / Test name, Binary operator
  std::string attr;  // NamespaceRef attribute
  // Getattr: [object]; Getitem: [object, key]; Slice: [start, stop, step] (null when omitted);
  // Call: [callee, args...]; Filter / Test: [input (null in filter blocks), args...]; Binary: [left, right];
  // Compare: [first, operands...]; Concat / List / Tuple: items; Dict: key, value, key, value...;
  // CondExpr: [then, condition, else (null when omitted)]; Neg / Pos / Not: [operand].
  std::vector<ExprPtr> children;
  std::vector<std::string> ops;                         // Compare: one per operand
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // Call / Filter / Test keyword arguments
};

struct Node;
using NodePtr = std::unique_ptr<Node>;
using Body = std::vector<NodePtr>;

struct Node {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, FilterBlock, With, Break, Continue, Group };
  Kind kind;
  size_t pos = 0;
  std::string text;      // Text; Macro name
  ExprPtr expr;          // Output / Set value, If condition, For iterable
  ExprPtr target;        // Set / SetBlock / For target: Name, NamespaceRef or Tuple of Names
  ExprPtr filter;        // For: the `if` condition; SetBlock / FilterBlock: filter chain (innermost input null)
  Body body, else_body;  // If: elif chains are nested Ifs in else_body
  std::vector<std::string> params;  // Macro parameters; With targets
  std::vector<ExprPtr> defaults;    // Macro defaults (null when none); With values
};

struct Template {
  std::string source;  // normalized: \r\n and \r become \n, one trailing newline dropped
  Body body;
};

// Throws SyntaxError.
Template parse_template(const std::string& source);

// Line and column (1-based, in code points) of an offset into the normalized source.
std::pair<size_t, size_t> line_column(const std::string& source, size_t pos);

}  // namespace peft::jinja
