#pragma once
// Tokens of a chat template. Text between tags arrives already trimmed by the whitespace rules, so the
// parser never sees whitespace control.
#include <cstdint>
#include <string>
#include <vector>

namespace peft::jinja {

enum class Tok { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, Eof };

struct Token {
  Tok type;
  std::string text;  // Data / Name / Op text, String value (unescaped)
  size_t pos = 0;    // offset into the normalized source
  int64_t int_value = 0;
  double float_value = 0;
};

// jinja2's newline handling: \r\n and \r become \n, and one trailing newline is dropped
// (keep_trailing_newline=False).
std::string normalize_source(const std::string& source);

// Tokenizes the normalized source; throws SyntaxError. Always ends with an Eof token.
std::vector<Token> tokenize(const std::string& source);

}  // namespace peft::jinja
