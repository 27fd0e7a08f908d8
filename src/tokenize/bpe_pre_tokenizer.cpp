#include "tokenize/bpe_pre_tokenizer.h"

#include "tokenize/unicode.h"

namespace peft::tok {
namespace {

using unicode::kLetter;
using unicode::kNumber;
using unicode::kWhite;

// A code point of valid UTF-8 text and the position after it.
struct Cp {
  char32_t cp;
  size_t next;
  uint8_t cls;
};

Cp cp_at(std::string_view text, size_t pos) {
  const unsigned char b = static_cast<unsigned char>(text[pos]);
  if (b < 0x80) return {b, pos + 1, unicode::kAsciiRegexClasses[b]};
  size_t next = pos;
  const char32_t cp = unicode::decode_utf8(text, next);
  return {cp, next, unicode::regex_class(cp)};
}

bool is_other(uint8_t cls) { return (cls & (kLetter | kNumber | kWhite)) == 0; }

// End of the run of code points from pos whose class passes keep.
template <typename Keep>
size_t run_end(std::string_view text, size_t pos, Keep keep) {
  while (pos < text.size()) {
    const Cp c = cp_at(text, pos);
    if (!keep(c.cls)) break;
    pos = c.next;
  }
  return pos;
}

size_t letters_end(std::string_view t, size_t p) { return run_end(t, p, [](uint8_t c) { return (c & kLetter) != 0; }); }
size_t numbers_end(std::string_view t, size_t p) { return run_end(t, p, [](uint8_t c) { return (c & kNumber) != 0; }); }
size_t others_end(std::string_view t, size_t p) { return run_end(t, p, is_other); }

// The whitespace rules shared by both regex families, at a whitespace code point:
// \s+(?!\S) keeps the last space of a run for the word after it, \s+ takes a lone one.
size_t whitespace_match(std::string_view text, size_t pos) {
  size_t last = pos, end = pos;
  while (end < text.size()) {
    const Cp c = cp_at(text, end);
    if (!(c.cls & kWhite)) break;
    last = end;
    end = c.next;
  }
  if (end == text.size() || last == pos) return end;
  return last;
}

bool ascii_is(std::string_view text, size_t pos, char c) { return pos < text.size() && text[pos] == c; }

size_t gpt2_match(std::string_view text, size_t pos) {
  // 's|'t|'re|'ve|'m|'ll|'d (case-sensitive)
  if (text[pos] == '\'' && pos + 1 < text.size()) {
    const char c = text[pos + 1];
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return pos + 2;
    if (pos + 2 < text.size()) {
      const char d = text[pos + 2];
      if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return pos + 3;
    }
  }
  Cp c = cp_at(text, pos);
  size_t from = c.next;
  if (c.cp == ' ' && c.next < text.size()) {  // the optional space of the next three rules
    const Cp d = cp_at(text, c.next);
    if (!(d.cls & kWhite)) {
      c = d;
      from = d.next;
    }
  }
  if (c.cls & kLetter) return letters_end(text, from);
  if (c.cls & kNumber) return numbers_end(text, from);
  if (is_other(c.cls)) return others_end(text, from);
  return whitespace_match(text, pos);
}

// Oniguruma's case-insensitive match of one contraction letter: ASCII case, plus 'ſ' for 's'
// (checked by gen_unicode_tables.py).
char fold_letter(char32_t cp) {
  if (cp == 0x17F) return 's';
  if (cp >= 'A' && cp <= 'Z') return static_cast<char>(cp + 32);
  if (cp >= 'a' && cp <= 'z') return static_cast<char>(cp);
  return 0;
}

size_t llama3_match(std::string_view text, size_t pos, int max_digits) {
  const Cp c = cp_at(text, pos);
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c.cp == '\'' && c.next < text.size()) {
    const Cp d = cp_at(text, c.next);
    const char x = fold_letter(d.cp);
    if (x == 's' || x == 't' || x == 'm' || x == 'd') return d.next;
    if (d.next < text.size() && (x == 'r' || x == 'v' || x == 'l')) {
      const Cp e = cp_at(text, d.next);
      const char y = fold_letter(e.cp);
      if ((x != 'l' && y == 'e') || (x == 'l' && y == 'l')) return e.next;
    }
  }
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c.cls & kLetter) return letters_end(text, c.next);
  if (c.cp != '\r' && c.cp != '\n' && !(c.cls & kNumber) && c.next < text.size()) {
    const Cp d = cp_at(text, c.next);
    if (d.cls & kLetter) return letters_end(text, d.next);
  }
  // \p{N}{1,3}
  if (c.cls & kNumber) {
    size_t end = c.next;
    for (int n = 1; n < max_digits && end < text.size(); ++n) {
      const Cp d = cp_at(text, end);
      if (!(d.cls & kNumber)) break;
      end = d.next;
    }
    return end;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  size_t from = pos;
  if (c.cp == ' ' && c.next < text.size() && is_other(cp_at(text, c.next).cls)) from = c.next;
  if (is_other(cp_at(text, from).cls)) {
    size_t end = others_end(text, from);
    while (ascii_is(text, end, '\r') || ascii_is(text, end, '\n')) ++end;
    return end;
  }
  // \s*[\r\n]+ : up to the last line break of the whitespace run
  size_t end = pos, after_break = 0;
  while (end < text.size()) {
    const Cp d = cp_at(text, end);
    if (!(d.cls & kWhite)) break;
    if (d.cp == '\r' || d.cp == '\n') after_break = d.next;
    end = d.next;
  }
  if (after_break != 0) return after_break;
  return whitespace_match(text, pos);
}

}  // namespace

