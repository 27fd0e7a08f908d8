#include "tokenize/bert_normalizer.h"

#include <vector>

#include "tokenize/unicode.h"

namespace peft::tok {

using namespace unicode;

BertNormalizer::BertNormalizer(const BertNormalizerOptions& options)
    : clean_text_(options.clean_text),
      chinese_(options.handle_chinese_chars),
      strip_accents_(options.strip_accents.value_or(options.lowercase)),
      lowercase_(options.lowercase) {}

BertNormalizer BertNormalizer::identity() {
  BertNormalizerOptions none;
  none.clean_text = none.handle_chinese_chars = none.lowercase = false;
  none.strip_accents = false;
  return BertNormalizer(none);
}

void BertNormalizer::normalize(std::string_view text, std::string& out) const {
  out.clear();
  bool ascii = true;
  for (char c : text) ascii &= static_cast<unsigned char>(c) < 0x80;
  if (ascii) {  // the common case: no decoding, no decompositions, no CJK
    out.resize(text.size());
    char* o = out.data();
    for (char c : text) {
      const uint8_t flags = kAsciiClasses[static_cast<unsigned char>(c)];
      if (clean_text_ && (flags & (kRemove | kSpace))) {
        if (flags & kRemove) continue;
        c = ' ';
      }
      if (lowercase_ && c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      *o++ = c;
    }
    out.resize(static_cast<size_t>(o - out.data()));
    return;
  }

  out.reserve(text.size());
  thread_local std::vector<char32_t> cps, nfd;  // scratch, reused across calls
  cps.clear();
  for (size_t pos = 0; pos < text.size();) {
    char32_t cp = decode_utf8(text, pos);
    const uint8_t flags = char_class(cp);
    if (clean_text_ && (flags & kRemove)) continue;
    if (clean_text_ && (flags & kSpace)) cp = ' ';
    if (chinese_ && (flags & kChinese)) {
      cps.push_back(' ');
      cps.push_back(cp);
      cps.push_back(' ');
    } else {
      cps.push_back(cp);
    }
  }
  if (strip_accents_) {  // NFD, then drop the non-spacing marks
    nfd.clear();
    for (char32_t cp : cps) append_nfd(nfd, cp);
    canonical_order(nfd);
    cps.clear();
    for (char32_t cp : nfd)
      if (!has(cp, kMark)) cps.push_back(cp);
  }
  for (char32_t cp : cps) {
    if (lowercase_) append_lower_utf8(out, cp);
    else append_utf8(out, cp);
  }
}

}  // namespace peft::tok
