#include "peft/generate/text_generation.h"

#include "peft/error.h"

#include <algorithm>
#include <memory>

namespace peft {
namespace {

// One row's text: decoded pieces accumulate in `pending` until no stop string can start in them.
struct RowText {
  std::unique_ptr<tok::StreamingDecoder> decoder;
  std::string emitted, pending;
  bool stopped = false;
};

// Length of the longest suffix of `text` that is a proper prefix of some stop string: text that must wait.
size_t held_back(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const std::string& s : stops)
    for (size_t n = std::min(text.size(), s.size() - 1); n > hold; --n)
      if (text.compare(text.size() - n, n, s, 0, n) == 0) {
        hold = n;
        break;
      }
  return hold;
}

// Moves what is final from row.pending to the caller; true when a stop string ended the row.
bool release(RowText& row, const std::vector<std::string>& stops, bool at_end, std::string& out) {
  size_t cut = std::string::npos;
  for (const std::string& s : stops)
    if (!s.empty()) cut = std::min(cut, row.pending.find(s));
  if (cut != std::string::npos) {
    out = row.pending.substr(0, cut);
    row.pending.clear();
    return true;
  }
  const size_t keep = at_end ? 0 : held_back(row.pending, stops);
  out = row.pending.substr(0, row.pending.size() - keep);
  row.pending.erase(0, row.pending.size() - keep);
  return false;
}

}  // namespace

std::vector<int64_t> default_stop_token_ids(const tok::Tokenizer& tokenizer) {
  if (auto eos = tokenizer.eos_id()) return {*eos};
  return {};
}

void set_stop_and_pad(GenerationOptions& options, const tok::Tokenizer& tokenizer, std::vector<int64_t> stop) {
  options.stop_token_ids = stop.empty() ? default_stop_token_ids(tokenizer) : std::move(stop);
  options.pad_token_id = tokenizer.pad_id().value_or(options.stop_token_ids.empty() ? 0 : options.stop_token_ids[0]);
}

std::vector<GeneratedText> generate_text(AdaptedModel& model, const tok::Tokenizer& tokenizer,
                                         const std::vector<std::vector<int64_t>>& prompts,
                                         const TextGenerationOptions& options, const TextCallback& on_text) {
  std::vector<RowText> rows(prompts.size());
  for (auto& r : rows) r.decoder = std::make_unique<tok::StreamingDecoder>(tokenizer, options.skip_special_tokens);
  std::vector<GeneratedText> out(prompts.size());
  auto emit = [&](size_t r, const std::string& piece) {
    if (piece.empty()) return;
    out[r].text += piece;
    if (on_text) on_text(r, piece);
  };
  const GenerationResult result = generate(model, prompts, options.generation, [&](GenerationStep& step) {
    for (size_t r = 0; r < rows.size(); ++r) {
      if (step.newest[r] < 0 || rows[r].stopped) continue;
      if (options.abandoned && options.abandoned(r)) {
        rows[r].stopped = true;
        step.finish[r] = true;
        continue;
      }
      rows[r].pending += rows[r].decoder->push(step.newest[r]);
      std::string piece;
      if (release(rows[r], options.stop_strings, false, piece)) {
        rows[r].stopped = true;
        step.finish[r] = true;
      }
      emit(r, piece);
    }
  });
  for (size_t r = 0; r < rows.size(); ++r) {
    if (!rows[r].stopped) {
      rows[r].pending += rows[r].decoder->flush();
      std::string piece;
      rows[r].stopped = release(rows[r], options.stop_strings, true, piece);
      emit(r, piece);
    }
    out[r].token_ids = result.tokens[r];
    out[r].finish_reason = result.stopped[r] || rows[r].stopped ? "stop" : "length";
  }
  return out;
}

std::vector<int64_t> encode_chat(const tok::Tokenizer& tokenizer, const std::string& chat_template,
                                 const std::vector<ChatMessage>& messages) {
  if (chat_template.empty()) fail("encode_chat: no chat template");
  ChatTemplateOptions chat;
  chat.add_generation_prompt = true;
  if (auto id = tokenizer.bos_id()) chat.bos_token = tokenizer.id_to_token(*id);
  if (auto id = tokenizer.eos_id()) chat.eos_token = tokenizer.id_to_token(*id);
  tok::EncodeOptions options;
  options.truncation = tok::Truncation::None;
  options.add_special_tokens = false;
  return tokenizer.encode(render_chat_template(chat_template, messages, chat), std::nullopt, options).ids;
}

}  // namespace peft
