#include "generate/chat_template_lexer.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "generate/chat_template_ast.h"
#include "generate/chat_template_text.h"

namespace peft::jinja {

std::string normalize_source(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t utf8_length(unsigned char c) {
  return c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
}

class Lexer {
 public:
  explicit Lexer(const std::string& src) : src_(src) {}

  std::vector<Token> run() {
    while (pos_ < src_.size()) {
      const size_t tag = find_tag(pos_);
      if (tag == std::string::npos) {
        emit(Tok::Data, src_.substr(pos_), pos_);
        break;
      }
      const char kind = src_[tag + 1];
      size_t p = tag + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      const size_t raw_content = kind == '%' ? match_raw_begin(p) : std::string::npos;
      emit_text(pos_, tag, sign, kind != '{');
      if (raw_content != std::string::npos) {
        lex_raw(raw_content, tag);
      } else if (kind == '#') {
        lex_comment(p, tag);
      } else {
        emit(kind == '{' ? Tok::VarBegin : Tok::BlockBegin, "", tag);
        pos_ = p;
        lex_tag(kind == '{');
      }
    }
    emit(Tok::Eof, "", src_.size());
    return std::move(tokens_);
  }

 private:
  bool starts(size_t p, const char* s) const { return src_.compare(p, std::strlen(s), s) == 0; }

  size_t space_at(size_t i) const {  // byte length of the whitespace code point at i, or 0
    const size_t len = utf8_length(static_cast<unsigned char>(src_[i]));
    if (i + len > src_.size()) return 0;
    const std::u32string cp = decode_utf8(std::string_view(src_).substr(i, len));
    return cp.size() == 1 && is_py_space(cp[0]) ? len : 0;
  }

  size_t skip_spaces(size_t i) const {
    while (i < src_.size()) {
      const size_t n = space_at(i);
      if (n == 0) break;
      i += n;
    }
    return i;
  }

  size_t find_tag(size_t from) const {
    for (size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
      if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
    }
    return std::string::npos;
  }

  void emit(Tok type, std::string text, size_t pos) {
    if (type == Tok::Data && text.empty()) return;
    tokens_.push_back(Token{type, std::move(text), pos});
  }

  // Text in [begin, end) before a tag: `-` strips all whitespace before it; otherwise, with
  // lstrip_blocks, block and comment tags drop the spaces between the start of their line and the tag.
  void emit_text(size_t begin, size_t end, char sign, bool lstrip_kind) {
    size_t stop = end;
    if (sign == '-') {
      size_t last = begin;
      for (size_t i = begin; i < end;) {
        const size_t n = space_at(i);
        if (n) {
          i += n;
        } else {
          i += utf8_length(static_cast<unsigned char>(src_[i]));
          last = i;
        }
      }
      stop = last;
    } else if (sign != '+' && lstrip_kind) {
      const size_t nl = src_.rfind('\n', end == 0 ? 0 : end - 1);
      const size_t line = (nl == std::string::npos || nl < begin) ? begin : nl + 1;
      if ((line > begin || line_starting_) && line < end && skip_spaces(line) == end) stop = line;
    }
    emit(Tok::Data, src_.substr(begin, stop - begin), begin);
  }

  // After `{%` and its sign: `\s*raw\s*(-%}\s*|%})`; returns where the raw content starts.
  size_t match_raw_begin(size_t p) const {
    size_t q = skip_spaces(p);
    if (!starts(q, "raw")) return std::string::npos;
    q = skip_spaces(q + 3);
    if (starts(q, "-%}")) return skip_spaces(q + 3);
    if (starts(q, "%}")) return q + 2;
    return std::string::npos;
  }

  // Where a block end at p finishes (trim_blocks eats one newline), or npos.
  size_t block_end_at(size_t p) const {
    if (starts(p, "+%}")) return p + 3;
    if (starts(p, "-%}")) return skip_spaces(p + 3);
    if (starts(p, "%}")) return p + 2 + (p + 2 < src_.size() && src_[p + 2] == '\n' ? 1 : 0);
    return std::string::npos;
  }

  void finish_at(size_t end) {
    line_starting_ = end > 0 && src_[end - 1] == '\n';
    pos_ = end;
  }

  void lex_raw(size_t content, size_t tag) {
    line_starting_ = content > 0 && src_[content - 1] == '\n';
    for (size_t q = src_.find("{%", content); q != std::string::npos; q = src_.find("{%", q + 1)) {
      size_t p = q + 2;
      char sign = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) sign = src_[p++];
      p = skip_spaces(p);
      if (!starts(p, "endraw")) continue;
      const size_t end = block_end_at(skip_spaces(p + 6));
      if (end == std::string::npos) continue;
      emit_text(content, q, sign, true);
      finish_at(end);
      return;
    }
    throw SyntaxError{"Missing end of raw directive", tag};
  }

  void lex_comment(size_t p, size_t tag) {
    for (size_t q = p; q < src_.size(); ++q) {
      if (starts(q, "+#}")) return finish_at(q + 3);
      if (starts(q, "-#}")) return finish_at(skip_spaces(q + 3));
      if (starts(q, "#}")) return finish_at(q + 2 + (q + 2 < src_.size() && src_[q + 2] == '\n' ? 1 : 0));
    }
    throw SyntaxError{"Missing end of comment tag", tag};
  }

  // `(\d+_)*\d+` at p: its end, or npos.
  size_t digits(size_t p) const {
    if (p >= src_.size() || !is_digit(src_[p])) return std::string::npos;
    while (p < src_.size() && is_digit(src_[p])) ++p;
    while (p + 1 < src_.size() && src_[p] == '_' && is_digit(src_[p + 1])) {
      ++p;
      while (p < src_.size() && is_digit(src_[p])) ++p;
    }
    return p;
  }

  size_t match_float(size_t p) const {
    if (p > 0 && src_[p - 1] == '.') return std::string::npos;
    const size_t whole = digits(p);
    if (whole == std::string::npos) return std::string::npos;
    size_t frac = std::string::npos;
    if (whole < src_.size() && src_[whole] == '.') frac = digits(whole + 1);
    size_t e = frac != std::string::npos ? frac : whole;
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t q = e + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      const size_t exp_end = digits(q);
      if (exp_end != std::string::npos) return exp_end;
    }
    return frac;
  }

