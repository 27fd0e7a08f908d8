#pragma once
// The steps after the model, shared by every tokenizer: truncation of the (pair of) id sequences
// and the special-token template ([CLS] A [SEP] B [SEP]), with `tokenizers`' exact semantics.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "peft/tokenize/tokenizer.h"

namespace peft::tok {

// One element of a template: a special token (its ids) or the A/B sequence.
struct TemplatePiece {
  enum Kind { Special, SequenceA, SequenceB } kind;
  std::vector<int64_t> ids;  // Special only
  int64_t type_id = 0;
};

class TemplateProcessor {
 public:
  TemplateProcessor() = default;  // adds nothing; pair type ids 0 / 1
  TemplateProcessor(std::vector<TemplatePiece> single, std::vector<TemplatePiece> pair);
  // [CLS] A [SEP] and [CLS] A [SEP] B [SEP] with type ids 0 / 1 (BertProcessing).
  static TemplateProcessor bert(int64_t cls_id, int64_t sep_id);

  size_t added_tokens(bool pair) const;
  // ids, type_ids and attention_mask of the final encoding (tokens are left to the caller).
  // Without special tokens, the sequences keep the template's type ids.
  Encoding apply(const std::vector<int64_t>& a, const std::vector<int64_t>* b,
                 bool add_special_tokens) const;

 private:
  std::vector<TemplatePiece> single_, pair_;
};

// The truncation options resolve to: strategy and max_length (special tokens included).
struct TruncationPlan {
  Truncation strategy;
  size_t max_length;
};
// transformers' rules: an unset strategy is LongestFirst when max_length is set and padding is
// None; a strategy without max_length uses model_max_length; nullopt means no truncation.
std::optional<TruncationPlan> resolve_truncation(const EncodeOptions& options,
                                                 std::optional<size_t> model_max_length);

// Truncates a (and b) so that their total length fits `budget` (max_length minus the special
// tokens), as `tokenizers`' truncate_encodings. Throws peft::Error when OnlyFirst/OnlySecond
// cannot fit.
void truncate_sequences(std::vector<int64_t>& a, std::vector<int64_t>* b, Truncation strategy,
                        size_t budget);

// Model ids of one or two sequences -> finished encoding (without tokens or padding).
Encoding post_process(std::vector<int64_t> a, std::optional<std::vector<int64_t>> b,
                      const EncodeOptions& options, const TemplateProcessor& processor,
                      std::optional<size_t> model_max_length);

}  // namespace peft::tok
