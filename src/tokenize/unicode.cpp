#include "tokenize/unicode.h"

#include <algorithm>

namespace peft::tok::unicode {
namespace {

// Hangul syllables decompose arithmetically (Unicode 3.12).
constexpr char32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr char32_t kVCount = 21, kTCount = 28, kSCount = 11172;

// Last table entry whose lo <= cp, or nullptr.
template <typename T>
const T* find_range(const T* table, size_t count, char32_t cp) {
  const T* end = table + count;
  const T* it = std::upper_bound(table, end, cp, [](char32_t c, const T& r) { return c < r.lo; });
  return it == table ? nullptr : it - 1;
}

}  // namespace

char32_t decode_utf8(std::string_view text, size_t& pos) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) {
    ++pos;
    return b0;
  }
  size_t need;
  char32_t cp;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1, cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    ++pos;
    return kReplacement;
  }
  ++pos;
  for (size_t i = 0; i < need; ++i, lo = 0x80, hi = 0xBF) {
    if (pos >= text.size() || byte(pos) < lo || byte(pos) > hi) return kReplacement;
    cp = (cp << 6) | (byte(pos) & 0x3F);
    ++pos;
  }
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint8_t char_class(char32_t cp) {
  if (cp < 128) return kAsciiClasses[cp];
  const ClassRange* r = find_range(kClassRanges, kClassRangeCount, cp);
  return (r != nullptr && cp <= r->hi) ? r->flags : 0;
}

uint8_t regex_class_slow(char32_t cp) {
  const ClassRange* r = find_range(kRegexClassRanges, kRegexClassRangeCount, cp);
  return (r != nullptr && cp <= r->hi) ? r->flags : 0;
}

size_t invalid_utf8_offset(std::string_view text) {
  for (size_t pos = 0; pos < text.size();) {
    if (static_cast<unsigned char>(text[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t start = pos;
    // decode_utf8 yields U+FFFD for ill-formed input; tell it from a literal U+FFFD.
    if (decode_utf8(text, pos) == kReplacement && text.substr(start, pos - start) != "\xEF\xBF\xBD")
      return start;
  }
  return std::string_view::npos;
}

uint8_t combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  const CccRange* r = find_range(kCccRanges, kCccRangeCount, cp);
  return (r != nullptr && cp <= r->hi) ? r->ccc : 0;
}

void append_nfd(std::vector<char32_t>& out, char32_t cp) {
  if (cp < 0xC0) {
    out.push_back(cp);
    return;
  }
  if (cp >= kSBase && cp < kSBase + kSCount) {
    const char32_t s = cp - kSBase;
    out.push_back(kLBase + s / (kVCount * kTCount));
    out.push_back(kVBase + (s % (kVCount * kTCount)) / kTCount);
    if (s % kTCount != 0) out.push_back(kTBase + s % kTCount);
    return;
  }
  const Decomposition* end = kDecompositions + kDecompositionCount;
  const Decomposition* it = std::lower_bound(kDecompositions, end, cp,
                                             [](const Decomposition& d, char32_t c) { return d.cp < c; });
  if (it == end || it->cp != cp) {
    out.push_back(cp);
    return;
  }
  out.insert(out.end(), kDecompositionPool + it->offset, kDecompositionPool + it->offset + it->length);
}

void canonical_order(std::vector<char32_t>& cps) {
  // Insertion sort within each run of non-starters: runs are short and usually sorted already.
  for (size_t i = 1; i < cps.size(); ++i) {
    const uint8_t ccc = combining_class(cps[i]);
    if (ccc == 0) continue;
    size_t j = i;
    const char32_t cp = cps[i];
    while (j > 0) {
      const uint8_t prev = combining_class(cps[j - 1]);
      if (prev == 0 || prev <= ccc) break;
      cps[j] = cps[j - 1];
      --j;
    }
    cps[j] = cp;
  }
}

void append_lower_utf8(std::string& out, char32_t cp) {
  if (cp < 128) {
    out += static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    return;
  }
  const LowerRange* r = find_range(kLowerRanges, kLowerRangeCount, cp);
  if (r != nullptr && cp <= r->hi && (cp - r->lo) % r->stride == 0) {
    append_utf8(out, static_cast<char32_t>(static_cast<int32_t>(cp) + r->delta));
    return;
  }
  for (size_t i = 0; i < kLowerMultiCount; ++i) {
    if (kLowerMulti[i].cp == cp) {
      for (uint8_t k = 0; k < kLowerMulti[i].length; ++k) append_utf8(out, kLowerMulti[i].out[k]);
      return;
    }
  }
  append_utf8(out, cp);
}

}  // namespace peft::tok::unicode