  size_t match_int(size_t p, int& base) const {
    base = 10;
    auto run = [&](size_t q, auto ok) {  // (_?[digit])+
      size_t end = std::string::npos;
      while (q < src_.size()) {
        size_t r = q + (src_[q] == '_' ? 1 : 0);
        if (r < src_.size() && ok(src_[r])) {
          end = q = r + 1;
        } else {
          break;
        }
      }
      return end;
    };
    if (src_[p] == '0' && p + 1 < src_.size()) {
      const char x = static_cast<char>(src_[p + 1] | 0x20);
      size_t end = std::string::npos;
      if (x == 'b') {
        base = 2;
        end = run(p + 2, [](char c) { return c == '0' || c == '1'; });
      } else if (x == 'o') {
        base = 8;
        end = run(p + 2, [](char c) { return c >= '0' && c <= '7'; });
      } else if (x == 'x') {
        base = 16;
        end = run(p + 2, [](char c) { return hex_value(c) >= 0; });
      }
      if (end != std::string::npos) return end;
      base = 10;
    }
    if (src_[p] >= '1' && src_[p] <= '9') {
      const size_t end = run(p + 1, is_digit);
      return end == std::string::npos ? p + 1 : end;
    }
    if (src_[p] == '0') {
      const size_t end = run(p + 1, [](char c) { return c == '0'; });
      return end == std::string::npos ? p + 1 : end;
    }
    return std::string::npos;
  }

  // Python's unicode-escape decoding of a string literal's body, as jinja2 applies it.
  std::string unescape(size_t begin, size_t end) const {
    std::string out;
    for (size_t i = begin; i < end; ++i) {
      if (src_[i] != '\\' || i + 1 >= end) {
        out.push_back(src_[i]);
        continue;
      }
      const char c = src_[++i];
      switch (c) {
        case '\n':
          break;
        case '\\':
          out.push_back('\\');
          break;
        case '\'':
          out.push_back('\'');
          break;
        case '"':
          out.push_back('"');
          break;
        case 'a':
          out.push_back('\a');
          break;
        case 'b':
          out.push_back('\b');
          break;
        case 'f':
          out.push_back('\f');
          break;
        case 'n':
          out.push_back('\n');
          break;
        case 'r':
          out.push_back('\r');
          break;
        case 't':
          out.push_back('\t');
          break;
        case 'v':
          out.push_back('\v');
          break;
        case 'x':
        case 'u':
        case 'U': {
          const size_t width = c == 'x' ? 2 : c == 'u' ? 4 : 8;
          char32_t cp = 0;
          for (size_t k = 1; k <= width; ++k) {
            const int h = i + k < end ? hex_value(src_[i + k]) : -1;
            if (h < 0) throw SyntaxError{fmt::format("truncated \\{} escape", c), i - 1};
            cp = cp * 16 + static_cast<char32_t>(h);
          }
          if (cp > 0x10FFFF) throw SyntaxError{"illegal Unicode character", i - 1};
          append_utf8(out, cp);
          i += width;
          break;
        }
        case 'N':
          throw SyntaxError{"\\N{...} escapes are not supported", i - 1};
        default:
          if (c >= '0' && c <= '7') {
            char32_t cp = 0;
            size_t k = 0;
            while (k < 3 && i + k < end && src_[i + k] >= '0' && src_[i + k] <= '7')
              cp = cp * 8 + (src_[i + k++] - '0');
            append_utf8(out, cp);
            i += k - 1;
          } else {
            out.push_back('\\');
            out.push_back(c);
          }
      }
    }
    return out;
  }

