#include "tokenize/vocab.h"

#include "peft/error.h"

namespace peft::tok {

Vocab Vocab::from_list(std::vector<std::string> tokens) {
  Vocab v;
  v.tokens_ = std::move(tokens);
  v.present_.assign(v.tokens_.size(), true);
  v.ids_.reserve(v.tokens_.size());
  for (size_t i = 0; i < v.tokens_.size(); ++i) v.ids_[v.tokens_[i]] = static_cast<int64_t>(i);
  return v;
}

Vocab Vocab::from_entries(std::vector<std::pair<std::string, int64_t>> entries,
                          const std::string& source) {
  Vocab v;
  int64_t max_id = -1;
  for (const auto& [token, id] : entries) {
    if (id < 0) fail("{}: negative id {} for token '{}'", source, id, token);
    max_id = std::max(max_id, id);
  }
  v.tokens_.resize(static_cast<size_t>(max_id + 1));
  v.present_.assign(v.tokens_.size(), false);
  for (auto& [token, id] : entries) {
    if (v.present_[id]) fail("{}: id {} is given to both '{}' and '{}'", source, id, v.tokens_[id], token);
    v.tokens_[id] = std::move(token);
    v.present_[id] = true;
  }
  v.ids_.reserve(entries.size());
  for (size_t i = 0; i < v.tokens_.size(); ++i)
    if (v.present_[i]) v.ids_.emplace(v.tokens_[i], static_cast<int64_t>(i));
  return v;
}

}  // namespace peft::tok
