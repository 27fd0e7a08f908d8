#pragma once
// The parts of a WordPieceTokenizer; the loaders in wordpiece_load.cpp assemble them.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/tokenize/wordpiece.h"
#include "tokenize/added_vocab.h"
#include "tokenize/bert_normalizer.h"
#include "tokenize/post_process.h"
#include "tokenize/wordpiece_model.h"

namespace peft::tok {

struct WordPieceTokenizer::Impl {
  Impl(BertNormalizer normalizer, bool pre_tokenize, WordPieceModel model,
       std::vector<AddedToken> added_tokens, TemplateProcessor processor);

  // Model ids of text: added tokens, then normalise, pre-tokenize, WordPiece.
  void encode_ids(std::string_view text, std::vector<int64_t>& ids) const;
  std::optional<int64_t> find(std::string_view token) const;
  const std::string* token(int64_t id) const;  // nullptr when unknown
  static std::unique_ptr<WordPieceTokenizer> make(std::unique_ptr<Impl> impl) {
    return std::unique_ptr<WordPieceTokenizer>(new WordPieceTokenizer(std::move(impl)));
  }

  BertNormalizer normalizer;
  bool pre_tokenize;  // false: a tokenizer.json without pre-tokenizer (each piece is one word)
  WordPieceModel model;
  AddedVocab added;
  TemplateProcessor processor;
  std::optional<int64_t> pad, cls, sep, mask, bos, eos;
  std::optional<size_t> model_max_length;
  // The decoder: "##"-style prefix of continuation pieces (none: tokens joined by spaces, as
  // `tokenizers` does without a decoder) and its per-token cleanup; then transformers' clean-up.
  std::optional<std::string> decoder_prefix = "##";
  bool decoder_cleanup = true;
  bool clean_up_tokenization_spaces = true;
  std::vector<const std::string*> tokens_by_id;  // added tokens over the model vocabulary
};

// from_tokenizer_json for an already parsed file (load_tokenizer reads it to pick the model).
std::unique_ptr<WordPieceTokenizer> wordpiece_from_json(const nlohmann::json& j, const std::string& path,
                                                        const TokenizerJsonOptions& options);

}  // namespace peft::tok