const char* split_regex_pattern(SplitRegex regex) {
  switch (regex) {
    case SplitRegex::Gpt2:
      return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
    case SplitRegex::Llama3:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    case SplitRegex::Qwen2:
      return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  }
  return "";
}

void split_with_regex(SplitRegex regex, std::string_view text, std::vector<std::string_view>& out) {
  for (size_t pos = 0; pos < text.size();) {
    const size_t end = regex == SplitRegex::Gpt2 ? gpt2_match(text, pos)
                                                 : llama3_match(text, pos, regex == SplitRegex::Llama3 ? 3 : 1);
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
}

void split_digits(std::string_view text, bool individual, std::vector<std::string_view>& out) {
  size_t start = 0;
  bool in_digits = false;
  for (size_t pos = 0; pos < text.size();) {
    const Cp c = cp_at(text, pos);
    const bool digit = (c.cls & unicode::kNumeric) != 0;
    if (pos > start && (digit != in_digits || (digit && individual))) {
      out.push_back(text.substr(start, pos - start));
      start = pos;
    }
    in_digits = digit;
    pos = c.next;
  }
  if (start < text.size()) out.push_back(text.substr(start));
}

void BpePreTokenizer::split(std::string_view text, std::vector<std::string_view>& words,
                            std::deque<std::string>& storage) const {
  thread_local std::vector<std::string_view> current, next;
  current.assign(1, text);
  for (const PreTokenizerStep& step : steps_) {
    next.clear();
    for (std::string_view piece : current) {
      switch (step.kind) {
        case PreTokenizerStep::Split:
          split_with_regex(step.regex, piece, next);
          break;
        case PreTokenizerStep::Digits:
          split_digits(piece, step.individual_digits, next);
          break;
        case PreTokenizerStep::ByteLevel:
          if (step.add_prefix_space && !piece.empty() && piece[0] != ' ') {
            storage.push_back(" " + std::string(piece));
            piece = storage.back();
          }
          if (step.use_regex) split_with_regex(SplitRegex::Gpt2, piece, next);
          else next.push_back(piece);
          break;
      }
    }
    current.swap(next);
  }
  for (std::string_view w : current)
    if (!w.empty()) words.push_back(w);
}

}  // namespace peft::tok
