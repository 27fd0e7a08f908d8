#pragma once
// Reading config keys with a one-line error naming the key (internal to src/methods).
#include <string>

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

}  // namespace peft
