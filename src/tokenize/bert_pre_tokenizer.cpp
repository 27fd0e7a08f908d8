#include "tokenize/bert_pre_tokenizer.h"

#include "tokenize/unicode.h"

namespace peft::tok {

void bert_pre_tokenize(std::string_view text, std::vector<std::string_view>& words) {
  size_t word_start = 0;
  for (size_t pos = 0; pos < text.size();) {
    const size_t start = pos;
    const unsigned char b = static_cast<unsigned char>(text[pos]);
    uint8_t flags;
    if (b < 0x80) {
      flags = unicode::kAsciiClasses[b];
      ++pos;
    } else {
      flags = unicode::char_class(unicode::decode_utf8(text, pos));
    }
    if (flags & (unicode::kSpace | unicode::kPunct)) {
      if (start > word_start) words.push_back(text.substr(word_start, start - word_start));
      if (flags & unicode::kPunct) words.push_back(text.substr(start, pos - start));
      word_start = pos;
    }
  }
  if (text.size() > word_start) words.push_back(text.substr(word_start));
}

}  // namespace peft::tok
