#pragma once
// The BPE model of byte-level tokenizers: one pre-tokenized word (raw bytes) -> ids, merging the
// adjacent pair of lowest merge rank first (leftmost on ties), as `tokenizers`' BPE does, with a
// priority queue (O(n log n) per word) and a cache of recent words.
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenize/vocab.h"

namespace peft::tok {

struct BpeModelOptions {
  std::optional<int64_t> unk_id;  // for bytes whose symbol is missing; none: they are dropped
  bool fuse_unk = false;          // consecutive unknown symbols become one unk
  bool byte_fallback = false;     // a missing symbol becomes its <0xHH> byte tokens when present
  bool ignore_merges = false;     // a word that is a token is that token, merges or not (Llama-3)
};

class BpeModel {
 public:
  // merges: (left, right) token pairs, rank = position; both sides and their concatenation must
  // be in vocab. source names the file in errors.
  BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           const BpeModelOptions& options, const std::string& source);
  BpeModel(BpeModel&& other) noexcept;

  // Appends the ids of word, given as raw bytes (the byte-level alphabet is applied here).
  void tokenize_word(std::string_view word, std::vector<int64_t>& ids) const;

  const Vocab& vocab() const { return vocab_; }
  std::optional<int64_t> unk_id() const { return options_.unk_id; }
  size_t merge_count() const { return merges_.size(); }

 private:
  struct Merge {
    uint32_t rank;
    int32_t id;  // of the merged token
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  Vocab vocab_;
  BpeModelOptions options_;
  std::unordered_map<uint64_t, Merge> merges_;
  // The initial symbols of each byte: its alphabet character's id, else its byte-fallback ids;
  // none (empty) means unknown.
  std::array<std::vector<int32_t>, 256> byte_symbols_;
  std::array<bool, 256> byte_known_{};  // the alphabet character itself is in the vocabulary

  // Words seen recently (short ones only), shared by all threads.
  static constexpr size_t kCacheCapacity = 20000, kCacheMaxWord = 64;
  mutable std::shared_mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace peft::tok
