#pragma once
// Reading the parts of a `tokenizers` tokenizer.json that every model type shares (added tokens,
// post-processor templates), with errors that name the file and the key.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "tokenize/added_vocab.h"
#include "tokenize/post_process.h"

namespace peft::tok::tokenizer_json {

using nlohmann::json;

// j[key], or a null json when j is not an object or has no such key.
const json& member(const json& j, const char* key);

// j[key] as T; fallback when absent or null; Error naming path and key on a type mismatch.
template <typename T>
T get_or(const json& j, const char* key, T fallback, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const json::exception&) {
    fail("{}: '{}' has the wrong type ({})", path, key, it->type_name());
  }
}

// j["type"]; Error "<path>: <what> has no 'type'" when missing.
std::string type_of(const json& j, const std::string& path, const char* what);

// ["[SEP]", 102] as BertProcessing/RobertaProcessing store their tokens: the id.
int64_t processing_token_id(const json& j, const char* key, const std::string& path);

// A TemplateProcessing post-processor (its "single" and "pair" templates).
TemplateProcessor parse_template_processing(const json& j, const std::string& path);

// The "added_tokens" list. single_word=true is rejected.
std::vector<AddedToken> parse_added_tokens(const json& j, const std::string& path);

}  // namespace peft::tok::tokenizer_json
