#include "tokenize/wordpiece_model.h"

#include <algorithm>

namespace peft::tok {
namespace {

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

}  // namespace

WordPieceModel::WordPieceModel(Vocab vocab, int64_t unk_id, std::string continuing_subword_prefix,
                               size_t max_input_chars_per_word)
    : vocab_(std::move(vocab)),
      unk_id_(unk_id),
      prefix_(std::move(continuing_subword_prefix)),
      max_chars_(max_input_chars_per_word) {
  std::vector<std::pair<std::string_view, int64_t>> heads, continuations;
  for (const auto& [token, id] : vocab_.entries()) {  // one entry per distinct token
    heads.emplace_back(token, id);
    longest_token_ = std::max(longest_token_, token.size());
    if (token.size() > prefix_.size() && token.compare(0, prefix_.size(), prefix_) == 0) {
      continuations.emplace_back(token.substr(prefix_.size()), id);
      longest_continuation_ = std::max(longest_continuation_, token.size() - prefix_.size());
    }
  }
  heads_ = TokenMap(heads);
  continuations_ = TokenMap(continuations);
}

void WordPieceModel::tokenize_word(std::string_view word, std::vector<int64_t>& ids) const {
  size_t chars = 0;
  for (char c : word) chars += !is_continuation_byte(c);
  if (chars > max_chars_) {
    ids.push_back(unk_id_);
    return;
  }
  const size_t first = ids.size();
  for (size_t start = 0; start < word.size();) {
    const bool head = start == 0;
    // Nothing longer than the longest token can match, so start the search there.
    size_t end = std::min(word.size(), start + (head ? longest_token_ : longest_continuation_));
    while (end > start && end < word.size() && is_continuation_byte(word[end])) --end;
    int64_t found = -1;
    while (end > start) {
      found = (head ? heads_ : continuations_).find(word.substr(start, end - start));
      if (found >= 0) break;
      do --end;
      while (end > start && is_continuation_byte(word[end]));
    }
    if (found < 0) {  // some part matches nothing: the whole word is unknown
      ids.resize(first);
      ids.push_back(unk_id_);
      return;
    }
    ids.push_back(found);
    start = end;
  }
}

}  // namespace peft::tok
