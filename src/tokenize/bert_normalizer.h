#pragma once
// `tokenizers`' BertNormalizer: clean_text, handle_chinese_chars, strip_accents, lowercase, applied
// in that order (the order matters: 'İ' strips to 'I' before lowercasing when accents are stripped).
#include <optional>
#include <string>
#include <string_view>

namespace peft::tok {

struct BertNormalizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;  // unset: follows lowercase
  bool lowercase = true;
};

class BertNormalizer {
 public:
  BertNormalizer() : BertNormalizer(BertNormalizerOptions{}) {}
  explicit BertNormalizer(const BertNormalizerOptions& options);
  // All steps off: the text only goes through UTF-8 validation.
  static BertNormalizer identity();

  // Writes the normalised text into out (always valid UTF-8: ill-formed input becomes U+FFFD,
  // which clean_text then removes).
  void normalize(std::string_view text, std::string& out) const;

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

}  // namespace peft::tok
