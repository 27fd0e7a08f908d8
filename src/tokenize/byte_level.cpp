#include "tokenize/byte_level.h"

#include <array>

#include "tokenize/unicode.h"

namespace peft::tok::byte_level {
namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes show as themselves, the other 68 bytes as
// U+0100, U+0101, ... in byte order.
struct Alphabet {
  std::array<std::string, 256> chars;
  std::array<int16_t, 512> bytes;  // by code point; every alphabet code point is below U+0144
  Alphabet() {
    bytes.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      unicode::append_utf8(chars[b], cp);
      bytes[cp] = static_cast<int16_t>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

}  // namespace

const std::string& char_of(uint8_t b) { return alphabet().chars[b]; }

int byte_of(char32_t cp) { return cp < 512 ? alphabet().bytes[cp] : -1; }

void encode(std::string_view bytes, std::string& out) {
  const Alphabet& a = alphabet();
  for (char c : bytes) out += a.chars[static_cast<unsigned char>(c)];
}

bool decode(std::string_view token, std::string& out) {
  const size_t start = out.size();
  for (size_t pos = 0; pos < token.size();) {
    const int b = byte_of(unicode::decode_utf8(token, pos));
    if (b < 0) {
      out.resize(start);
      out.append(token);
      return false;
    }
    out += static_cast<char>(b);
  }
  return true;
}

}  // namespace peft::tok::byte_level
