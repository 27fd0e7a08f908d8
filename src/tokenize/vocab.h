#pragma once
// A token <-> id table. Lookups take string_views and do not allocate.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace peft::tok {

class Vocab {
 public:
  Vocab() = default;
  // tokens[i] is the token of id i. A token listed twice is found under its last id (vocab.txt
  // is read into a Python dict line by line), while both ids still map back to it.
  static Vocab from_list(std::vector<std::string> tokens);
  // (token, id) entries as in tokenizer.json. Ids must be unique and non-negative; `source` names
  // the file in errors.
  static Vocab from_entries(std::vector<std::pair<std::string, int64_t>> entries,
                            const std::string& source);

  Vocab(Vocab&&) = default;  // the views in ids_ point into tokens_' strings, which a move keeps
  Vocab& operator=(Vocab&&) = default;
  Vocab(const Vocab&) = delete;
  Vocab& operator=(const Vocab&) = delete;

  std::optional<int64_t> find(std::string_view token) const {
    auto it = ids_.find(token);
    return it == ids_.end() ? std::nullopt : std::optional<int64_t>(it->second);
  }
  // nullptr when no token has this id.
  const std::string* token(int64_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= tokens_.size() || !present_[id]) return nullptr;
    return &tokens_[id];
  }
  size_t size() const { return ids_.size(); }
  size_t id_bound() const { return tokens_.size(); }  // one past the largest id
  const std::unordered_map<std::string_view, int64_t>& entries() const { return ids_; }

 private:
  std::vector<std::string> tokens_;
  std::vector<bool> present_;
  std::unordered_map<std::string_view, int64_t> ids_;
};

}  // namespace peft::tok
