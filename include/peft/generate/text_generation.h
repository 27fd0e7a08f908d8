#pragma once
// Text in, text out: generate() with a tokenizer on both ends. Prompts are encoded as the model's
// tokenizer encodes them (its bos/template included), continuations decoded incrementally (never half
// a UTF-8 character) and cut at stop strings, as servers do: the stop string itself is not part of
// the text, and text that might still become a stop string is held back from the stream until it
// cannot.
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "peft/generate/chat_template.h"
#include "peft/generate/decode_session.h"
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

// One row's text as its tokens arrive: decoded incrementally, cut before the first stop string, text
// that may still become a stop string held back.
class TextStream {
 public:
  TextStream(const tok::Tokenizer& tokenizer, std::vector<std::string> stop_strings, bool skip_special_tokens);
  // The text that became final with `token` (nothing once stopped()).
  std::string push(int64_t token);
  // At the row's end: the text held back (it may still complete a stop string).
  std::string finish();
  // A stop string has matched; the rest of the row is dropped.
  bool stopped() const { return stopped_; }

 private:
  std::string release(bool at_end);
  std::unique_ptr<tok::StreamingDecoder> decoder_;
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

struct TextDecodeRow {
  uint64_t id = 0;  // unique among the running rows
  std::vector<int64_t> prompt;
  std::string adapter;  // routed sessions only: the row's adapter (task), "" for the base model
  std::shared_ptr<const TextGenerationOptions> options;  // rows sharing one object share a sampler (seed)
};

// Continuous batching with text (peft serve): prompts join and leave a DecodeSession between steps,
// each row's text streaming through a TextStream. on_text gets new final text; on_done the finished
// row (its text, tokens and finish reason), after which the row is gone.
class TextDecodeSession {
 public:
  using OnText = std::function<void(uint64_t row, const std::string& piece)>;
  using OnDone = std::function<void(uint64_t row, GeneratedText result)>;

  TextDecodeSession(AdaptedModel& model, const tok::Tokenizer& tokenizer, bool routed);
  // Prefills and joins the rows (one forward); their first pieces (and any row that ends at once) are
  // reported before it returns. If it throws, nothing was reported and the session is unchanged.
  void add(const std::vector<TextDecodeRow>& rows, const OnText& on_text, const OnDone& on_done);
  // One decoding step of every running row.
  void step(const OnText& on_text, const OnDone& on_done);
  // Ends a row now and returns what it has generated (finish reason "stop"); nothing is reported.
  GeneratedText remove(uint64_t row);
  size_t size() const { return session_.size(); }
  bool empty() const { return session_.empty(); }

 private:
  struct Row {
    TextStream stream;
    GeneratedText out;
  };
  void deliver(const std::vector<DecodedToken>& tokens, const OnText& on_text, const OnDone& on_done);

  const tok::Tokenizer& tokenizer_;
  DecodeSession session_;
  std::map<uint64_t, Row> rows_;
};

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
