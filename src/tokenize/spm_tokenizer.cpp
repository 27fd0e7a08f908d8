// SpmTokenizer: transformers' LlamaTokenizerFast pipeline around a libsentencepiece model.
//
// LlamaTokenizerFast converts tokenizer.model (convert_slow_tokenizer.LlamaConverter) into
// `tokenizers` parts: added tokens (control pieces, user-defined pieces, tokenizer_config's
// added_tokens_decoder, special tokens) split off the raw text first; then, per piece of text, the
// legacy normalizer Prepend("▁") + Replace(" ", "▁") (or, legacy=false, a Metaspace pre-tokenizer
// with prepend_scheme "first"); then the BPE/Unigram model with byte fallback; the template
// [bos] A [eos]; decoder Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1). The model's own
// normalizer spec takes no part. Here libsentencepiece runs the model on the normalised text,
// loaded from a copy of the ModelProto whose normalizer does nothing but map " " to "▁" (there are
// none left), so that its merges / Viterbi search see exactly what `tokenizers`' model sees.
#include <sentencepiece_processor.h>

#include <algorithm>

#include "peft/error.h"
#include "tokenize/added_vocab.h"
#include "tokenize/bpe_decoder.h"
#include "tokenize/bpe_impl.h"
#include "tokenize/decode_text.h"
#include "tokenize/files.h"
#include "tokenize/post_process.h"
#include "tokenize/spm_impl.h"
#include "tokenize/unicode.h"
#include "tokenize/vocab.h"

namespace peft::tok {
namespace {

constexpr std::string_view kMetaspace = "\xE2\x96\x81";  // U+2581 "▁"

// Replace(" ", "▁"), appended to out.
void spm_escape_spaces(std::string_view text, std::string& out) {
  for (char c : text) {
    if (c == ' ') out.append(kMetaspace);
    else out += c;
  }
}

// The legacy normalizer: Prepend("▁") (non-empty text only) then Replace(" ", "▁").
void spm_legacy_normalize(std::string_view text, bool prepend, std::string& out) {
  out.clear();
  if (text.empty()) return;
  if (prepend) out.append(kMetaspace);
  spm_escape_spaces(text, out);
}

std::vector<std::string> spm_pieces_of(const SpmModelProto& proto) {
  std::vector<std::string> pieces;
  pieces.reserve(proto.pieces.size());
  for (const SpmModelProto::Piece& p : proto.pieces) pieces.push_back(p.piece);
  return pieces;
}

}  // namespace

struct SpmTokenizer::Impl {
  sentencepiece::SentencePieceProcessor processor;
  Vocab vocab;
  AddedVocab added;
  TemplateProcessor template_processor;
  BpeDecoder decoder;
  SpmOptions options;
  bool unigram = false;
  std::optional<int64_t> bos, eos, unk, pad;
  std::vector<const std::string*> tokens_by_id;  // added tokens over the pieces
  std::vector<bool> special_by_id;
  size_t new_ids = 0;  // added tokens beyond the pieces
  std::string source;

  const std::string* token(int64_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= tokens_by_id.size()) return nullptr;
    return tokens_by_id[id];
  }
  bool is_special(int64_t id) const {
    return id >= 0 && static_cast<size_t>(id) < special_by_id.size() && special_by_id[id];
  }
  std::optional<int64_t> find(std::string_view token) const {
    if (auto id = added.find(token)) return id;
    return vocab.find(token);
  }

  // The model's ids of one normalised piece of text.
  void run_model(std::string_view normalized, std::vector<int64_t>& ids) const {
    if (normalized.empty()) return;
    thread_local std::vector<int> out;
    out.clear();
    const auto status = processor.Encode(normalized, &out);
    if (!status.ok()) fail("{}: SentencePiece could not encode the text: {}", source, status.ToString());
    ids.insert(ids.end(), out.begin(), out.end());
  }

