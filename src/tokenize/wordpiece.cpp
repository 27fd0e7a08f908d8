#include "tokenize/wordpiece_impl.h"

#include "peft/error.h"
#include "tokenize/bert_pre_tokenizer.h"
#include "tokenize/decode_text.h"

namespace peft::tok {

WordPieceTokenizer::Impl::Impl(BertNormalizer normalizer_, bool pre_tokenize_, WordPieceModel model_,
                               std::vector<AddedToken> added_tokens, TemplateProcessor processor_)
    : normalizer(std::move(normalizer_)),
      pre_tokenize(pre_tokenize_),
      model(std::move(model_)),
      added(std::move(added_tokens),
            [this](std::string_view text, std::string& out) { normalizer.normalize(text, out); }),
      processor(std::move(processor_)) {
  const Vocab& vocab = model.vocab();
  size_t bound = vocab.id_bound();
  for (const AddedToken& t : added.tokens()) bound = std::max(bound, static_cast<size_t>(t.id) + 1);
  tokens_by_id.assign(bound, nullptr);
  for (size_t id = 0; id < vocab.id_bound(); ++id) tokens_by_id[id] = vocab.token(static_cast<int64_t>(id));
  for (const AddedToken& t : added.tokens()) tokens_by_id[t.id] = &t.content;
}

void WordPieceTokenizer::Impl::encode_ids(std::string_view text, std::vector<int64_t>& ids) const {
  // Scratch buffers reused across calls (per thread: encode is const and may run concurrently).
  thread_local std::vector<AddedVocab::Piece> pieces, normalized_pieces;
  thread_local std::vector<std::string_view> words;
  thread_local std::string normalized;
  pieces.clear();
  added.split_raw(text, pieces);
  for (const AddedVocab::Piece& piece : pieces) {
    if (piece.id >= 0) {
      ids.push_back(piece.id);
      continue;
    }
    normalizer.normalize(piece.text, normalized);
    normalized_pieces.clear();
    added.split_normalized(normalized, normalized_pieces);
    for (const AddedVocab::Piece& part : normalized_pieces) {
      if (part.id >= 0) {
        ids.push_back(part.id);
        continue;
      }
      words.clear();
      if (pre_tokenize) bert_pre_tokenize(part.text, words);
      else if (!part.text.empty()) words.push_back(part.text);
      for (std::string_view word : words) model.tokenize_word(word, ids);
    }
  }
}

std::optional<int64_t> WordPieceTokenizer::Impl::find(std::string_view token) const {
  if (auto id = added.find(token)) return id;
  return model.vocab().find(token);
}

const std::string* WordPieceTokenizer::Impl::token(int64_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= tokens_by_id.size()) return nullptr;
  return tokens_by_id[id];
}

WordPieceTokenizer::WordPieceTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WordPieceTokenizer::~WordPieceTokenizer() = default;

void WordPieceTokenizer::encode_ids(std::string_view text, std::vector<int64_t>& ids) const {
  impl_->encode_ids(text, ids);
}

std::vector<std::string> WordPieceTokenizer::tokenize(std::string_view text) const {
  std::vector<int64_t> ids;
  impl_->encode_ids(text, ids);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) tokens.push_back(*impl_->token(id));
  return tokens;
}

Encoding WordPieceTokenizer::encode(std::string_view text, std::optional<std::string_view> pair,
                                    const EncodeOptions& options) const {
  std::vector<int64_t> a;
  std::optional<std::vector<int64_t>> b;
  a.reserve(text.size() / 4 + 8);
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

std::string WordPieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string text;
  size_t kept = 0;
  for (int64_t id : ids)
    if (decode_piece(id, kept, skip_special_tokens, text)) ++kept;
  if (impl_->clean_up_tokenization_spaces) clean_up_tokenization(text);
  return text;
}

bool WordPieceTokenizer::decode_piece(int64_t id, size_t kept_before, bool skip_special_tokens,
                                      std::string& out) const {
  const std::string* token = impl_->token(id);
  if (token == nullptr) return false;
  if (skip_special_tokens) {
    for (const AddedToken& t : impl_->added.tokens())
      if (t.id == id && t.special) return false;
  }
  const bool first = kept_before == 0;
  const std::optional<std::string>& prefix = impl_->decoder_prefix;
  if (!prefix) {  // no decoder: `tokenizers` joins the tokens with spaces
    out.append(first ? "" : " ").append(*token);
    return true;
  }
  std::string piece;
  if (!first && token->compare(0, prefix->size(), *prefix) == 0) piece.append(*token, prefix->size());
  else piece.append(first ? "" : " ").append(*token);
  if (impl_->decoder_cleanup) wordpiece_cleanup(piece);
  out += piece;
  return true;
}

bool WordPieceTokenizer::decode_cleans_up() const { return impl_->clean_up_tokenization_spaces; }

std::optional<int64_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  return impl_->find(token);
}

std::string WordPieceTokenizer::id_to_token(int64_t id) const {
  const std::string* token = impl_->token(id);
  if (token == nullptr) fail("id_to_token: no token has id {} (vocabulary size {})", id, vocab_size());
  return *token;
}

size_t WordPieceTokenizer::vocab_size() const {
  size_t n = impl_->model.vocab().size();
  for (const AddedToken& t : impl_->added.tokens())
    if (!impl_->model.vocab().token(t.id)) ++n;
  return n;
}

std::optional<int64_t> WordPieceTokenizer::bos_id() const { return impl_->bos; }
std::optional<int64_t> WordPieceTokenizer::eos_id() const { return impl_->eos; }
std::optional<int64_t> WordPieceTokenizer::pad_id() const { return impl_->pad; }
std::optional<int64_t> WordPieceTokenizer::cls_id() const { return impl_->cls; }
std::optional<int64_t> WordPieceTokenizer::sep_id() const { return impl_->sep; }
std::optional<int64_t> WordPieceTokenizer::unk_id() const { return impl_->model.unk_id(); }
std::optional<int64_t> WordPieceTokenizer::mask_id() const { return impl_->mask; }
std::optional<size_t> WordPieceTokenizer::model_max_length() const { return impl_->model_max_length; }

}  // namespace peft::tok
