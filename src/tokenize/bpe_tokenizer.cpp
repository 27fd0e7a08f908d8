#include <algorithm>
#include <deque>

#include "peft/error.h"
#include "tokenize/bpe_impl.h"
#include "tokenize/decode_text.h"
#include "tokenize/unicode.h"

namespace peft::tok {

BpeTokenizer::Impl::Impl(BpeModel model_, BpePreTokenizer pre_tokenizer_, std::vector<AddedToken> added_tokens,
                         TemplateProcessor processor_, BpeDecoder decoder_)
    : model(std::move(model_)),
      pre_tokenizer(std::move(pre_tokenizer_)),
      // Byte-level tokenizers have no normalizer: normalized tokens match the text as it is.
      added(std::move(added_tokens), [](std::string_view text, std::string& out) { out.assign(text); }),
      processor(std::move(processor_)),
      decoder(std::move(decoder_)) {
  const Vocab& vocab = model.vocab();
  size_t bound = vocab.id_bound();
  for (const AddedToken& t : added.tokens()) bound = std::max(bound, static_cast<size_t>(t.id) + 1);
  tokens_by_id.assign(bound, nullptr);
  special_by_id.assign(bound, false);
  for (size_t id = 0; id < vocab.id_bound(); ++id) tokens_by_id[id] = vocab.token(static_cast<int64_t>(id));
  for (const AddedToken& t : added.tokens()) {
    tokens_by_id[t.id] = &t.content;
    special_by_id[t.id] = t.special;
  }
}

void BpeTokenizer::Impl::encode_ids(std::string_view text, std::vector<int64_t>& ids) const {
  if (size_t bad = unicode::invalid_utf8_offset(text); bad != std::string_view::npos)
    fail("tokenizer input is not valid UTF-8: byte {} (0x{:02X}) of {} does not start a well-formed character", bad,
         static_cast<unsigned char>(text[bad]), text.size());
  // Scratch buffers reused across calls (per thread: encode is const and may run concurrently).
  thread_local std::vector<AddedVocab::Piece> pieces, normalized_pieces;
  thread_local std::vector<std::string_view> words;
  thread_local std::deque<std::string> storage;
  pieces.clear();
  added.split_raw(text, pieces);
  for (const AddedVocab::Piece& piece : pieces) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    normalized_pieces.clear();
    added.split_normalized(piece.text, normalized_pieces);
    for (const AddedVocab::Piece& part : normalized_pieces) {
      if (part.id >= 0) {
        ids.push_back(part.id);
        continue;
      }
      if (part.text.empty()) continue;
      words.clear();
      storage.clear();
      pre_tokenizer.split(part.text, words, storage);
      for (std::string_view word : words) model.tokenize_word(word, ids);
    }
  }
}

std::optional<int64_t> BpeTokenizer::Impl::find(std::string_view token) const {
  if (auto id = added.find(token)) return id;
  return model.vocab().find(token);
}

const std::string* BpeTokenizer::Impl::token(int64_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_by_id.size()) return nullptr;
  return tokens_by_id[id];
}

bool BpeTokenizer::Impl::is_special(int64_t id) const {
  return id >= 0 && static_cast<size_t>(id) < special_by_id.size() && special_by_id[id];
}

void BpeTokenizer::Impl::set_specials(const std::optional<std::string>& bos_, const std::optional<std::string>& eos_,
                                      const std::optional<std::string>& unk_, const std::optional<std::string>& pad_,
                                      const std::optional<std::string>& cls_, const std::optional<std::string>& sep_,
                                      const std::optional<std::string>& mask_) {
  const auto id_of = [this](const std::optional<std::string>& name) {
    return name ? find(*name) : std::nullopt;
  };
  bos = id_of(bos_);
  eos = id_of(eos_);
  unk = id_of(unk_);
  pad = id_of(pad_);
  cls = id_of(cls_);
  sep = id_of(sep_);
  mask = id_of(mask_);
}

