#include "api.h"

#include <cstring>

namespace peft::serve {
namespace {

using nlohmann::json;

const json& require(const json& j, const char* key) {
  if (!j.contains(key)) bad_request(fmt::format("missing \"{}\"", key));
  return j[key];
}

std::string string_field(const json& j, const char* key) {
  const json& v = require(j, key);
  if (!v.is_string()) bad_request(fmt::format("\"{}\" must be a string", key));
  return v.get<std::string>();
}

// Optional numbers: absent or null keeps the default; anything but a number is a 400.
template <typename T>
void number_field(const json& j, const char* key, T& out) {
  if (!j.contains(key) || j[key].is_null()) return;
  const json& v = j[key];
  if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) bad_request(fmt::format("\"{}\" must be an integer", key));
  } else {
    if (!v.is_number()) bad_request(fmt::format("\"{}\" must be a number", key));
  }
  out = v.get<T>();
}

bool bool_field(const json& j, const char* key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if (!j[key].is_boolean()) bad_request(fmt::format("\"{}\" must be true or false", key));
  return j[key].get<bool>();
}

// "stop": a string or a list of up to 4 strings, as OpenAI takes it.
std::vector<std::string> stop_field(const json& j) {
  if (!j.contains("stop") || j["stop"].is_null()) return {};
  const json& v = j["stop"];
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array()) bad_request("\"stop\" must be a string or a list of strings");
  std::vector<std::string> out;
  for (auto& s : v) {
    if (!s.is_string()) bad_request("\"stop\" must be a string or a list of strings");
    if (!s.get<std::string>().empty()) out.push_back(s.get<std::string>());
  }
  return out;
}

// A string or a non-empty list of strings (OpenAI's "input" and "prompt").
std::vector<std::string> string_list(const json& j, const char* key) {
  const json& v = require(j, key);
  if (v.is_string()) return {v.get<std::string>()};
  if (!v.is_array() || v.empty()) bad_request(fmt::format("\"{}\" must be a string or a non-empty list of strings", key));
  std::vector<std::string> out;
  for (auto& s : v) {
    if (!s.is_string()) bad_request(fmt::format("\"{}\" must be a string or a list of strings", key));
    out.push_back(s.get<std::string>());
  }
  return out;
}

SamplingRequest parse_sampling(const json& j, const char* max_tokens_key) {
  SamplingRequest s;
  number_field(j, "max_tokens", s.max_tokens);
  if (max_tokens_key) number_field(j, max_tokens_key, s.max_tokens);
  number_field(j, "temperature", s.temperature);
  number_field(j, "top_p", s.top_p);
  number_field(j, "top_k", s.top_k);
  number_field(j, "min_p", s.min_p);
  number_field(j, "repetition_penalty", s.repetition_penalty);
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) bad_request("\"seed\" must be an integer");
    s.seed = static_cast<uint64_t>(j["seed"].get<int64_t>());
  }
  s.stop = stop_field(j);
  s.stream = bool_field(j, "stream", false);
  if (s.max_tokens < 1) bad_request("\"max_tokens\" must be at least 1");
  if (s.temperature < 0 || s.temperature > 100) bad_request("\"temperature\" must be between 0 and 100");
  if (s.top_p <= 0 || s.top_p > 1) bad_request("\"top_p\" must be in (0, 1]");
  if (s.top_k < 0 && s.top_k != -1) bad_request("\"top_k\" must be >= 0 (or -1 for off)");
  if (s.top_k == -1) s.top_k = 0;
  if (s.min_p < 0 || s.min_p > 1) bad_request("\"min_p\" must be in [0, 1]");
  if (s.repetition_penalty <= 0) bad_request("\"repetition_penalty\" must be > 0");
  if (j.contains("n") && !j["n"].is_null() && !(j["n"].is_number_integer() && j["n"].get<int64_t>() == 1))
    bad_request("only \"n\": 1 is supported");
  return s;
}

}  // namespace

void bad_request(const std::string& message) { throw HttpError(400, "invalid_request_error", message); }

nlohmann::json error_body(int status, const std::string& type, const std::string& message) {
  return {{"error", {{"message", message}, {"type", type}, {"code", status}}}};
}