  void lex_tag(bool variable) {
    std::string balance;  // closing brackets expected, innermost last
    while (pos_ < src_.size()) {
      if (balance.empty()) {
        if (variable) {
          if (starts(pos_, "-}}") || starts(pos_, "}}")) {
            emit(Tok::VarEnd, "", pos_);
            return finish_at(src_[pos_] == '-' ? skip_spaces(pos_ + 3) : pos_ + 2);
          }
        } else if (const size_t end = block_end_at(pos_); end != std::string::npos) {
          emit(Tok::BlockEnd, "", pos_);
          return finish_at(end);
        }
      }
      const size_t p = pos_;
      if (const size_t ws = skip_spaces(p); ws > p) {
        pos_ = ws;
        continue;
      }
      const char c = src_[p];
      int base = 10;
      if (const size_t end = match_float(p); end != std::string::npos) {
        std::string text;
        for (size_t i = p; i < end; ++i) {
          if (src_[i] != '_') text.push_back(src_[i]);
        }
        tokens_.push_back(Token{Tok::Float, text, p, 0, std::strtod(text.c_str(), nullptr)});
        pos_ = end;
      } else if (const size_t iend = is_digit(c) ? match_int(p, base) : std::string::npos; iend != std::string::npos) {
        std::string text;
        for (size_t i = p + (base == 10 ? 0 : 2); i < iend; ++i) {
          if (src_[i] != '_') text.push_back(src_[i]);
        }
        errno = 0;
        const unsigned long long v = std::strtoull(text.c_str(), nullptr, base);
        if (errno == ERANGE || v > static_cast<unsigned long long>(INT64_MAX)) {
          throw SyntaxError{"integer literal too large", p};
        }
        tokens_.push_back(Token{Tok::Int, src_.substr(p, iend - p), p, static_cast<int64_t>(v), 0});
        pos_ = iend;
      } else if (is_name_start(c)) {
        size_t end = p;
        while (end < src_.size() && is_name_char(src_[end])) ++end;
        emit(Tok::Name, src_.substr(p, end - p), p);
        pos_ = end;
      } else if (c == '\'' || c == '"') {
        size_t i = p + 1;
        while (i < src_.size() && src_[i] != c) i += src_[i] == '\\' ? 2 : 1;
        if (i >= src_.size()) throw SyntaxError{"unterminated string literal", p};
        tokens_.push_back(Token{Tok::String, unescape(p + 1, i), p});
        pos_ = i + 1;
      } else {
        lex_operator(p, balance);
      }
    }
  }

  void lex_operator(size_t p, std::string& balance) {
    static const char* const kTwo[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : kTwo) {
      if (starts(p, op)) {
        emit(Tok::Op, op, p);
        pos_ = p + 2;
        return;
      }
    }
    const char c = src_[p];
    if (std::strchr("+-/*%~[](){}><=.:|,;", c) == nullptr) {
      const size_t len = utf8_length(static_cast<unsigned char>(c));
      throw SyntaxError{fmt::format("unexpected char '{}'", src_.substr(p, len)), p};
    }
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) throw SyntaxError{fmt::format("unexpected '{}'", c), p};
      if (balance.back() != c) throw SyntaxError{fmt::format("unexpected '{}', expected '{}'", c, balance.back()), p};
      balance.pop_back();
    }
    emit(Tok::Op, std::string(1, c), p);
    pos_ = p + 1;
  }

  const std::string& src_;
  size_t pos_ = 0;
  bool line_starting_ = true;  // the previous match ended a line (lstrip_blocks applies at pos_)
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(source).run(); }

}  // namespace peft::jinja
