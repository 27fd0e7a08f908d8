#pragma once
// The WordPiece model: greedy longest-match-first segmentation of one pre-tokenized word.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenize/token_map.h"
#include "tokenize/vocab.h"

namespace peft::tok {

class WordPieceModel {
 public:
  WordPieceModel(Vocab vocab, int64_t unk_id, std::string continuing_subword_prefix,
                 size_t max_input_chars_per_word);

  // Appends the ids of word. A word longer than max_input_chars_per_word characters, or one with
  // any part that matches no token, becomes a single unk id.
  void tokenize_word(std::string_view word, std::vector<int64_t>& ids) const;

  const Vocab& vocab() const { return vocab_; }
  int64_t unk_id() const { return unk_id_; }
  const std::string& prefix() const { return prefix_; }
  size_t max_input_chars_per_word() const { return max_chars_; }

 private:
  Vocab vocab_;
  TokenMap heads_;  // every token, for the first piece of a word
  // Continuation pieces keyed without their prefix ("##ing" under "ing"), so lookups need no
  // concatenation. Both maps point into vocab_'s strings.
  TokenMap continuations_;
  size_t longest_token_ = 0, longest_continuation_ = 0;  // in bytes: bounds the search
  int64_t unk_id_;
  std::string prefix_;
  size_t max_chars_;
};

}  // namespace peft::tok
