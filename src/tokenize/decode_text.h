#pragma once
// Text clean-ups of decoding, shared by the tokenizers' decode().
#include <string>
#include <string_view>

namespace peft::tok {

// bytes with each maximal ill-formed UTF-8 subsequence replaced by U+FFFD (Rust's
// String::from_utf8_lossy, which `tokenizers`' ByteLevel decoder uses).
std::string lossy_utf8(std::string_view bytes);

// Python's str.replace: every non-overlapping occurrence, left to right.
void replace_all(std::string& text, std::string_view from, std::string_view to);

// transformers' clean_up_tokenization (clean_up_tokenization_spaces=True): " ." -> ".", " ' " -> "'",
// " n't" -> "n't", ... in transformers' order.
void clean_up_tokenization(std::string& text);

// `tokenizers`' WordPiece decoder cleanup, applied to each token with its leading space: the same
// list plus " do not" -> " don't".
void wordpiece_cleanup(std::string& token);

}  // namespace peft::tok
