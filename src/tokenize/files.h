#pragma once
// Reading the small text/JSON files of a tokenizer, with errors that name the file.
#include <string>

#include <nlohmann/json.hpp>

namespace peft::tok {

// The whole file; peft::Error "cannot read <what> <path>" when it is missing or unreadable.
std::string read_file(const std::string& path, const char* what);
nlohmann::json read_json(const std::string& path, const char* what);

}  // namespace peft::tok
