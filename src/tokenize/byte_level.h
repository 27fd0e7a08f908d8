#pragma once
// GPT-2's byte-level alphabet: every byte is shown as one printable code point (space is 'Ġ',
// newline 'Ċ'), so that BPE works on any byte string with a 256-symbol base vocabulary.
#include <cstdint>
#include <string>
#include <string_view>

namespace peft::tok::byte_level {

// The UTF-8 of the code point byte b is shown as.
const std::string& char_of(uint8_t b);
// The byte shown as cp, or -1 when cp is not in the alphabet.
int byte_of(char32_t cp);

// Appends the byte-level form of raw bytes.
void encode(std::string_view bytes, std::string& out);
// Appends the bytes that token (in the byte-level alphabet) stands for. A token with a code point
// outside the alphabet (an added token such as "日本") is appended as it is, as `tokenizers`' ByteLevel
// decoder does. Returns false in that case.
bool decode(std::string_view token, std::string& out);

}  // namespace peft::tok::byte_level
