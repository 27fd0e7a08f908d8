// GGUF vocabularies with tokenizer.ggml.model "llama": a SentencePiece ModelProto built from the
// metadata, run as transformers' GGUF conversion (integrations/ggml.py, GGUFLlamaConverter) or as
// LlamaTokenizerFast(legacy=False) on the equivalent tokenizer.model.
#include <string_view>
#include <unordered_set>

#include "peft/error.h"
#include "tokenize/spm_impl.h"

namespace peft::tok {
namespace {

// "<0x0A>" for byte 0x0A, as SentencePiece names its byte pieces.
std::string spm_byte_piece(int b) {
  static const char* hex = "0123456789ABCDEF";
  return std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">";
}

SpmModelProto spm_gguf_proto(const BpeParts& p) {
  const char* src = "GGUF tokenizer (llama)";
  if (p.model != "llama") fail("{}: tokenizer.ggml.model is '{}', not 'llama'", src, p.model);
  if (p.tokens.empty()) fail("{}: tokenizer.ggml.tokens is empty", src);
  const size_t n = p.tokens.size();
  if (!p.token_types.empty() && p.token_types.size() != n)
    fail("{}: {} token types (tokenizer.ggml.token_type) for {} tokens", src, p.token_types.size(), n);
  // transformers needs the scores when there are no merges; so does SentencePiece's BPE.
  if (p.scores.size() != n) fail("{}: {} scores (tokenizer.ggml.scores) for {} tokens", src, p.scores.size(), n);
  const auto check_id = [&](const std::optional<int64_t>& id, const char* key) {
    if (id && (*id < 0 || *id >= static_cast<int64_t>(n)))
      fail("{}: tokenizer.ggml.{} {} is outside the {} tokens", src, key, *id, n);
  };
  check_id(p.bos_token_id, "bos_token_id");
  check_id(p.eos_token_id, "eos_token_id");
  check_id(p.pad_token_id, "padding_token_id");
  check_id(p.unk_token_id, "unknown_token_id");

  SpmModelProto m;
  m.pieces.resize(n);
  std::optional<int64_t> unk = p.unk_token_id;
  for (size_t i = 0; i < n; ++i) {
    SpmModelProto::Piece& piece = m.pieces[i];
    piece.piece = p.tokens[i];
    piece.score = p.scores[i];
    piece.type = p.token_types.empty() ? SpmModelProto::kNormal : p.token_types[i];
    if (piece.type < 1 || piece.type > 6) fail("{}: token {} has type {} (expected 1..6)", src, i, piece.type);
    if (piece.type == SpmModelProto::kUnknown && !unk) unk = static_cast<int64_t>(i);
  }
  if (!unk) fail("{}: no unknown token (tokenizer.ggml.unknown_token_id, or a token of type 2)", src);
  // SentencePiece has exactly one unknown piece.
  for (size_t i = 0; i < n; ++i)
    if (m.pieces[i].type == SpmModelProto::kUnknown && static_cast<int64_t>(i) != *unk)
      m.pieces[i].type = SpmModelProto::kNormal;
  m.pieces[*unk].type = SpmModelProto::kUnknown;

  std::unordered_set<std::string_view> byte_pieces;
  for (const SpmModelProto::Piece& piece : m.pieces)
    if (piece.type == SpmModelProto::kByte) byte_pieces.insert(piece.piece);
  bool all_bytes = true;
  for (int b = 0; b < 256 && all_bytes; ++b) all_bytes = byte_pieces.count(spm_byte_piece(b)) > 0;
  m.trainer.model_type = SpmModelProto::kBpe;
  m.trainer.byte_fallback = all_bytes;
  m.trainer.unk_id = static_cast<int>(*unk);
  m.trainer.unk_piece = p.tokens[*unk];
  m.trainer.bos_id = p.bos_token_id ? static_cast<int>(*p.bos_token_id) : -1;
  m.trainer.eos_id = p.eos_token_id ? static_cast<int>(*p.eos_token_id) : -1;
  m.trainer.pad_id = p.pad_token_id ? static_cast<int>(*p.pad_token_id) : -1;
  if (p.bos_token_id) m.trainer.bos_piece = p.tokens[*p.bos_token_id];
  if (p.eos_token_id) m.trainer.eos_piece = p.tokens[*p.eos_token_id];
  if (p.pad_token_id) m.trainer.pad_piece = p.tokens[*p.pad_token_id];
  m.normalizer.name = "identity";
  m.normalizer.add_dummy_prefix = p.add_space_prefix.value_or(true);
  m.normalizer.remove_extra_whitespaces = false;
  m.normalizer.escape_whitespaces = true;
  return m;
}

}  // namespace

std::string gguf_spm_model_proto(const BpeParts& parts) { return spm_gguf_proto(parts).serialize(); }

std::unique_ptr<Tokenizer> make_spm_tokenizer(const BpeParts& p, GgufConvention convention) {
  const SpmModelProto proto = spm_gguf_proto(p);
  const auto name = [&](const std::optional<int64_t>& id) -> std::optional<std::string> {
    if (!id) return std::nullopt;
    return p.tokens[*id];
  };
  SpmOptions o;
  o.bos_token = name(p.bos_token_id);
  o.eos_token = name(p.eos_token_id);
  o.unk_token = proto.pieces[proto.trainer.unk_id].piece;
  o.pad_token = name(p.pad_token_id);
  o.add_prefix_space = p.add_space_prefix.value_or(true);
  o.padding_side = PaddingSide::Left;
  o.clean_up_tokenization_spaces = false;
  if (convention == GgufConvention::Transformers) {
    o.legacy = true;
    o.add_bos_token = p.bos_token_id.has_value();  // LlamaTokenizerFast's default; the GGUF flag is not read
    o.add_eos_token = false;
    o.user_defined_as_added = false;
    o.byte_fallback_before_replace = true;
  } else {
    o.legacy = false;
    o.add_bos_token = p.add_bos_token.value_or(true) && p.bos_token_id.has_value();
    o.add_eos_token = p.add_eos_token.value_or(false) && p.eos_token_id.has_value();
  }
  return spm_from_proto(proto, "GGUF tokenizer (llama)", o);
}

}  // namespace peft::tok
