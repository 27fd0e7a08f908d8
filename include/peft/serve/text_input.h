#pragma once
// One input of an encoder task: a text, or a pair of texts (torch-free, shared by the request parsers).
#include <optional>
#include <string>

namespace peft::serve {

struct TextInput {
  std::string text;
  std::optional<std::string> pair;
};

}  // namespace peft::serve
