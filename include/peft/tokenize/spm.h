#pragma once
// SentencePiece tokenizers (tokenizer.model: Llama-2, TinyLlama, Mistral's BPE with byte fallback,
// and Unigram models; GGUF vocabularies with tokenizer.ggml.model "llama"), with the results of
// transformers' LlamaTokenizerFast, which converts the model to a `tokenizers` pipeline: added tokens
// matched in the raw text, its own normalizer (the model's normalizer spec is ignored), the model,
// the bos/eos template and the ByteFallback decoder. libsentencepiece runs the model (BPE merges or
// Unigram Viterbi) on the normalised text. Torch-free. See docs/tokenizer.md.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "peft/tokenize/bpe.h"
#include "peft/tokenize/tokenizer.h"

namespace peft::tok {

// An added token (tokenizer_config.json's added_tokens_decoder, or a special token name).
struct SpmAddedToken {
  std::string content;
  // Unset: the piece's id when content is in the vocabulary, else the next id after the vocabulary.
  std::optional<int64_t> id;
  bool special = true;
  bool normalized = false;  // matched in the normalised text (after the legacy normalizer) instead of the raw text
  bool lstrip = false, rstrip = false;
};

// What LlamaTokenizerFast takes from its arguments / tokenizer_config.json.
struct SpmOptions {
  // legacy=true (transformers' default): a normalizer turns spaces into "▁" and, with
  // add_prefix_space, prepends "▁" to every piece of text between added tokens. legacy=false: a
  // Metaspace pre-tokenizer does the same, but prepends "▁" only to the piece at the start of the
  // input, and not when the input starts with a space.
  bool legacy = true;
  bool add_prefix_space = true;  // also: decode() strips one leading space
  bool add_bos_token = true;
  bool add_eos_token = false;
  bool clean_up_tokenization_spaces = false;
  std::optional<size_t> model_max_length;
  PaddingSide padding_side = PaddingSide::Left;
  // Special token names; a name that is neither a piece nor an added token is added (special).
  std::optional<std::string> bos_token = "<s>", eos_token = "</s>", unk_token = "<unk>", pad_token;
  std::vector<std::string> additional_special_tokens;
  // Added tokens over those of the model (control pieces: special; user-defined pieces:
  // not special); one with the id of an earlier one replaces it.
  std::vector<SpmAddedToken> added_tokens;
  // Whether user-defined pieces (type 4) are added tokens, matched in the raw text (the
  // tokenizer.model conversion), or ordinary pieces (transformers' GGUF conversion).
  bool user_defined_as_added = true;
  // Decoder order: Replace("▁", " "), ByteFallback, Fuse (LlamaConverter, the default), or
  // ByteFallback, Fuse, Replace (transformers' GGUFLlamaConverter). Strip(1 space) follows when
  // add_prefix_space is set.
  bool byte_fallback_before_replace = false;
};

class SpmTokenizer final : public Tokenizer {
 public:
  // A tokenizer.model file (a serialized SentencePiece ModelProto, BPE or Unigram). peft::Error
  // naming the file when it is missing, not a SentencePiece model, or rejected by libsentencepiece.
  static std::unique_ptr<SpmTokenizer> from_model_file(const std::string& path, const SpmOptions& options = {});
  // The same from the bytes of a ModelProto; `source` names it in errors.
  static std::unique_ptr<SpmTokenizer> from_serialized_proto(std::string_view proto, const std::string& source,
                                                             const SpmOptions& options = {});
  ~SpmTokenizer() override;

  // Text must be valid UTF-8 (peft::Error naming the byte offset otherwise).
  std::vector<std::string> tokenize(std::string_view text) const override;
  Encoding encode(std::string_view text, std::optional<std::string_view> pair = std::nullopt,
                  const EncodeOptions& options = {}) const override;
  // The ids of text without special tokens.
  void encode_ids(std::string_view text, std::vector<int64_t>& ids) const;

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
  PaddingSide padding_side() const override;

  bool is_unigram() const;  // the model type: Unigram, else BPE

  struct Impl;

 private:
  explicit SpmTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The SentencePiece model of GGUF metadata with tokenizer.ggml.model "llama", as a serialized
// ModelProto (what a tokenizer.model holding this vocabulary would be): the tokens with their
// scores and types (unknown_token_id's piece is the unknown piece), trainer spec model_type BPE
// with byte_fallback when all 256 byte pieces are there, normalizer "identity" with
// add_dummy_prefix = tokenizer.ggml.add_space_prefix (default true), remove_extra_whitespaces
// false, escape_whitespaces true. peft::Error for bad metadata (naming the key).
std::string gguf_spm_model_proto(const BpeParts& parts);

// A SentencePiece tokenizer from GGUF metadata with tokenizer.ggml.model "llama"
// (make_bpe_tokenizer forwards such metadata here).
//   Transformers: AutoTokenizer.from_pretrained(dir, gguf_file=...) (GGUFLlamaConverter): legacy
//     normalizer with add_prefix_space = add_space_prefix (default true), control tokens special
//     added tokens, user-defined and unused tokens ordinary pieces, bos prepended whenever there is
//     a bos token (add_bos_token/add_eos_token are ignored), decoder ByteFallback, Fuse, Replace,
//     Strip; padding on the left, no clean-up.
//   Original: LlamaTokenizerFast(legacy=False) on the tokenizer.model of gguf_spm_model_proto, with
//     add_bos_token / add_eos_token / add_space_prefix as stored (defaults true / false / true).
std::unique_ptr<Tokenizer> make_spm_tokenizer(const BpeParts& parts,
                                              GgufConvention convention = GgufConvention::Transformers);

}  // namespace peft::tok