nlohmann::json parse_body(const std::string& body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) bad_request("the request body is not valid JSON");
  if (!j.is_object()) bad_request("the request body must be a JSON object");
  return j;
}

EmbeddingsRequest parse_embeddings(const json& j) {
  EmbeddingsRequest r;
  r.model = string_field(j, "model");
  r.inputs = string_list(j, "input");
  if (j.contains("encoding_format") && !j["encoding_format"].is_null()) {
    const json& f = j["encoding_format"];
    if (!f.is_string() || (f != "float" && f != "base64")) bad_request("\"encoding_format\" must be \"float\" or \"base64\"");
    r.base64 = f == "base64";
  }
  if (j.contains("dimensions") && !j["dimensions"].is_null()) bad_request("\"dimensions\" is not supported");
  return r;
}

ClassifyRequest parse_classify(const json& j) {
  ClassifyRequest r;
  r.model = string_field(j, "model");
  const json& input = require(j, "input");
  auto one = [&](const json& v) {
    if (v.is_string()) return TextInput{v.get<std::string>(), std::nullopt};
    if (v.is_array() && v.size() == 2 && v[0].is_string() && v[1].is_string())
      return TextInput{v[0].get<std::string>(), v[1].get<std::string>()};
    bad_request("every \"input\" item must be a text or a [text, pair] list of two strings");
  };
  if (input.is_string()) {
    r.inputs.push_back(one(input));
  } else if (input.is_array() && !input.empty()) {
    for (auto& v : input) r.inputs.push_back(one(v));
  } else {
    bad_request("\"input\" must be a text or a non-empty list of texts / [text, pair] lists");
  }
  return r;
}

CompletionRequest parse_completion(const json& j) {
  CompletionRequest r;
  r.model = string_field(j, "model");
  r.prompts = string_list(j, "prompt");
  if (bool_field(j, "echo", false)) bad_request("\"echo\" is not supported");
  if (j.contains("logprobs") && !j["logprobs"].is_null()) bad_request("\"logprobs\" is not supported");
  r.sampling = parse_sampling(j, nullptr);
  if (r.sampling.stream && r.prompts.size() > 1) bad_request("\"stream\" takes a single prompt");
  return r;
}

ChatRequest parse_chat(const json& j) {
  ChatRequest r;
  r.model = string_field(j, "model");
  const json& messages = require(j, "messages");
  if (!messages.is_array() || messages.empty()) bad_request("\"messages\" must be a non-empty list");
  for (auto& m : messages) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      bad_request("every message needs a string \"role\"");
    ChatMessage msg;
    msg.role = m["role"].get<std::string>();
    const json content = m.contains("content") ? m["content"] : json();
    if (content.is_string()) {
      msg.content = content.get<std::string>();
    } else if (content.is_array()) {  // OpenAI's content parts: text parts only
      for (auto& part : content) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
          bad_request("message content parts must be {\"type\": \"text\", \"text\": ...}");
        msg.content += part["text"].get<std::string>();
      }
    } else {
      bad_request("every message needs a string \"content\"");
    }
    r.messages.push_back(std::move(msg));
  }
  r.sampling = parse_sampling(j, "max_completion_tokens");
  return r;
}

TaskLoadRequest parse_task_load(const json& j) {
  // {"name", "path"}; "task"/"model" and "dir" are taken as their synonyms.
  auto first_of = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (j.contains(k)) return string_field(j, k);
    return string_field(j, *keys.begin());  // the error names the main key
  };
  TaskLoadRequest r;
  r.name = first_of({"name", "task", "model"});
  r.path = first_of({"path", "dir"});
  return r;
}

std::string base64_floats(const std::vector<float>& values) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());  // little-endian hosts only, as numpy's tobytes()
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t b0 = static_cast<uint8_t>(bytes[i]);
    const uint32_t b1 = i + 1 < bytes.size() ? static_cast<uint8_t>(bytes[i + 1]) : 0;
    const uint32_t b2 = i + 2 < bytes.size() ? static_cast<uint8_t>(bytes[i + 2]) : 0;
    const uint32_t v = (b0 << 16) | (b1 << 8) | b2;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? alphabet[v & 63] : '=';
  }
  return out;
}

}  // namespace peft::serve
