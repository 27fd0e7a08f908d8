#pragma once
// Byte-level BPE (GPT-2, RoBERTa, Llama-3, SmolLM2): `tokenizers`' ByteLevel / Split / Digits
// pre-tokenizers, BPE merges by rank and the ByteLevel decoder, matching Hugging Face id for id.
// Torch-free. See docs/tokenizer.md.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "peft/tokenize/tokenizer.h"

namespace peft::tok {

// The tokenizer.ggml.* metadata of a GGUF file: the torch-free twin of peft::models::GgufTokenizer
// (same fields, filled by the GGUF model loader).
struct BpeParts {
  std::string model, pre;              // tokenizer.ggml.model ("gpt2") and .pre ("smollm", ...)
  std::vector<std::string> tokens;     // id -> token, in the byte-level alphabet
  std::vector<int32_t> token_types;    // 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
  std::vector<float> scores;           // unused by BPE
  std::vector<std::string> merges;     // "left right", by rank
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id, unk_token_id;
  std::optional<bool> add_bos_token, add_eos_token, add_space_prefix;
  std::string chat_template;
};

// Whose reading of GGUF tokenizer metadata make_bpe_tokenizer follows.
enum class GgufConvention {
  // transformers' AutoTokenizer.from_pretrained(dir, gguf_file=...) for llama-architecture files:
  // ByteLevel with GPT-2's regex whatever tokenizer.ggml.pre says, bos prepended (add_bos_token is
  // ignored) unless pre is "gpt2", unk fused, byte fallback, padding on the left, decode() cleans
  // up spaces.
  Transformers,
  // The model's own tokenizer.json as the pre name implies (what llama.cpp runs): "gpt2"/"default"
  // GPT-2 regex, "smollm" Digits + GPT-2 regex, "llama-bpe" Llama-3 regex with ignore_merges;
  // add_bos_token / add_eos_token / add_space_prefix as stored; no clean-up.
  Original,
};

// A byte-level BPE tokenizer from GGUF metadata (model "gpt2"). Control tokens (type 3) are special
// added tokens and user-defined ones (type 4) non-special added tokens, both matched in raw text;
// byte tokens (type 6, "<0x0A>") serve byte fallback. Special ids come from the metadata. Throws
// peft::Error for other models, unknown pre names, merges that name unknown tokens, bad ids.
std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeParts& parts,
                                              GgufConvention convention = GgufConvention::Transformers);

// Options of a vocab.json + merges.txt (or encoder.json + vocab.bpe) tokenizer: what transformers'
// GPT2TokenizerFast / RobertaTokenizerFast take from their arguments and tokenizer_config.json.
struct BpeFilesOptions {
  enum class Flavor {
    Gpt2,    // <|endoftext|> is bos, eos and unk; no template
    Roberta  // <s> A </s>, <s> A </s></s> B </s>; <s> </s> <unk> <pad> <mask> (mask lstrip)
  } flavor = Flavor::Gpt2;
  bool add_prefix_space = false;
  bool clean_up_tokenization_spaces = false;  // transformers' default since 4.45
  std::optional<size_t> model_max_length;
  PaddingSide padding_side = PaddingSide::Right;
  // Special token names; unset: the flavor's.
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token, cls_token, sep_token, mask_token;
};

// What transformers takes from tokenizer_config.json on top of a BPE tokenizer.json.
struct BpeJsonOptions {
  std::optional<size_t> model_max_length;
  PaddingSide padding_side = PaddingSide::Right;
  std::optional<std::string> bos_token, eos_token, unk_token, pad_token, cls_token, sep_token, mask_token;
  bool clean_up_tokenization_spaces = false;
  // Replaces a top-level ByteLevel pre-tokenizer's add_prefix_space (transformers' fast tokenizers
  // force their add_prefix_space argument, default false, onto it).
  std::optional<bool> add_prefix_space = false;
  // LlamaTokenizerFast rebuilds the template from add_bos_token / add_eos_token when set.
  std::optional<bool> add_bos_token, add_eos_token;
};

class BpeTokenizer final : public Tokenizer {
 public:
  // A `tokenizers` tokenizer.json with a BPE model: normalizer none (or an empty Sequence);
  // pre-tokenizer ByteLevel or a Sequence of Split (GPT-2 / Llama-3 / Qwen2 regex, Isolated),
  // Digits and ByteLevel; post-processor RobertaProcessing, TemplateProcessing, BertProcessing,
  // ByteLevel, a Sequence of those, or none; decoder ByteLevel or a Sequence of ByteFallback, Fuse,
  // Replace and ByteLevel. Other types are an Error naming the file and the type.
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::string& json_path,
                                                           const BpeJsonOptions& options = {});
  // vocab.json (token -> id) and merges.txt ("#version" line, then "left right" by rank), read as
  // transformers' slow GPT-2 tokenizer does; also GPT-2's original encoder.json + vocab.bpe.
  static std::unique_ptr<BpeTokenizer> from_files(const std::string& vocab_json, const std::string& merges_txt,
                                                  const BpeFilesOptions& options = {});

  ~BpeTokenizer() override;

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

  struct Impl;

 private:
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace peft::tok
