#pragma once
// `tokenizers`' BertPreTokenizer: splits on whitespace (dropped) and isolates every punctuation
// character as its own word.
#include <string_view>
#include <vector>

namespace peft::tok {

// Appends the words of normalised (valid UTF-8) text to words; the views point into text.
void bert_pre_tokenize(std::string_view text, std::vector<std::string_view>& words);

}  // namespace peft::tok
