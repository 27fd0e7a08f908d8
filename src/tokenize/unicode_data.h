#pragma once
// Unicode tables for the BERT normaliser and pre-tokenizer, generated into unicode_data.cpp by
// scripts/fixtures/gen_unicode_tables.py. All tables are sorted by code point and hold ranges, so
// lookups are binary searches over a few hundred entries.
#include <cstddef>
#include <cstdint>

namespace peft::tok::unicode {

// Character classes as Hugging Face `tokenizers` sees them (it mixes Unicode versions).
enum ClassFlag : uint8_t {
  kRemove = 1,   // dropped by clean_text: NUL, U+FFFD, Cc/Cf/Co except \t \n \r
  kSpace = 2,    // White_Space: mapped to ' ' by clean_text, split on by the pre-tokenizer
  kPunct = 4,    // isolated by the pre-tokenizer (ASCII punctuation and P*)
  kMark = 8,     // non-spacing mark (Mn): dropped by strip_accents after NFD
  kChinese = 16  // CJK ideograph: handle_chinese_chars puts spaces around it
};

struct ClassRange {
  char32_t lo, hi;
  uint8_t flags;
};
struct CccRange {  // canonical combining class, for NFD's canonical ordering
  char32_t lo, hi;
  uint8_t ccc;
};
struct Decomposition {  // full canonical decomposition (Hangul syllables are computed instead)
  char32_t cp;
  uint16_t offset;  // into kDecompositionPool
  uint8_t length;
};
struct LowerRange {  // cp in [lo, hi] with (cp - lo) % stride == 0 lowercases to cp + delta
  char32_t lo, hi;
  uint8_t stride;
  int32_t delta;
};
struct LowerMulti {  // lowercase mappings to several code points (U+0130)
  char32_t cp;
  char32_t out[3];
  uint8_t length;
};

extern const uint8_t kAsciiClasses[128];  // the hot path: classes of ASCII without a search
extern const ClassRange kClassRanges[];
extern const size_t kClassRangeCount;
extern const CccRange kCccRanges[];
extern const size_t kCccRangeCount;
extern const Decomposition kDecompositions[];
extern const size_t kDecompositionCount;
extern const char32_t kDecompositionPool[];
extern const LowerRange kLowerRanges[];
extern const size_t kLowerRangeCount;
extern const LowerMulti kLowerMulti[];
extern const size_t kLowerMultiCount;

}  // namespace peft::tok::unicode
