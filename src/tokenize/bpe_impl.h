#pragma once
// The parts of a BpeTokenizer; the loaders (bpe_load.cpp, bpe_files.cpp, bpe_gguf.cpp) assemble them.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/tokenize/bpe.h"
#include "tokenize/added_vocab.h"
#include "tokenize/bpe_decoder.h"
#include "tokenize/bpe_model.h"
#include "tokenize/bpe_pre_tokenizer.h"
#include "tokenize/post_process.h"

namespace peft::tok {

struct BpeTokenizer::Impl {
  Impl(BpeModel model, BpePreTokenizer pre_tokenizer, std::vector<AddedToken> added_tokens,
       TemplateProcessor processor, BpeDecoder decoder);

  // Model ids of text: added tokens, then pre-tokenize, BPE. Error on invalid UTF-8.
  void encode_ids(std::string_view text, std::vector<int64_t>& ids) const;
  std::optional<int64_t> find(std::string_view token) const;
  const std::string* token(int64_t id) const;  // nullptr when unknown
  bool is_special(int64_t id) const;           // a special added token
  // Sets bos..mask from token names, each optional; an unknown name leaves its id unset.
  void set_specials(const std::optional<std::string>& bos, const std::optional<std::string>& eos,
                    const std::optional<std::string>& unk, const std::optional<std::string>& pad,
                    const std::optional<std::string>& cls, const std::optional<std::string>& sep,
                    const std::optional<std::string>& mask);
  static std::unique_ptr<BpeTokenizer> make(std::unique_ptr<Impl> impl) {
    return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
  }

  BpeModel model;
  BpePreTokenizer pre_tokenizer;
  AddedVocab added;
  TemplateProcessor processor;
  BpeDecoder decoder;
  bool clean_up_tokenization_spaces = false;
  std::optional<int64_t> bos, eos, unk, pad, cls, sep, mask;
  std::optional<size_t> model_max_length;
  PaddingSide padding_side = PaddingSide::Right;
  std::vector<const std::string*> tokens_by_id;  // added tokens over the model vocabulary
  std::vector<bool> special_by_id;
};

// from_tokenizer_json for an already parsed file (load_tokenizer reads it to pick the model).
std::unique_ptr<BpeTokenizer> bpe_from_json(const nlohmann::json& j, const std::string& path,
                                            const BpeJsonOptions& options);

// [bos] A [eos] and [bos] A [eos] [bos] B [eos] (type ids 0, then 1), as transformers'
// LlamaTokenizerFast builds them; Error naming source when a token asked for is missing.
TemplateProcessor bos_eos_template(std::optional<int64_t> bos, std::optional<int64_t> eos, bool add_bos, bool add_eos,
                                   const std::string& source);

// The templates of RobertaProcessing: <s> A </s> and <s> A </s></s> B </s>, type ids all 0.
TemplateProcessor roberta_template(int64_t cls_id, int64_t sep_id);

}  // namespace peft::tok
