#pragma once
// BERT's WordPiece tokenizer: BertNormalizer + BertPreTokenizer + greedy longest-match WordPiece
// + [CLS]/[SEP] template, matching Hugging Face `tokenizers` id for id.
#include <memory>
#include <optional>
#include <string>

#include "peft/tokenize/tokenizer.h"

namespace peft::tok {

// Options of a vocab.txt tokenizer (the fields of transformers' BertTokenizer).
struct WordPieceOptions {
  bool lowercase = true;
  std::optional<bool> strip_accents;  // unset: follows lowercase, as in transformers
  bool tokenize_chinese_chars = true;
  bool clean_text = true;
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
  std::optional<std::string> bos_token, eos_token;  // BERT has none
  bool clean_up_tokenization_spaces = true;         // transformers' BERT default, used by decode()
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
  std::optional<size_t> model_max_length;
};

// What transformers takes from tokenizer_config.json on top of a tokenizer.json.
struct TokenizerJsonOptions {
  std::optional<size_t> model_max_length;
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
  std::optional<std::string> bos_token, eos_token;
  bool clean_up_tokenization_spaces = true;
  // BERT-family fast tokenizers (BertTokenizerFast, DistilBertTokenizerFast, ...) rebuild the
  // BertNormalizer from their own arguments (do_lower_case, strip_accents,
  // tokenize_chinese_chars; defaults true, unset, true) when these differ from tokenizer.json's.
  struct BertNormalizerOverride {
    bool lowercase = true;
    std::optional<bool> strip_accents;
    bool tokenize_chinese_chars = true;
  };
  std::optional<BertNormalizerOverride> bert_normalizer;
};

class WordPieceTokenizer final : public Tokenizer {
 public:
  // vocab.txt: one token per line, the id is the line number. The special tokens found in the
  // vocabulary are matched literally in input text; unk, cls and sep must be present.
  static std::unique_ptr<WordPieceTokenizer> from_vocab_file(const std::string& vocab_path,
                                                             const WordPieceOptions& options = {});
  // A `tokenizers` tokenizer.json with a WordPiece model, BertNormalizer (or none),
  // BertPreTokenizer (or none) and TemplateProcessing/BertProcessing (or none). Its stored
  // truncation and padding are ignored, as transformers does unless asked. decoder: WordPiece or none.
  static std::unique_ptr<WordPieceTokenizer> from_tokenizer_json(
      const std::string& json_path, const TokenizerJsonOptions& options = {});

  ~WordPieceTokenizer() override;

  std::vector<std::string> tokenize(std::string_view text) const override;
  Encoding encode(std::string_view text, std::optional<std::string_view> pair = std::nullopt,
                  const EncodeOptions& options = {}) const override;
  // The ids of text without special tokens (the fast path for callers that add their own).
  void encode_ids(std::string_view text, std::vector<int64_t>& ids) const;

  // `tokenizers`' WordPiece decoder ("##" pieces joined to the previous token, others after a
  // space, its per-token cleanup), then transformers' clean_up_tokenization when enabled.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const override;
  bool decode_piece(int64_t id, size_t kept_before, bool skip_special_tokens, std::string& out) const override;
  bool decode_cleans_up() const override;

  std::optional<int64_t> token_to_id(std::string_view token) const override;
  std::string id_to_token(int64_t id) const override;
  size_t vocab_size() const override;
  std::optional<int64_t> bos_id() const override;
  std::optional<int64_t> eos_id() const override;
  std::optional<int64_t> pad_id() const override;
  std::optional<int64_t> cls_id() const override;
  std::optional<int64_t> sep_id() const override;
  std::optional<int64_t> unk_id() const override;
  std::optional<int64_t> mask_id() const override;
  std::optional<size_t> model_max_length() const override;

  struct Impl;

 private:
  explicit WordPieceTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace peft::tok
