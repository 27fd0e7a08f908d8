#include "peft/generate/text_generation.h"

#include "peft/error.h"

#include <algorithm>
#include <memory>

namespace peft {
namespace {

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

}  // namespace

TextStream::TextStream(const tok::Tokenizer& tokenizer, std::vector<std::string> stop_strings, bool skip_special_tokens)
    : decoder_(std::make_unique<tok::StreamingDecoder>(tokenizer, skip_special_tokens)), stops_(std::move(stop_strings)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string()), stops_.end());
}

std::string TextStream::release(bool at_end) {
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) cut = std::min(cut, pending_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  const size_t keep = at_end ? 0 : held_back(pending_, stops_);
  std::string out = pending_.substr(0, pending_.size() - keep);
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string TextStream::push(int64_t token) {
  if (stopped_) return {};
  pending_ += decoder_->push(token);
  return release(false);
}

std::string TextStream::finish() {
  if (stopped_) return {};
  pending_ += decoder_->flush();
  return release(true);
}

TextDecodeSession::TextDecodeSession(AdaptedModel& model, const tok::Tokenizer& tokenizer, bool routed)
    : tokenizer_(tokenizer), session_(*model.model(), routed) {
  for (auto& m : model.methods()) m->before_forward(*model.model());
}

void TextDecodeSession::add(const std::vector<TextDecodeRow>& rows, const OnText& on_text, const OnDone& on_done) {
  std::vector<DecodeRow> requests;
  for (auto& r : rows) {
    if (!r.options) fail("generate: a row without generation options");
    // The token session shares the text options' lifetime (and their identity, for sampler sharing).
    requests.push_back({r.id, r.prompt, r.adapter, std::shared_ptr<const GenerationOptions>(r.options, &r.options->generation)});
  }
  const std::vector<DecodedToken> first = session_.add(requests);
  for (auto& r : rows)
    rows_.emplace(r.id, Row{TextStream(tokenizer_, r.options->stop_strings, r.options->skip_special_tokens), {}});
  deliver(first, on_text, on_done);
}

void TextDecodeSession::step(const OnText& on_text, const OnDone& on_done) {
  deliver(session_.step(), on_text, on_done);
}

GeneratedText TextDecodeSession::remove(uint64_t row) {
  auto it = rows_.find(row);
  if (it == rows_.end()) return {};
  session_.remove(row);
  GeneratedText out = std::move(it->second.out);
  out.finish_reason = "stop";
  rows_.erase(it);
  return out;
}

void TextDecodeSession::deliver(const std::vector<DecodedToken>& tokens, const OnText& on_text, const OnDone& on_done) {
  for (const DecodedToken& t : tokens) {
    auto it = rows_.find(t.row);
    if (it == rows_.end()) continue;
    Row& row = it->second;
    std::string piece;
    if (t.token >= 0) {
      row.out.token_ids.push_back(t.token);
      piece = row.stream.push(t.token);
    }
    const bool ended = t.last || row.stream.stopped();
    if (ended) piece += row.stream.finish();
    if (!piece.empty()) {
      row.out.text += piece;
      if (on_text) on_text(t.row, piece);
    }
    if (!ended) continue;
    if (!t.last) session_.remove(t.row);  // a stop string ended it
    GeneratedText out = std::move(row.out);
    out.finish_reason = t.stopped || row.stream.stopped() ? "stop" : "length";
    rows_.erase(it);
    if (on_done) on_done(t.row, std::move(out));
  }
}

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
  if (prompts.empty()) fail("generate: no prompts");
  const auto& adapters = options.generation.row_adapters;
  const bool routed = !adapters.empty();
  if (routed && adapters.size() != prompts.size())
    fail("generate: {} row adapters for {} prompts", adapters.size(), prompts.size());
  TextDecodeSession session(model, tokenizer, routed);
  const auto shared = std::make_shared<const TextGenerationOptions>(options);
  std::vector<TextDecodeRow> rows;
  for (size_t r = 0; r < prompts.size(); ++r) rows.push_back({r, prompts[r], routed ? adapters[r] : "", shared});
  std::vector<GeneratedText> out(prompts.size());
  std::vector<bool> running(prompts.size(), true);
  const auto text = [&](uint64_t row, const std::string& piece) {
    if (on_text) on_text(size_t(row), piece);
  };
  const auto done = [&](uint64_t row, GeneratedText result) {
    out[row] = std::move(result);
    running[row] = false;
  };
  session.add(rows, text, done);
  while (!session.empty()) {
    if (options.abandoned)
      for (size_t r = 0; r < prompts.size(); ++r)
        if (running[r] && options.abandoned(r)) {
          out[r] = session.remove(r);
          running[r] = false;
        }
    session.step(text, done);
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