  void encode_ids(std::string_view text, std::vector<int64_t>& ids) const {
    if (size_t bad = unicode::invalid_utf8_offset(text); bad != std::string_view::npos)
      fail("tokenizer input is not valid UTF-8: byte {} (0x{:02X}) of {} does not start a well-formed character", bad,
           static_cast<unsigned char>(text[bad]), text.size());
    thread_local std::vector<AddedVocab::Piece> pieces, normalized_pieces;
    thread_local std::string normalized, scratch;
    pieces.clear();
    added.split_raw(text, pieces);
    for (const AddedVocab::Piece& piece : pieces) {
      if (piece.id >= 0) {
        ids.push_back(piece.id);
        continue;
      }
      if (options.legacy) {
        spm_legacy_normalize(piece.text, options.add_prefix_space, normalized);
      } else {
        normalized.assign(piece.text);  // no normalizer
      }
      normalized_pieces.clear();
      added.split_normalized(normalized, normalized_pieces);
      for (const AddedVocab::Piece& part : normalized_pieces) {
        if (part.id >= 0) {
          ids.push_back(part.id);
          continue;
        }
        if (part.text.empty()) continue;
        if (options.legacy) {
          run_model(part.text, ids);
          continue;
        }
        // Metaspace(prepend_scheme="first", split=False): spaces to "▁", and "▁" before the piece
        // that starts the input unless it starts with one already.
        const bool at_start = part.text.data() == normalized.data() && piece.text.data() == text.data();
        scratch.clear();
        spm_escape_spaces(part.text, scratch);
        if (options.add_prefix_space && at_start && scratch.compare(0, kMetaspace.size(), kMetaspace) != 0)
          scratch.insert(0, kMetaspace);
        run_model(scratch, ids);
      }
    }
  }

  static std::unique_ptr<SpmTokenizer> make(std::unique_ptr<Impl> impl) {
    return std::unique_ptr<SpmTokenizer>(new SpmTokenizer(std::move(impl)));
  }
};

