#pragma once
// The decoders of byte-level BPE tokenizers (`tokenizers`' ByteFallback, Fuse, Replace, ByteLevel,
// in the order tokenizer.json lists them): token strings -> text.
#include <string>
#include <vector>

namespace peft::tok {

class BpeDecoder {
 public:
  struct Step {
    enum Kind { ByteFallback, Fuse, Replace, ByteLevel } kind;
    std::string from, to;  // Replace
  };
  BpeDecoder() = default;  // no decoder: `tokenizers` joins the tokens with spaces
  explicit BpeDecoder(std::vector<Step> steps) : steps_(std::move(steps)), present_(true) {}
  static BpeDecoder byte_level() { return BpeDecoder(std::vector<Step>{{Step::ByteLevel, {}, {}}}); }

  // What `tokenizers`' decode() returns for these tokens.
  std::string decode(std::vector<std::string> tokens) const;
  // The raw bytes one token adds when tokens are decoded one at a time (byte tokens become their
  // byte, then each step on the token alone), before the UTF-8 repair.
  void append_piece(const std::string& token, bool first, std::string& out) const;

 private:
  std::vector<Step> steps_;
  bool present_ = false;
};

}  // namespace peft::tok
