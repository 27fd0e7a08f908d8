#pragma once
// Added tokens (special tokens such as [CLS], [MASK]) are found in the input before the model
// runs, as `tokenizers`' AddedVocabulary does: leftmost-longest matches, each becoming one token.
// Tokens with normalized=false match the raw text; normalized=true ones match the normalised text.
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace peft::tok {

struct AddedToken {
  std::string content;
  int64_t id = -1;
  bool special = true;
  bool normalized = false;
  bool lstrip = false;  // the match also swallows whitespace on its left
  bool rstrip = false;  // ... and on its right
};

class AddedVocab {
 public:
  // A piece of input: an added token (id >= 0) or text for the model (id < 0).
  struct Piece {
    std::string_view text;
    int64_t id;
  };
  using Normalize = std::function<void(std::string_view, std::string&)>;

  AddedVocab() = default;
  // normalize prepares the content of normalized=true tokens for matching.
  AddedVocab(std::vector<AddedToken> tokens, const Normalize& normalize);

  // Splits text at the matches of the raw (normalized=false) tokens; appends to out.
  void split_raw(std::string_view text, std::vector<Piece>& out) const { split(raw_, text, out); }
  // Splits normalised text at the matches of the normalized=true tokens; appends to out.
  void split_normalized(std::string_view text, std::vector<Piece>& out) const {
    split(normalized_, text, out);
  }
  bool has_normalized() const { return !normalized_.patterns.empty(); }

  std::optional<int64_t> find(std::string_view content) const;
  const std::string* content(int64_t id) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct Pattern {
    std::string text;
    size_t token;  // index into tokens_
  };
  struct Matcher {
    std::vector<Pattern> patterns;                        // longest first
    std::array<std::vector<size_t>, 256> by_first_byte;  // indices into patterns, longest first
    std::array<bool, 256> first_byte{};                   // some pattern starts with this byte
    int only_first_byte = -1;  // the one byte all patterns start with ('[' for BERT), else -1
  };
  void split(const Matcher& m, std::string_view text, std::vector<Piece>& out) const;
  static void index(Matcher& m);

  std::vector<AddedToken> tokens_;
  Matcher raw_, normalized_;
};

}  // namespace peft::tok
