#pragma once
// The JSON side of `peft serve` (internal to src/serve): request bodies parsed into plain structs with
// every type checked, and OpenAI-shaped responses. No I/O here, so the parsers can be tested and
// fuzzed on their own. Errors are HttpError: the status and OpenAI's error "type" travel with them.
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "peft/error.h"
#include "peft/generate/chat_template.h"
#include "peft/serve/text_input.h"

namespace peft::serve {

class HttpError : public Error {
 public:
  HttpError(int status, std::string type, const std::string& message)
      : Error(message), status(status), type(std::move(type)) {}
  int status;
  std::string type;
};
[[noreturn]] void bad_request(const std::string& message);  // 400 invalid_request_error

// {"error": {"message", "type", "code"}}
nlohmann::json error_body(int status, const std::string& type, const std::string& message);

// Parses a request body; malformed JSON or a non-object is a 400.
nlohmann::json parse_body(const std::string& body);

struct EmbeddingsRequest {
  std::string model;
  std::vector<std::string> inputs;
  bool base64 = false;  // encoding_format "base64": little-endian float32 bytes, base64-encoded
};
EmbeddingsRequest parse_embeddings(const nlohmann::json& j);

struct ClassifyRequest {
  std::string model;
  std::vector<TextInput> inputs;  // a text, or [text, pair]
};
ClassifyRequest parse_classify(const nlohmann::json& j);

// Sampling options shared by completions and chat completions (OpenAI's names and defaults:
// temperature 1 samples; temperature 0 is greedy).
struct SamplingRequest {
  int64_t max_tokens = 16;
  double temperature = 1.0, top_p = 1.0;
  int64_t top_k = 0;
  double min_p = 0.0, repetition_penalty = 1.0;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool stream = false;
};

struct CompletionRequest {
  std::string model;
  std::vector<std::string> prompts;  // "prompt": a string or a list of strings
  SamplingRequest sampling;
};
CompletionRequest parse_completion(const nlohmann::json& j);

struct ChatRequest {
  std::string model;
  std::vector<ChatMessage> messages;
  SamplingRequest sampling;
};
ChatRequest parse_chat(const nlohmann::json& j);

struct TaskLoadRequest {
  std::string name, path;
};
TaskLoadRequest parse_task_load(const nlohmann::json& j);

std::string base64_floats(const std::vector<float>& values);

}  // namespace peft::serve
