#include "tokenize/token_map.h"

namespace peft::tok {

TokenMap::TokenMap(const std::vector<std::pair<std::string_view, int64_t>>& entries) {
  size_t capacity = 16;
  while (capacity < entries.size() * 2) capacity *= 2;  // load factor <= 1/2: short probes
  slots_.assign(capacity, Slot{nullptr, 0, 0, -1});
  mask_ = capacity - 1;
  for (const auto& [key, id] : entries) {
    const uint64_t h = hash(key);
    const uint32_t tag = static_cast<uint32_t>(h >> 32) | 1;
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.tag == 0) {
        s = Slot{key.data(), static_cast<uint32_t>(key.size()), tag, id};
        break;
      }
      if (s.tag == tag && std::string_view(s.data, s.length) == key) {
        s.id = id;
        break;
      }
    }
  }
}

}  // namespace peft::tok
