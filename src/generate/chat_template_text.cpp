#include "generate/chat_template_text.h"

#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <system_error>

namespace peft::jinja {

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(c);
      ++i;
      continue;
    }
    const int extra = (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
    if (extra < 0 || i + static_cast<size_t>(extra) >= s.size()) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    char32_t cp = extra == 1 ? (c & 0x1F) : extra == 2 ? (c & 0x0F) : (c & 0x07);
    bool ok = true;
    for (int k = 1; k <= extra; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 0x2) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (d & 0x3F);
    }
    if (!ok) {
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += extra + 1;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) append_utf8(out, cp);
  return out;
}

bool is_py_space(char32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

namespace {

// Upper-case ranges: cp in [lo, hi] with (cp - lo) % stride == 0 lowercases to cp + delta. Covers the
// scripts chat messages commonly use; full Unicode case tables are not worth their size here.
struct CaseRange {
  char32_t lo, hi;
  int32_t delta;
  int32_t stride;
};
constexpr std::array<CaseRange, 33> kUpperRanges{{
    {0x41, 0x5A, 32, 1},     {0xC0, 0xD6, 32, 1},    {0xD8, 0xDE, 32, 1},     {0x100, 0x12E, 1, 2},
    {0x132, 0x136, 1, 2},    {0x139, 0x147, 1, 2},   {0x14A, 0x176, 1, 2},    {0x178, 0x178, -121, 1},
    {0x179, 0x17D, 1, 2},    {0x1CD, 0x1DB, 1, 2},   {0x1DE, 0x1EE, 1, 2},    {0x1F8, 0x21E, 1, 2},
    {0x222, 0x232, 1, 2},    {0x386, 0x386, 38, 1},  {0x388, 0x38A, 37, 1},   {0x38C, 0x38C, 64, 1},
    {0x38E, 0x38F, 63, 1},   {0x391, 0x3A1, 32, 1},  {0x3A3, 0x3AB, 32, 1},   {0x3D8, 0x3EE, 1, 2},
    {0x400, 0x40F, 80, 1},   {0x410, 0x42F, 32, 1},  {0x460, 0x480, 1, 2},    {0x48A, 0x4BE, 1, 2},
    {0x4C0, 0x4C0, 15, 1},   {0x4C1, 0x4CD, 1, 2},   {0x4D0, 0x52E, 1, 2},    {0x531, 0x556, 48, 1},
    {0x1E00, 0x1E94, 1, 2},  {0x1EA0, 0x1EFE, 1, 2}, {0x2160, 0x216F, 16, 1}, {0x24B6, 0x24CF, 26, 1},
    {0xFF21, 0xFF3A, 32, 1},
}};

}  // namespace

namespace {

// DŽ Dž dž, LJ Lj lj, NJ Nj nj, DZ Dz dz: upper, title and lower forms in triples.
bool digraph(char32_t cp, char32_t& base) {
  if (cp >= 0x1C4 && cp <= 0x1CC)
    base = 0x1C4 + (cp - 0x1C4) / 3 * 3;
  else if (cp >= 0x1F1 && cp <= 0x1F3)
    base = 0x1F1;
  else
    return false;
  return true;
}

}  // namespace

char32_t lower_cp(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp == 0x130) return 'i';
  if (cp == 0x1E9E) return 0xDF;  // ẞ; ß itself uppercases to "SS"
  if (char32_t base = 0; digraph(cp, base)) return base + 2;
  for (const auto& r : kUpperRanges) {
    if (cp >= r.lo && cp <= r.hi && (cp - r.lo) % r.stride == 0) return static_cast<char32_t>(cp + r.delta);
  }
  return cp;
}

char32_t upper_cp(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  switch (cp) {
    case 0xB5:
      return 0x39C;
    case 0x131:
      return 'I';
    case 0x17F:
      return 'S';
    case 0x3C2:
      return 0x3A3;
    case 0xDF:
      return 0xDF;  // full mapping "SS" is handled by py_upper
    default:
      break;
  }
  if (char32_t base = 0; digraph(cp, base)) return base;
  for (const auto& r : kUpperRanges) {
    const char32_t lo = static_cast<char32_t>(r.lo + r.delta), hi = static_cast<char32_t>(r.hi + r.delta);
    if (cp >= lo && cp <= hi && (cp - lo) % r.stride == 0) return static_cast<char32_t>(cp - r.delta);
  }
  return cp;
}

bool is_cased(char32_t cp) { return cp == 0xDF || lower_cp(cp) != cp || upper_cp(cp) != cp; }

bool is_alpha(char32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  return is_cased(cp) || (cp >= 0x5D0 && cp <= 0x5EA) || (cp >= 0x620 && cp <= 0x64A) || (cp >= 0x904 && cp <= 0x939) ||
         (cp >= 0xE01 && cp <= 0xE30) || (cp >= 0x3041 && cp <= 0x30FF) || (cp >= 0x4E00 && cp <= 0x9FFF) ||
         (cp >= 0xAC00 && cp <= 0xD7A3);
}

std::string py_upper(std::string_view s) {
  std::string out;
  for (char32_t cp : decode_utf8(s)) {
    if (cp == 0xDF)
      out += "SS";
    else
      append_utf8(out, upper_cp(cp));
  }
  return out;
}

std::string py_lower(std::string_view s) {
  std::string out;
  const std::u32string cps = decode_utf8(s);
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t cp = cps[i];
    if (cp == 0x3A3) {  // final sigma: after a cased letter and not before one
      const bool after = i > 0 && is_cased(cps[i - 1]);
      const bool before = i + 1 < cps.size() && is_cased(cps[i + 1]);
      append_utf8(out, after && !before ? 0x3C2 : 0x3C3);
      continue;
    }
    append_utf8(out, lower_cp(cp));
    if (cp == 0x130) append_utf8(out, 0x307);  // İ lowercases to i + combining dot
  }
  return out;
}