std::unique_ptr<SpmTokenizer> spm_from_proto(const SpmModelProto& proto, const std::string& source,
                                             const SpmOptions& o) {
  if (proto.trainer.model_type != SpmModelProto::kBpe && proto.trainer.model_type != SpmModelProto::kUnigram)
    fail("{}: SentencePiece model type {} is not supported (supported: Unigram, BPE)", source, proto.trainer.model_type);
  auto impl = std::make_unique<SpmTokenizer::Impl>();
  impl->source = source;
  impl->options = o;
  impl->unigram = proto.trainer.model_type == SpmModelProto::kUnigram;

  // The model as libsentencepiece runs it here: the normaliser of `tokenizers` has already run.
  SpmModelProto run = proto;
  run.normalizer = SpmModelProto::NormalizerSpec{};
  run.normalizer.name = "identity";
  run.normalizer.add_dummy_prefix = false;
  run.normalizer.remove_extra_whitespaces = false;
  run.normalizer.escape_whitespaces = true;
  if (!o.user_defined_as_added)
    for (SpmModelProto::Piece& p : run.pieces)
      if (p.type == SpmModelProto::kUserDefined || p.type == SpmModelProto::kUnused) p.type = SpmModelProto::kNormal;
  const auto status = impl->processor.LoadFromSerializedProto(run.serialize());
  if (!status.ok()) fail("{}: SentencePiece cannot load the model: {}", source, status.ToString());

  impl->vocab = Vocab::from_list(spm_pieces_of(proto));
  const auto n = static_cast<int64_t>(proto.pieces.size());

  // Added tokens, later definitions of an id replacing earlier ones (tokenizers' add_tokens).
  std::vector<AddedToken> added;
  const auto add = [&](AddedToken t) {
    for (AddedToken& a : added)
      if (a.id == t.id) {
        a = std::move(t);
        return;
      }
    added.push_back(std::move(t));
  };
  for (int64_t id = 0; id < n; ++id) {
    const SpmModelProto::Piece& p = proto.pieces[id];
    if (p.type == SpmModelProto::kControl || (o.user_defined_as_added && p.type == SpmModelProto::kUserDefined))
      add({p.piece, id, p.type == SpmModelProto::kControl, false, false, false});
  }
  int64_t next_id = n;
  const auto id_for = [&](const std::string& content, std::optional<int64_t> id) {
    if (id) {
      if (*id < 0) fail("{}: added token '{}' has a negative id {}", source, content, *id);
      next_id = std::max(next_id, *id + 1);
      return *id;
    }
    for (const AddedToken& a : added)
      if (a.content == content) return a.id;
    if (auto v = impl->vocab.find(content)) return *v;
    return next_id++;
  };
  for (const SpmAddedToken& t : o.added_tokens)
    add({t.content, id_for(t.content, t.id), t.special, t.normalized, t.lstrip, t.rstrip});
  // Special token names not added yet become special added tokens (transformers adds every
  // special token to the backend); one already added keeps its flags.
  std::vector<std::string> special_names;
  for (const auto* name : {&o.bos_token, &o.eos_token, &o.unk_token, &o.pad_token})
    if (*name && !(*name)->empty()) special_names.push_back(**name);
  special_names.insert(special_names.end(), o.additional_special_tokens.begin(), o.additional_special_tokens.end());
  for (const std::string& name : special_names) {
    const bool present = std::any_of(added.begin(), added.end(), [&](const AddedToken& a) { return a.content == name; });
    if (!present) add({name, id_for(name, std::nullopt), true, false, false, false});
  }
  const bool legacy = o.legacy, prefix = o.add_prefix_space;
  impl->added = AddedVocab(std::move(added), [legacy, prefix](std::string_view text, std::string& out) {
    if (legacy) spm_legacy_normalize(text, prefix, out);
    else out.assign(text);
  });

  size_t bound = static_cast<size_t>(n);
  for (const AddedToken& t : impl->added.tokens()) bound = std::max(bound, static_cast<size_t>(t.id) + 1);
  impl->tokens_by_id.assign(bound, nullptr);
  impl->special_by_id.assign(bound, false);
  for (int64_t id = 0; id < n; ++id) impl->tokens_by_id[id] = impl->vocab.token(id);
  for (const AddedToken& t : impl->added.tokens()) {
    if (t.id >= n && impl->tokens_by_id[t.id] == nullptr) ++impl->new_ids;
    impl->tokens_by_id[t.id] = &t.content;
    impl->special_by_id[t.id] = t.special;
  }

  const auto id_of = [&](const std::optional<std::string>& name) -> std::optional<int64_t> {
    return name ? impl->find(*name) : std::nullopt;
  };
  impl->bos = id_of(o.bos_token);
  impl->eos = id_of(o.eos_token);
  impl->unk = id_of(o.unk_token);
  impl->pad = id_of(o.pad_token);
  if (o.add_bos_token || o.add_eos_token)
    impl->template_processor = bos_eos_template(impl->bos, impl->eos, o.add_bos_token, o.add_eos_token, source);

  using S = BpeDecoder::Step;
  const S replace{S::Replace, std::string(kMetaspace), " "}, byte_fallback{S::ByteFallback, {}, {}}, fuse{S::Fuse, {}, {}};
  impl->decoder = o.byte_fallback_before_replace ? BpeDecoder(std::vector<S>{byte_fallback, fuse, replace})
                                                 : BpeDecoder(std::vector<S>{replace, byte_fallback, fuse});
  return SpmTokenizer::Impl::make(std::move(impl));
}

std::unique_ptr<SpmTokenizer> SpmTokenizer::from_serialized_proto(std::string_view proto, const std::string& source,
                                                                  const SpmOptions& options) {
  return spm_from_proto(SpmModelProto::parse(proto, source), source, options);
}

