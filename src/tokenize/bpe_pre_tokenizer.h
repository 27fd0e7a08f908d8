#pragma once
// The pre-tokenizers of byte-level BPE tokenizers: the split regexes of GPT-2, Llama-3 and Qwen2
// as hand-written matchers over code points (same matches as `tokenizers`' Oniguruma regexes),
// `tokenizers`' Digits, and ByteLevel's optional prefix space. Input must be valid UTF-8.
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace peft::tok {

enum class SplitRegex {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  Gpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
  Llama3,
  Qwen2  // Llama3 with \p{N} instead of \p{N}{1,3}
};

// The exact pattern string of each regex (as tokenizer.json stores it).
const char* split_regex_pattern(SplitRegex regex);

// Appends the matches of the regex in text (they cover all of it) as views into text.
void split_with_regex(SplitRegex regex, std::string_view text, std::vector<std::string_view>& out);

// `tokenizers`' Digits: numeric characters (Rust's char::is_numeric) apart from the rest, each
// alone when individual, else in runs.
void split_digits(std::string_view text, bool individual, std::vector<std::string_view>& out);

// One step of a pre-tokenizer Sequence.
struct PreTokenizerStep {
  enum Kind { Split, Digits, ByteLevel } kind = ByteLevel;
  SplitRegex regex = SplitRegex::Gpt2;  // Split
  bool individual_digits = false;       // Digits
  bool add_prefix_space = false;        // ByteLevel: a space before each piece that has none
  bool use_regex = true;                // ByteLevel: then split with the GPT-2 regex
};

class BpePreTokenizer {
 public:
  BpePreTokenizer() = default;
  explicit BpePreTokenizer(std::vector<PreTokenizerStep> steps) : steps_(std::move(steps)) {}

  // Appends the words of text (raw bytes; the byte-level alphabet is applied by the model). The
  // views point into text or into storage, which holds pieces given a prefix space.
  void split(std::string_view text, std::vector<std::string_view>& words, std::deque<std::string>& storage) const;

 private:
  std::vector<PreTokenizerStep> steps_;
};

}  // namespace peft::tok
