// Tokenisers of the NLG metrics and the helpers they share.
#include <algorithm>

#include "eval/nlg_detail.h"
#include "peft/error.h"

namespace peft::eval {
namespace detail {

void check_corpus(const char* metric, const std::vector<std::string>& hypotheses, const References& references) {
  if (hypotheses.size() != references.size())
    fail("{}: {} hypotheses but {} reference lists", metric, hypotheses.size(), references.size());
  if (hypotheses.empty()) fail("{}: no hypotheses", metric);
  for (size_t i = 0; i < references.size(); ++i)
    if (references[i].empty()) fail("{}: hypothesis {} has no references", metric, i);
}

NgramCounts count_ngrams(const Tokens& tokens, int n) {
  NgramCounts counts;
  if (n <= 0 || tokens.size() < size_t(n)) return counts;
  for (size_t i = 0; i + size_t(n) <= tokens.size(); ++i) {
    std::string key = tokens[i];
    for (size_t k = 1; k < size_t(n); ++k) key.append(1, ' ').append(tokens[i + k]);
    ++counts[key];
  }
  return counts;
}

NgramCounts max_ref_counts(const std::vector<Tokens>& refs, int n) {
  NgramCounts merged;
  for (const auto& ref : refs)
    for (const auto& [gram, count] : count_ngrams(ref, n)) {
      int64_t& best = merged[gram];
      best = std::max(best, count);
    }
  return merged;
}

size_t decode_utf8(const std::string& text, size_t i, uint32_t& cp) {
  const auto c = static_cast<unsigned char>(text[i]);
  size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (len == 0 || i + len > text.size()) {
    cp = c;
    return 1;
  }
  cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) {
      cp = c;
      return 1;
    }
    cp = (cp << 6) | (b & 0x3F);
  }
  return len;
}

// Python's str.isspace() code points.
static bool nlg_is_unicode_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

Tokens split_unicode_whitespace(const std::string& text) {
  Tokens out;
  std::string cur;
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    const size_t len = decode_utf8(text, i, cp);
    if (nlg_is_unicode_space(cp)) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.append(text, i, len);
    }
    i += len;
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::string rstrip_unicode_whitespace(const std::string& text) {
  size_t end = 0;  // one past the last non-space character
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    const size_t len = decode_utf8(text, i, cp);
    i += len;
    if (!nlg_is_unicode_space(cp)) end = i;
  }
  return text.substr(0, end);
}

}  // namespace detail

namespace detail {

static void nlg_replace_all(std::string& s, const std::string& from, const std::string& to) {
  if (s.find(from) == std::string::npos) return;
  std::string out;
  size_t start = 0;
  for (size_t hit; (hit = s.find(from, start)) != std::string::npos; start = hit + from.size())
    out.append(s, start, hit - start).append(to);
  out.append(s, start, std::string::npos);
  s = std::move(out);
}

// The first 13a rule's class [\{-\~\[-\` -\&\(-\+\:-\@\/]: ASCII punctuation and symbols except
// ' , - . (and the space, whose padding is harmless).
static bool nlg_13a_symbol(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u >= 0x7B && u <= 0x7E) || (u >= 0x5B && u <= 0x60) || (u >= 0x20 && u <= 0x26) ||
         (u >= 0x28 && u <= 0x2B) || (u >= 0x3A && u <= 0x40) || u == 0x2F;
}

static bool nlg_digit(char c) { return c >= '0' && c <= '9'; }
static bool nlg_dot_comma(char c) { return c == '.' || c == ','; }

// One pass of a two-character rule as Python's re.sub makes it: non-overlapping matches, left to
// right. Byte-wise scanning gives the same result on UTF-8 as re on code points: [^0-9] then
// sees only the last byte of a multi-byte character before [.,], and continuation bytes never
// start a match.
template <typename Match, typename Emit>
static std::string nlg_pair_rule(const std::string& s, Match match, Emit emit) {
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    if (i + 1 < s.size() && match(s[i], s[i + 1])) {
      emit(out, s[i], s[i + 1]);
      i += 2;
    } else {
      out += s[i++];
    }
  }
  return out;
}

static void nlg_ascii_lower(std::string& s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
}

}  // namespace detail

std::vector<std::string> tokenize_13a(const std::string& text, bool lowercase) {
  using namespace detail;
  std::string s = rstrip_unicode_whitespace(text);  // sacrebleu tokenises sent.rstrip()
  if (lowercase) nlg_ascii_lower(s);
  nlg_replace_all(s, "<skipped>", "");
  nlg_replace_all(s, "-\n", "");
  nlg_replace_all(s, "\n", " ");
  nlg_replace_all(s, "&quot;", "\"");
  nlg_replace_all(s, "&amp;", "&");
  nlg_replace_all(s, "&lt;", "<");
  nlg_replace_all(s, "&gt;", ">");

  std::string padded = " ";
  for (char c : s) {
    if (nlg_13a_symbol(c)) padded.append(1, ' ').append(1, c).append(1, ' ');
    else padded += c;
  }
  padded += ' ';
  // period and comma unless preceded by a digit
  s = nlg_pair_rule(
      padded, [](char a, char b) { return !nlg_digit(a) && nlg_dot_comma(b); },
      [](std::string& o, char a, char b) { o.append(1, a).append(1, ' ').append(1, b).append(1, ' '); });
  // period and comma unless followed by a digit
  s = nlg_pair_rule(
      s, [](char a, char b) { return nlg_dot_comma(a) && !nlg_digit(b); },
      [](std::string& o, char a, char b) { o.append(1, ' ').append(1, a).append(1, ' ').append(1, b); });
  // dash after a digit
  s = nlg_pair_rule(
      s, [](char a, char b) { return nlg_digit(a) && b == '-'; },
      [](std::string& o, char a, char b) { o.append(1, a).append(1, ' ').append(1, b).append(1, ' '); });
  return split_unicode_whitespace(s);
}

std::vector<std::string> tokenize_rouge(const std::string& text) {
  // Python lowers first, then drops everything outside [a-z0-9]. The only non-ASCII characters
  // whose lowercase holds an ASCII letter are U+0130 (-> "i" + combining dot) and U+212A (-> "k").
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    if (!cur.empty()) out.push_back(std::move(cur));
    cur.clear();
  };
  for (size_t i = 0; i < text.size();) {
    uint32_t cp;
    i += detail::decode_utf8(text, i, cp);
    if ((cp >= 'a' && cp <= 'z') || (cp >= '0' && cp <= '9')) cur += static_cast<char>(cp);
    else if (cp >= 'A' && cp <= 'Z') cur += static_cast<char>(cp - 'A' + 'a');
    else if (cp == 0x212A) cur += 'k';
    else if (cp == 0x130) {
      cur += 'i';
      flush();
    } else {
      flush();
    }
  }
  flush();
  return out;
}

std::vector<std::string> tokenize_coco(const std::string& text) {
  // coco's PUNCTUATIONS list; PTB's -LRB- -RRB- -LCB- -RCB- are 13a's ( ) { }.
  static const char* const dropped[] = {".", ",", ";", ":", "?", "!", "-", "--", "...", "'", "''",
                                        "`", "``", "(", ")", "{", "}"};
  std::vector<std::string> out;
  for (auto& tok : tokenize_13a(text, /*lowercase=*/true))
    if (std::none_of(std::begin(dropped), std::end(dropped), [&](const char* p) { return tok == p; }))
      out.push_back(std::move(tok));
  return out;
}

}  // namespace peft::eval
