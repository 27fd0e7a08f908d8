#pragma once
// Code point level helpers over the generated tables, plus UTF-8 decoding/encoding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenize/unicode_data.h"

namespace peft::tok::unicode {

constexpr char32_t kReplacement = 0xFFFD;

// Decodes the code point at text[pos] and advances pos. Ill-formed input yields U+FFFD per maximal
// ill-formed subsequence (what Python's bytes.decode("utf-8", "replace") does), so byte strings
// that are not valid UTF-8 behave like their Python replacement-decoded string.
char32_t decode_utf8(std::string_view text, size_t& pos);
void append_utf8(std::string& out, char32_t cp);

uint8_t char_class(char32_t cp);
inline bool has(char32_t cp, ClassFlag flag) { return (char_class(cp) & flag) != 0; }
uint8_t combining_class(char32_t cp);
// RegexFlag bits of cp.
uint8_t regex_class_slow(char32_t cp);  // cp >= 128
inline uint8_t regex_class(char32_t cp) { return cp < 128 ? kAsciiRegexClasses[cp] : regex_class_slow(cp); }

// Offset of the first byte of text that is not part of well-formed UTF-8, or npos.
size_t invalid_utf8_offset(std::string_view text);

// Appends the full canonical decomposition of cp (cp itself when it has none).
void append_nfd(std::vector<char32_t>& out, char32_t cp);
// Sorts each run of non-starters by combining class (stable), as NFD requires.
void canonical_order(std::vector<char32_t>& cps);
// Appends the full lowercase mapping of cp as UTF-8, one code point at a time without context (as
// Rust's char::to_lowercase, which tokenizers uses: no final-sigma rule).
void append_lower_utf8(std::string& out, char32_t cp);

}  // namespace peft::tok::unicode
