#pragma once
// Causal-LM fine-tuning data: prompt -> completion pairs (E2E meaning representation -> text, users'
// JSONL with prompt/completion columns, chat conversations rendered by the model's chat template),
// tokenized as HF's causal-LM recipes do: prompt then completion then eos, with the loss on the
// completion only (prompt labels -100). Torch-free.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "peft/data/batching.h"
#include "peft/tokenize/tokenizer.h"

namespace peft::data {

struct LmExample {
  std::string prompt, completion;
  std::vector<std::string> references;  // every reference of the prompt, for generation metrics (E2E dev/test)
  size_t line = 0;                      // where it came from, for messages
};

struct LmDataset {
  std::string source;
  std::vector<LmExample> examples;
  size_t size() const { return examples.size(); }
};

// The prompt an E2E meaning representation becomes: the MR, then a separator the model learns to
// continue (the LoRA paper's GPT-2 setup separates MR and text the same way).
std::string e2e_prompt(const std::string& mr);

// E2E splits from the release folder: train has one example per (MR, reference) row; dev/test one per
// MR with all its references (the completion is the first). `limit` > 0 keeps the first N rows / MRs.
LmDataset load_e2e_lm(const std::string& dir, const std::string& split, size_t limit = 0);

// JSONL with string columns `prompt_key` and `completion_key` (a "references" list is kept if present).
// Errors name the file and line: not JSON, a missing or non-string column, an empty completion.
LmDataset load_lm_jsonl(const std::string& path, const std::string& prompt_key = "prompt",
                        const std::string& completion_key = "completion");

// A conversation: the prompt is everything before the last message (with the generation prompt), the
// completion is the last message as the template renders it (its end-of-turn marker included).
struct ChatTurn {
  std::string role, content;
};
using ChatRenderer = std::function<std::string(const std::vector<ChatTurn>& messages, bool add_generation_prompt)>;
// JSONL with a "messages" list per line whose last message is the assistant's; rendered with `render`.
LmDataset load_chat_jsonl(const std::string& path, const ChatRenderer& render);

// A random subset of n examples (all if n >= size), in their original order.
LmDataset sample(const LmDataset& data, size_t n, uint64_t seed);

struct LmTokenizeOptions {
  size_t max_seq_length = 256;
  bool add_special_tokens = true;  // the tokenizer's bos (and template) on the prompt
  std::optional<int64_t> eos_id;   // appended after the completion when set and not already there
};

// Token ids and per-token labels (-100 on the prompt) for training and loss evaluation. A prompt that
// leaves no room for the completion within max_seq_length is an error naming the source and line; a
// long completion is cut at max_seq_length.
TokenizedDataset tokenize_lm(const LmDataset& data, const tok::Tokenizer& tokenizer, const LmTokenizeOptions& options);

// The prompts' token ids alone, as generation starts from them.
std::vector<std::vector<int64_t>> tokenize_prompts(const LmDataset& data, const tok::Tokenizer& tokenizer,
                                                   const LmTokenizeOptions& options);

}  // namespace peft::data