std::string py_title(std::string_view s) {
  std::string out;
  bool previous_cased = false;
  for (char32_t cp : decode_utf8(s)) {
    if (is_cased(cp)) {
      if (previous_cased)
        append_utf8(out, lower_cp(cp));
      else if (cp == 0xDF)
        out += "Ss";
      else
        append_utf8(out, upper_cp(cp));
      previous_cased = true;
    } else {
      append_utf8(out, cp);
      previous_cased = false;
    }
  }
  return out;
}

std::string py_capitalize(std::string_view s) {
  const std::u32string cps = decode_utf8(s);
  std::string out;
  for (size_t i = 0; i < cps.size(); ++i) {
    if (i == 0) {
      if (cps[0] == 0xDF)
        out += "Ss";
      else
        append_utf8(out, upper_cp(cps[0]));
    } else {
      append_utf8(out, lower_cp(cps[i]));
    }
  }
  return out;
}

std::string jinja_title(std::string_view s) {
  std::string out;
  bool word_start = true;
  for (char32_t cp : decode_utf8(s)) {
    const bool separator = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || is_py_space(cp);
    if (separator) {
      append_utf8(out, cp);
      word_start = true;
    } else if (word_start) {
      if (cp == 0xDF)
        out += "SS";
      else
        append_utf8(out, upper_cp(cp));
      word_start = false;
    } else {
      append_utf8(out, lower_cp(cp));
    }
  }
  return out;
}

std::string py_strip(std::string_view s, const std::string* chars, bool left, bool right) {
  const std::u32string cps = decode_utf8(s);
  const std::u32string set = chars ? decode_utf8(*chars) : std::u32string();
  auto strip_it = [&](char32_t cp) { return chars ? set.find(cp) != std::u32string::npos : is_py_space(cp); };
  size_t begin = 0, end = cps.size();
  if (left) {
    while (begin < end && strip_it(cps[begin])) ++begin;
  }
  if (right) {
    while (end > begin && strip_it(cps[end - 1])) --end;
  }
  return encode_utf8(std::u32string_view(cps).substr(begin, end - begin));
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  const std::u32string cps = decode_utf8(s);
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85 ||
                     c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    size_t end = i + 1;
    if (c == '\r' && end < cps.size() && cps[end] == '\n') ++end;
    lines.push_back(encode_utf8(std::u32string_view(cps).substr(start, (keepends ? end : i) - start)));
    start = end;
    i = end - 1;
  }
  if (start < cps.size()) lines.push_back(encode_utf8(std::u32string_view(cps).substr(start)));
  return lines;
}

std::string float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
  std::array<char, 64> buf{};
  const auto res = std::to_chars(buf.data(), buf.data() + buf.size(), d, std::chars_format::scientific);
  std::string sci(buf.data(), res.ptr);
  std::string out;
  size_t i = 0;
  if (sci[0] == '-') {
    out.push_back('-');
    i = 1;
  }
  const size_t e = sci.find('e');
  std::string digits;
  for (size_t k = i; k < e; ++k) {
    if (sci[k] != '.') digits.push_back(sci[k]);
  }
  const int exponent = std::stoi(sci.substr(e + 1));
  const int decpt = exponent + 1;  // digits are 0.d1d2... * 10^decpt
  const int nd = static_cast<int>(digits.size());
  if (decpt <= -4 || decpt > 16) {  // Python's repr switches to exponent notation here
    out += digits.substr(0, 1);
    if (nd > 1) out += "." + digits.substr(1);
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp_buf;
  } else if (decpt <= 0) {
    out += "0." + std::string(static_cast<size_t>(-decpt), '0') + digits;
  } else if (decpt >= nd) {
    out += digits + std::string(static_cast<size_t>(decpt - nd), '0') + ".0";
  } else {
    out += digits.substr(0, static_cast<size_t>(decpt)) + "." + digits.substr(static_cast<size_t>(decpt));
  }
  return out;
}

namespace {

bool is_printable(char32_t cp) {
  if (cp < 0x20 || (cp >= 0x7F && cp <= 0xA0) || cp == 0xAD) return false;
  if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202F)) return false;
  if ((cp >= 0x205F && cp <= 0x206F) || cp == 0x3000 || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB)) return false;
  if ((cp >= 0xD800 && cp <= 0xF8FF) || cp >= 0xE0000) return false;
  return true;
}

void append_hex(std::string& out, const char* prefix, char32_t cp, int width) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%s%0*x", prefix, width, static_cast<unsigned>(cp));
  out += buf;
}

}  // namespace

std::string string_repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t cp : decode_utf8(s)) {
    if (cp == static_cast<char32_t>(quote) || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (is_printable(cp)) {
      append_utf8(out, cp);
    } else if (cp < 0x100) {
      append_hex(out, "\\x", cp, 2);
    } else if (cp < 0x10000) {
      append_hex(out, "\\u", cp, 4);
    } else {
      append_hex(out, "\\U", cp, 8);
    }
  }
  out.push_back(quote);
  return out;
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
  out.push_back('"');
  for (char32_t cp : decode_utf8(s)) {
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
      if (cp >= 0x10000) {
        const char32_t v = cp - 0x10000;
        append_hex(out, "\\u", 0xD800 + (v >> 10), 4);
        append_hex(out, "\\u", 0xDC00 + (v & 0x3FF), 4);
      } else {
        append_hex(out, "\\u", cp, 4);
      }
    } else {
      append_utf8(out, cp);
    }
  }
  out.push_back('"');
}

}  // namespace peft::jinja
