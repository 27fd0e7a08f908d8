#include "tokenize/bpe_model.h"

#include <algorithm>

#include <fmt/format.h>

#include "peft/error.h"
#include "tokenize/byte_level.h"

namespace peft::tok {

BpeModel::BpeModel(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                   const BpeModelOptions& options, const std::string& source)
    : vocab_(std::move(vocab)), options_(options) {
  const auto id_of = [&](const std::string& token, size_t rank, const std::string& left, const std::string& right) {
    auto id = vocab_.find(token);
    if (!id) fail("{}: BPE merge {} '{} {}': '{}' is not in the vocabulary", source, rank, left, right, token);
    return static_cast<int32_t>(*id);
  };
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const int32_t a = id_of(left, rank, left, right), b = id_of(right, rank, left, right);
    const int32_t merged = id_of(left + right, rank, left, right);
    merges_[pair_key(a, b)] = Merge{static_cast<uint32_t>(rank), merged};  // a repeated pair keeps the last rank
  }
  for (int byte = 0; byte < 256; ++byte) {
    const std::string& symbol = byte_level::char_of(static_cast<uint8_t>(byte));
    std::vector<int32_t>& out = byte_symbols_[byte];
    if (auto id = vocab_.find(symbol)) {
      out.push_back(static_cast<int32_t>(*id));
      byte_known_[byte] = true;
    } else if (options_.byte_fallback) {  // the bytes of the symbol's UTF-8, as `tokenizers` does
      for (unsigned char b : symbol) {
        auto id = vocab_.find(fmt::format("<0x{:02X}>", b));
        if (!id) {
          out.clear();
          break;
        }
        out.push_back(static_cast<int32_t>(*id));
      }
    }
  }
}

BpeModel::BpeModel(BpeModel&& other) noexcept
    : vocab_(std::move(other.vocab_)),
      options_(other.options_),
      merges_(std::move(other.merges_)),
      byte_symbols_(std::move(other.byte_symbols_)),
      byte_known_(other.byte_known_),
      cache_(std::move(other.cache_)) {}

void BpeModel::tokenize_word(std::string_view word, std::vector<int64_t>& ids) const {
  const bool cacheable = word.size() <= kCacheMaxWord;
  if (cacheable) {
    std::shared_lock lock(cache_mutex_);
    auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  thread_local std::vector<int32_t> out;
  out.clear();
  merge_word(word, out);
  ids.insert(ids.end(), out.begin(), out.end());
  if (cacheable) {
    std::unique_lock lock(cache_mutex_);
    if (cache_.size() >= kCacheCapacity) cache_.clear();  // forget old words rather than stop learning
    cache_.emplace(std::string(word), out);
  }
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  if (options_.ignore_merges) {
    thread_local std::string mapped;
    mapped.clear();
    byte_level::encode(word, mapped);
    if (auto id = vocab_.find(mapped)) {
      out.push_back(static_cast<int32_t>(*id));
      return;
    }
  }
  struct Symbol {
    int32_t id, prev, next;
    bool alive;
  };
  thread_local std::vector<Symbol> symbols;
  symbols.clear();
  const auto add = [&](int32_t id) {
    const auto i = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, i - 1, i + 1, true});
  };
  // `tokenizers`' order: an unknown symbol waits (fused with the next unknown ones when fuse_unk)
  // until a known symbol follows; byte-fallback symbols do not make it wait less.
  bool unk_pending = false;
  for (char c : word) {
    const auto b = static_cast<unsigned char>(c);
    if (byte_known_[b]) {
      if (unk_pending) add(static_cast<int32_t>(*options_.unk_id));
      unk_pending = false;
      add(byte_symbols_[b][0]);
    } else if (!byte_symbols_[b].empty()) {
      for (int32_t id : byte_symbols_[b]) add(id);
    } else if (options_.unk_id) {
      if (unk_pending && !options_.fuse_unk) add(static_cast<int32_t>(*options_.unk_id));
      unk_pending = true;
    }
  }
  if (unk_pending) add(static_cast<int32_t>(*options_.unk_id));
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    uint32_t rank;
    int32_t pos, id;
    // The queue's top is the lowest rank, then the leftmost position.
    bool operator<(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Candidate> heap;  // a binary heap, reused across words
  heap.clear();
  const auto consider = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it == merges_.end()) return;
    heap.push_back({it->second.rank, left, it->second.id});
    std::push_heap(heap.begin(), heap.end());
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const Candidate top = heap.back();
    heap.pop_back();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    // Stale when either side has changed since the candidate was queued.
    auto it = merges_.find(pair_key(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.id != top.id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

}  // namespace peft::tok
