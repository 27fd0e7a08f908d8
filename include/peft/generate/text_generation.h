#pragma once
// Text in, text out: generate() with a tokenizer on both ends. Prompts are encoded as the model's
// tokenizer encodes them (its bos/template included), continuations decoded incrementally (never half
// a UTF-8 character) and cut at stop strings, as servers do: the stop string itself is not part of
// the text, and text that might still become a stop string is held back from the stream until it
// cannot.
#include <functional>
#include <string>
#include <vector>

#include "peft/generate/chat_template.h"
#include "peft/generate/generate.h"
#include "peft/tokenize/tokenizer.h"

namespace peft {

struct TextGenerationOptions {
  GenerationOptions generation;
  std::vector<std::string> stop_strings;
  bool skip_special_tokens = true;  // as HF's decode(..., skip_special_tokens=True) of a pipeline
  // Rows nobody waits for any more (a server's client went away) end after the current step.
  std::function<bool(size_t row)> abandoned;
};

struct GeneratedText {
  std::string text;                // the continuation, without the prompt and the stop string
  std::vector<int64_t> token_ids;  // every new token, the one that completed a stop string included
  std::string finish_reason;       // "stop" (stop token or string) or "length"
};

// Called with each row's newly final text as it becomes known.
using TextCallback = std::function<void(size_t row, const std::string& piece)>;

std::vector<GeneratedText> generate_text(AdaptedModel& model, const tok::Tokenizer& tokenizer,
                                         const std::vector<std::vector<int64_t>>& prompts,
                                         const TextGenerationOptions& options, const TextCallback& on_text = {});

// The prompt ids of a chat, as HF's apply_chat_template(messages, add_generation_prompt=True,
// tokenize=True): the template (Jinja source, non-empty) is rendered with the tokenizer's bos/eos
// names and writes the special tokens itself, so none are added.
std::vector<int64_t> encode_chat(const tok::Tokenizer& tokenizer, const std::string& chat_template,
                                 const std::vector<ChatMessage>& messages);
// The stop ids to use when none are given: the tokenizer's eos, if any.
std::vector<int64_t> default_stop_token_ids(const tok::Tokenizer& tokenizer);
// Sets `stop` (default_stop_token_ids when empty) as the stop ids and the pad id the tokenizer's pad,
// else the first stop id (as HF's generate pads with eos), else 0.
void set_stop_and_pad(GenerationOptions& options, const tok::Tokenizer& tokenizer, std::vector<int64_t> stop = {});

}  // namespace peft