TemplateProcessor roberta_template(int64_t cls_id, int64_t sep_id) {
  using P = TemplatePiece;
  return TemplateProcessor(
      {{P::Special, {cls_id}, 0}, {P::SequenceA, {}, 0}, {P::Special, {sep_id}, 0}},
      {{P::Special, {cls_id}, 0}, {P::SequenceA, {}, 0}, {P::Special, {sep_id, sep_id}, 0},
       {P::SequenceB, {}, 0}, {P::Special, {sep_id}, 0}});
}

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::encode_ids(std::string_view text, std::vector<int64_t>& ids) const { impl_->encode_ids(text, ids); }

std::vector<std::string> BpeTokenizer::tokenize(std::string_view text) const {
  std::vector<int64_t> ids;
  impl_->encode_ids(text, ids);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) tokens.push_back(*impl_->token(id));
  return tokens;
}

Encoding BpeTokenizer::encode(std::string_view text, std::optional<std::string_view> pair,
                              const EncodeOptions& options) const {
  std::vector<int64_t> a;
  std::optional<std::vector<int64_t>> b;
  a.reserve(text.size() / 3 + 8);
  impl_->encode_ids(text, a);
  if (pair) impl_->encode_ids(*pair, b.emplace());
  Encoding e = post_process(std::move(a), std::move(b), options, impl_->processor, impl_->model_max_length);
  e.tokens.reserve(e.ids.size());
  for (int64_t id : e.ids) {
    const std::string* token = impl_->token(id);
    if (token == nullptr) fail("token id {} has no token in the vocabulary", id);  // a bad template
    e.tokens.push_back(*token);
  }
  if (auto length = padding_length(options, e.size())) pad_to(e, *length, options);
  return e;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    const std::string* token = impl_->token(id);
    if (token == nullptr || (skip_special_tokens && impl_->is_special(id))) continue;
    tokens.push_back(*token);
  }
  std::string text = impl_->decoder.decode(std::move(tokens));
  if (impl_->clean_up_tokenization_spaces) clean_up_tokenization(text);
  return text;
}

bool BpeTokenizer::decode_piece(int64_t id, size_t kept_before, bool skip_special_tokens, std::string& out) const {
  const std::string* token = impl_->token(id);
  if (token == nullptr || (skip_special_tokens && impl_->is_special(id))) return false;
  impl_->decoder.append_piece(*token, kept_before == 0, out);
  return true;
}

bool BpeTokenizer::decode_cleans_up() const { return impl_->clean_up_tokenization_spaces; }

std::optional<int64_t> BpeTokenizer::token_to_id(std::string_view token) const { return impl_->find(token); }

std::string BpeTokenizer::id_to_token(int64_t id) const {
  const std::string* token = impl_->token(id);
  if (token == nullptr) fail("id_to_token: no token has id {} (vocabulary size {})", id, vocab_size());
  return *token;
}

size_t BpeTokenizer::vocab_size() const {
  size_t n = impl_->model.vocab().size();
  for (const AddedToken& t : impl_->added.tokens())
    if (!impl_->model.vocab().token(t.id)) ++n;
  return n;
}

std::optional<int64_t> BpeTokenizer::bos_id() const { return impl_->bos; }
std::optional<int64_t> BpeTokenizer::eos_id() const { return impl_->eos; }
std::optional<int64_t> BpeTokenizer::pad_id() const { return impl_->pad; }
std::optional<int64_t> BpeTokenizer::cls_id() const { return impl_->cls; }
std::optional<int64_t> BpeTokenizer::sep_id() const { return impl_->sep; }
std::optional<int64_t> BpeTokenizer::unk_id() const { return impl_->unk; }
std::optional<int64_t> BpeTokenizer::mask_id() const { return impl_->mask; }
std::optional<size_t> BpeTokenizer::model_max_length() const { return impl_->model_max_length; }
PaddingSide BpeTokenizer::padding_side() const { return impl_->padding_side; }

}  // namespace peft::tok
