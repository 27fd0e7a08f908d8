#include "peft/data/lm_data.h"

#include <algorithm>
#include <fstream>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "peft/data/e2e.h"
#include "peft/error.h"

namespace peft::data {
namespace {

using nlohmann::json;

// The JSON object of each non-empty line, with its line number.
template <typename Fn>
void for_each_json_line(const std::string& path, Fn&& fn) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot open", path);
  std::string line;
  size_t number = 0, seen = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      fail("{}: line {} is not JSON", path, number);
    }
    if (!j.is_object()) fail("{}: line {} is not a JSON object", path, number);
    fn(j, number);
    ++seen;
  }
  if (seen == 0) fail("{}: no examples", path);
}

std::string string_field(const json& j, const std::string& key, const std::string& path, size_t line) {
  if (!j.contains(key)) fail("{}: line {} has no \"{}\" column", path, line, key);
  if (!j[key].is_string()) fail("{}: line {}: \"{}\" is not a string", path, line, key);
  return j[key].get<std::string>();
}

}  // namespace

std::string e2e_prompt(const std::string& mr) { return mr + " ||"; }

LmDataset load_e2e_lm(const std::string& dir, const std::string& split, size_t limit) {
  LmDataset out;
  out.source = e2e_split_file(dir, split);
  if (split == "train") {
    for (const E2EPair& p : read_e2e_pairs(out.source, limit))
      out.examples.push_back({e2e_prompt(p.mr), " " + p.ref, {p.ref}, p.line});
    return out;
  }
  for (const E2EItem& item : read_e2e_items(out.source, limit))
    out.examples.push_back({e2e_prompt(item.mr), " " + item.refs.front(), item.refs, item.line});
  return out;
}

LmDataset load_lm_jsonl(const std::string& path, const std::string& prompt_key, const std::string& completion_key) {
  LmDataset out;
  out.source = path;
  for_each_json_line(path, [&](const json& j, size_t line) {
    LmExample e{string_field(j, prompt_key, path, line), string_field(j, completion_key, path, line), {}, line};
    if (e.completion.empty()) fail("{}: line {}: the completion is empty (nothing to learn)", path, line);
    if (j.contains("references") && j["references"].is_array())
      for (const auto& r : j["references"])
        if (r.is_string()) e.references.push_back(r.get<std::string>());
    if (e.references.empty()) e.references.push_back(e.completion);
    out.examples.push_back(std::move(e));
  });
  return out;
}

LmDataset load_chat_jsonl(const std::string& path, const ChatRenderer& render) {
  LmDataset out;
  out.source = path;
  for_each_json_line(path, [&](const json& j, size_t line) {
    if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
      fail("{}: line {} has no \"messages\" list", path, line);
    std::vector<ChatTurn> turns;
    for (const auto& m : j["messages"]) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
          !m["content"].is_string())
        fail("{}: line {}: every message needs string \"role\" and \"content\"", path, line);
      turns.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    if (turns.back().role != "assistant") fail("{}: line {}: the last message is not the assistant's", path, line);
    if (turns.back().content.empty()) fail("{}: line {}: the assistant's message is empty", path, line);
    const std::string answer = turns.back().content;
    const std::string full = render(turns, false);
    turns.pop_back();
    const std::string prompt = render(turns, true);
    if (full.compare(0, prompt.size(), prompt) != 0)
      fail("{}: line {}: the chat template does not render the conversation as the prompt plus the answer", path, line);
    out.examples.push_back({prompt, full.substr(prompt.size()), {answer}, line});
  });
  return out;
}

LmDataset sample(const LmDataset& data, size_t n, uint64_t seed) {
  if (n >= data.size()) return data;
  std::vector<size_t> order(data.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  order.resize(n);
  std::sort(order.begin(), order.end());
  LmDataset out;
  out.source = data.source;
  for (size_t i : order) out.examples.push_back(data.examples[i]);
  return out;
}

std::vector<std::vector<int64_t>> tokenize_prompts(const LmDataset& data, const tok::Tokenizer& tokenizer,
                                                   const LmTokenizeOptions& options) {
  tok::EncodeOptions encode;
  encode.add_special_tokens = options.add_special_tokens;
  encode.truncation = tok::Truncation::None;
  std::vector<std::vector<int64_t>> out;
  for (const LmExample& e : data.examples) {
    std::vector<int64_t> ids = tokenizer.encode(e.prompt, std::nullopt, encode).ids;
    if (ids.size() >= options.max_seq_length)
      fail("{}:{}: the prompt has {} tokens, which leaves no room for a completion within --max-seq-len {}", data.source,
           e.line, ids.size(), options.max_seq_length);
    out.push_back(std::move(ids));
  }
  return out;
}

TokenizedDataset tokenize_lm(const LmDataset& data, const tok::Tokenizer& tokenizer, const LmTokenizeOptions& options) {
  TokenizedDataset out;
  out.pad_id = tokenizer.pad_id().value_or(options.eos_id.value_or(0));
  const auto prompts = tokenize_prompts(data, tokenizer, options);
  tok::EncodeOptions plain;
  plain.add_special_tokens = false;
  plain.truncation = tok::Truncation::None;
  for (size_t i = 0; i < data.size(); ++i) {
    tok::Encoding e;
    e.ids = prompts[i];
    std::vector<int64_t> completion = tokenizer.encode(data.examples[i].completion, std::nullopt, plain).ids;
    if (options.eos_id && (completion.empty() || completion.back() != *options.eos_id)) completion.push_back(*options.eos_id);
    std::vector<int64_t> labels(e.ids.size(), -100);
    const size_t room = options.max_seq_length - e.ids.size();
    if (completion.size() > room) completion.resize(room);
    e.ids.insert(e.ids.end(), completion.begin(), completion.end());
    labels.insert(labels.end(), completion.begin(), completion.end());
    e.attention_mask.assign(e.ids.size(), 1);
    e.type_ids.assign(e.ids.size(), 0);
    out.encodings.push_back(std::move(e));
    out.token_labels.push_back(std::move(labels));
  }
  return out;
}

}  // namespace peft::data
