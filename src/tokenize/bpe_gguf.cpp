// make_bpe_tokenizer: a BpeTokenizer from GGUF tokenizer metadata, read as transformers' GGUF
// conversion (integrations/ggml.py, GGUFLlamaConverter) or as the model's own tokenizer.json.
#include "peft/error.h"
#include "peft/tokenize/spm.h"
#include "tokenize/bpe_impl.h"

namespace peft::tok {
namespace {

enum GgufTokenType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// The pre-tokenizer steps of the model's own tokenizer.json, by tokenizer.ggml.pre.
std::vector<PreTokenizerStep> gguf_original_pre(const BpeParts& p, bool& ignore_merges) {
  PreTokenizerStep byte_level;
  byte_level.add_prefix_space = p.add_space_prefix.value_or(false);
  if (p.pre == "gpt2" || p.pre == "default") return {byte_level};
  if (p.pre == "smollm") {  // SmolLM/SmolLM2: Digits(individual_digits) + ByteLevel
    PreTokenizerStep digits;
    digits.kind = PreTokenizerStep::Digits;
    digits.individual_digits = true;
    return {digits, byte_level};
  }
  // "llama-bpe" (Llama 3): Split(Llama-3 regex) + ByteLevel(use_regex=false), ignore_merges.
  PreTokenizerStep split;
  split.kind = PreTokenizerStep::Split;
  split.regex = SplitRegex::Llama3;
  byte_level.use_regex = false;
  ignore_merges = true;
  return {split, byte_level};
}

}  // namespace

std::unique_ptr<Tokenizer> make_bpe_tokenizer(const BpeParts& p, GgufConvention convention) {
  if (p.model == "llama") return make_spm_tokenizer(p, convention);  // SentencePiece vocabularies: spm_gguf.cpp
  const char* src = "GGUF tokenizer";
  if (p.model != "gpt2")
    fail("{}: tokenizer.ggml.model '{}' is not supported (supported: gpt2, llama)", src, p.model);
  if (p.pre != "gpt2" && p.pre != "smollm" && p.pre != "llama-bpe" && p.pre != "default" && !p.pre.empty())
    fail("{}: unsupported tokenizer.ggml.pre '{}' (supported: gpt2, smollm, llama-bpe, default)", src, p.pre);
  if (p.tokens.empty()) fail("{}: tokenizer.ggml.tokens is empty", src);
  if (!p.token_types.empty() && p.token_types.size() != p.tokens.size())
    fail("{}: {} token types for {} tokens", src, p.token_types.size(), p.tokens.size());
  const auto n = static_cast<int64_t>(p.tokens.size());
  const auto check_id = [&](const std::optional<int64_t>& id, const char* key) {
    if (id && (*id < 0 || *id >= n)) fail("{}: tokenizer.ggml.{} {} is outside the {} tokens", src, key, *id, n);
  };
  check_id(p.bos_token_id, "bos_token_id");
  check_id(p.eos_token_id, "eos_token_id");
  check_id(p.pad_token_id, "padding_token_id");
  check_id(p.unk_token_id, "unknown_token_id");

  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(p.merges.size());
  for (size_t i = 0; i < p.merges.size(); ++i) {
    const std::string& m = p.merges[i];
    const size_t space = m.find(' ');
    if (space == std::string::npos || m.find(' ', space + 1) != std::string::npos)
      fail("{}: merge {} '{}' is not two tokens separated by one space", src, i, m);
    merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  // Control tokens are special added tokens (transformers' conversion adds exactly these);
  // user-defined ones are added tokens too, not special (as llama.cpp and the original
  // tokenizer.json treat them). Byte tokens enable byte fallback.
  std::vector<AddedToken> added;
  bool has_byte_tokens = false;
  for (size_t id = 0; id < p.token_types.size(); ++id) {
    const int32_t type = p.token_types[id];
    if (type == kControl || type == kUserDefined)
      added.push_back({p.tokens[id], static_cast<int64_t>(id), type == kControl, false, false, false});
    has_byte_tokens |= type == kByte;
  }

  const bool hf = convention == GgufConvention::Transformers;
  // transformers picks its converter by architecture: GPT-2-architecture files (pre "gpt2") go
  // through GPT2Converter (plain BPE and ByteLevel, GPT2TokenizerFast), llama ones through
  // GGUFLlamaConverter (LlamaTokenizerFast).
  const bool hf_llama = hf && p.pre != "gpt2";
  BpeModelOptions model_options;
  std::vector<PreTokenizerStep> steps;
  if (!hf_llama && hf) {
    steps.push_back(PreTokenizerStep{});
  } else if (hf) {
    // GGUFLlamaConverter: BPE(unk, fuse_unk=True, byte_fallback=True), then the llama-3 "HACK":
    // ByteLevel(add_prefix_space=False, use_regex=True) whatever the pre-tokenizer was.
    model_options.unk_id = p.unk_token_id;
    model_options.fuse_unk = true;
    model_options.byte_fallback = true;
    steps.push_back(PreTokenizerStep{});
  } else {
    model_options.unk_id = p.unk_token_id;
    model_options.byte_fallback = has_byte_tokens;
    steps = gguf_original_pre(p, model_options.ignore_merges);
  }
  BpeDecoder decoder = BpeDecoder::byte_level();
  if (hf_llama) {
    using S = BpeDecoder::Step;
    decoder = BpeDecoder(std::vector<S>{{S::ByteFallback, {}, {}}, {S::Fuse, {}, {}}, {S::Replace, "\xE2\x96\x81", " "},
                          {S::ByteLevel, {}, {}}});
  }
  auto impl = std::make_unique<BpeTokenizer::Impl>(BpeModel(Vocab::from_list(p.tokens), merges, model_options, src),
                                                   BpePreTokenizer(std::move(steps)), std::move(added),
                                                   TemplateProcessor(), std::move(decoder));
  impl->bos = p.bos_token_id;
  impl->eos = p.eos_token_id;
  impl->pad = p.pad_token_id;
  impl->unk = p.unk_token_id;
  // LlamaTokenizerFast's add_bos_token defaults to true (transformers does not read the GGUF flag);
  // GPT2TokenizerFast adds nothing.
  const bool add_bos = hf ? hf_llama && p.bos_token_id.has_value() : p.add_bos_token.value_or(false);
  const bool add_eos = hf ? false : p.add_eos_token.value_or(false);
  if (add_bos || add_eos) impl->processor = bos_eos_template(impl->bos, impl->eos, add_bos, add_eos, src);
  impl->clean_up_tokenization_spaces = hf_llama;  // GGUFLlamaConverter sets it for gpt2-model files
  if (hf_llama) impl->padding_side = PaddingSide::Left;  // LlamaTokenizerFast's padding_side
  return BpeTokenizer::Impl::make(std::move(impl));
}

}  // namespace peft::tok
