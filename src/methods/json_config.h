#pragma once
// Reading config keys with a one-line error naming the key (internal to src/methods).
#include <initializer_list>
#include <string>

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "peft/error.h"

namespace peft {

// Sets `out` from j[key] when present and not null; wrong types name the key.
template <typename T>
void read_key(const nlohmann::json& j, const std::string& key, T& out) {
  if (!j.is_object()) fail("method config must be a JSON object");
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return;
  try {
    out = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("config key '{}' has the wrong type ({})", key, it->dump());
  }
}

// Fails unless `value` is one of `choices`: "<method>: unknown <option> '<value>' (choose one of: ...)".
inline void check_choice(const char* method, const std::string& option, const std::string& value,
                         std::initializer_list<const char*> choices) {
  for (auto c : choices)
    if (value == c) return;
  fail("{}: unknown {} '{}' (choose one of: {})", method, option, value, fmt::join(choices, ", "));
}

}  // namespace peft
