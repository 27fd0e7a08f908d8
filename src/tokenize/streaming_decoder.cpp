// StreamingDecoder: decode() split at points where neither UTF-8 nor the clean-up can change the
// text before them, whatever comes next.
#include "peft/tokenize/tokenizer.h"
#include "tokenize/decode_text.h"

namespace peft::tok {
namespace {

// Bytes at the end of s that start a UTF-8 character more bytes could still complete (0 if none).
// Anything else at the end is final: a complete character, or bytes already ill-formed.
size_t unfinished_utf8(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    const auto lead = static_cast<unsigned char>(s[s.size() - back]);
    if ((lead & 0xC0) == 0x80) continue;  // a continuation byte: look further back for the lead
    const size_t need = lead >= 0xC2 && lead <= 0xDF ? 2 : lead >= 0xE0 && lead <= 0xEF ? 3
                      : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    if (need <= back) return 0;
    for (size_t i = 1; i < back; ++i) {  // the second byte's range depends on the lead
      const auto c = static_cast<unsigned char>(s[s.size() - back + i]);
      unsigned char lo = 0x80, hi = 0xBF;
      if (i == 1 && lead == 0xE0) lo = 0xA0;
      if (i == 1 && lead == 0xED) hi = 0x9F;
      if (i == 1 && lead == 0xF0) lo = 0x90;
      if (i == 1 && lead == 0xF4) hi = 0x8F;
      if (c < lo || c > hi) return 0;
    }
    return back;
  }
  return 0;
}

// Whether clean_up_tokenization(a + b) == clean_up_tokenization(a) + clean_up_tokenization(b) for
// every b, with a = s[0, p). Its rules only delete spaces, each rule starts with a space and is at
// most 4 characters long, and only " ' " holds a space after its first character. So p is safe
// when the 5 characters before it hold no space, or when s[p] is a space not preceded by " '".
bool cleanup_safe(std::string_view s, size_t p) {
  if (p == 0) return true;
  if (p < s.size() && s[p] == ' ') return !(p >= 2 && s[p - 1] == '\'' && s[p - 2] == ' ');
  size_t q = p;
  for (int chars = 0; chars < 5; ++chars) {
    if (q == 0) return false;  // fewer than 5 characters: the next piece may still matter
    do --q;
    while (q > 0 && (static_cast<unsigned char>(s[q]) & 0xC0) == 0x80);
    if (s[q] == ' ') return false;
  }
  return true;
}

}  // namespace

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_tokens_(skip_special_tokens) {}

std::string StreamingDecoder::push(int64_t id) {
  if (tokenizer_.decode_piece(id, kept_, skip_special_tokens_, pending_)) ++kept_;
  size_t end = pending_.size() - unfinished_utf8(pending_);
  if (tokenizer_.decode_cleans_up()) {
    while (end > 0 && !cleanup_safe(pending_, end)) {
      do --end;  // to the previous character boundary
      while (end > 0 && (static_cast<unsigned char>(pending_[end]) & 0xC0) == 0x80);
    }
  }
  return take(end);
}

std::string StreamingDecoder::flush() { return take(pending_.size()); }

void StreamingDecoder::reset() {
  kept_ = 0;
  pending_.clear();
}

std::string StreamingDecoder::take(size_t end) {
  if (end == 0) return {};
  std::string text = lossy_utf8(std::string_view(pending_).substr(0, end));
  pending_.erase(0, end);
  if (tokenizer_.decode_cleans_up()) clean_up_tokenization(text);
  return text;
}

}  // namespace peft::tok
