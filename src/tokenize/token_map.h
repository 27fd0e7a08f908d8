#pragma once
// A read-only string -> id hash table for the WordPiece inner loop: open addressing over one flat
// array, so a lookup (most of them misses, while the longest match is searched) costs one cache
// line instead of a walk over std::unordered_map's nodes.
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace peft::tok {

class TokenMap {
 public:
  TokenMap() = default;
  // The keys' bytes must outlive the map. A key given twice keeps the last id.
  explicit TokenMap(const std::vector<std::pair<std::string_view, int64_t>>& entries);

  // -1 when absent.
  int64_t find(std::string_view key) const {
    if (slots_.empty()) return -1;
    const uint64_t h = hash(key);
    const uint32_t tag = static_cast<uint32_t>(h >> 32) | 1;  // 0 marks an empty slot
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.tag == 0) return -1;
      if (s.tag == tag && s.length == key.size() && std::memcmp(s.data, key.data(), key.size()) == 0)
        return s.id;
    }
  }

  static uint64_t hash(std::string_view key) {
    // 8 bytes at a time, multiply-xorshift mixing: tokens are short, so speed beats strength.
    uint64_t h = 0x9E3779B97F4A7C15ull ^ key.size();
    size_t i = 0;
    for (; i + 8 <= key.size(); i += 8) {
      uint64_t chunk;
      std::memcpy(&chunk, key.data() + i, 8);
      h = (h ^ chunk) * 0xBF58476D1CE4E5B9ull;
      h ^= h >> 31;
    }
    uint64_t tail = 0;
    if (i < key.size()) std::memcpy(&tail, key.data() + i, key.size() - i);
    h = (h ^ tail) * 0x94D049BB133111EBull;
    return h ^ (h >> 29);
  }

 private:
  struct Slot {
    const char* data;
    uint32_t length;
    uint32_t tag;
    int64_t id;
  };
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

}  // namespace peft::tok