std::unique_ptr<SpmTokenizer> SpmTokenizer::from_model_file(const std::string& path, const SpmOptions& options) {
  const std::string bytes = read_file(path, "SentencePiece model");
  return from_serialized_proto(bytes, path, options);
}

SpmTokenizer::SpmTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SpmTokenizer::~SpmTokenizer() = default;

void SpmTokenizer::encode_ids(std::string_view text, std::vector<int64_t>& ids) const { impl_->encode_ids(text, ids); }

std::vector<std::string> SpmTokenizer::tokenize(std::string_view text) const {
  std::vector<int64_t> ids;
  impl_->encode_ids(text, ids);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) tokens.push_back(id_to_token(id));
  return tokens;
}

Encoding SpmTokenizer::encode(std::string_view text, std::optional<std::string_view> pair,
                              const EncodeOptions& options) const {
  std::vector<int64_t> a;
  std::optional<std::vector<int64_t>> b;
  impl_->encode_ids(text, a);
  if (pair) impl_->encode_ids(*pair, b.emplace());
  Encoding e = post_process(std::move(a), std::move(b), options, impl_->template_processor,
                            impl_->options.model_max_length);
  e.tokens.reserve(e.ids.size());
  for (int64_t id : e.ids) e.tokens.push_back(id_to_token(id));
  if (auto length = padding_length(options, e.size())) pad_to(e, *length, options);
  return e;
}

std::string SpmTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    const std::string* token = impl_->token(id);
    if (token == nullptr || (skip_special_tokens && impl_->is_special(id))) continue;
    tokens.push_back(*token);
  }
  std::string text = impl_->decoder.decode(std::move(tokens));
  if (impl_->options.add_prefix_space && !text.empty() && text[0] == ' ') text.erase(0, 1);  // Strip(" ", 1, 0)
  if (impl_->options.clean_up_tokenization_spaces) clean_up_tokenization(text);
  return text;
}

bool SpmTokenizer::decode_piece(int64_t id, size_t kept_before, bool skip_special_tokens, std::string& out) const {
  const std::string* token = impl_->token(id);
  if (token == nullptr || (skip_special_tokens && impl_->is_special(id))) return false;
  const size_t start = out.size();
  impl_->decoder.append_piece(*token, kept_before == 0, out);
  if (kept_before == 0 && impl_->options.add_prefix_space && out.size() > start && out[start] == ' ')
    out.erase(start, 1);
  return true;
}

bool SpmTokenizer::decode_cleans_up() const { return impl_->options.clean_up_tokenization_spaces; }

std::optional<int64_t> SpmTokenizer::token_to_id(std::string_view token) const { return impl_->find(token); }

std::string SpmTokenizer::id_to_token(int64_t id) const {
  const std::string* token = impl_->token(id);
  if (token == nullptr) fail("id_to_token: no token has id {} (vocabulary size {})", id, vocab_size());
  return *token;
}

size_t SpmTokenizer::vocab_size() const { return impl_->vocab.id_bound() + impl_->new_ids; }
std::optional<int64_t> SpmTokenizer::bos_id() const { return impl_->bos; }
std::optional<int64_t> SpmTokenizer::eos_id() const { return impl_->eos; }
std::optional<int64_t> SpmTokenizer::pad_id() const { return impl_->pad; }
std::optional<int64_t> SpmTokenizer::cls_id() const { return std::nullopt; }
std::optional<int64_t> SpmTokenizer::sep_id() const { return std::nullopt; }
std::optional<int64_t> SpmTokenizer::unk_id() const { return impl_->unk; }
std::optional<int64_t> SpmTokenizer::mask_id() const { return std::nullopt; }
std::optional<size_t> SpmTokenizer::model_max_length() const { return impl_->options.model_max_length; }
PaddingSide SpmTokenizer::padding_side() const { return impl_->options.padding_side; }
bool SpmTokenizer::is_unigram() const { return impl_->unigram; }

}  // namespace peft::tok
